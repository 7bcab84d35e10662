// gpu.js itself.
import { createRequire } from 'node:module';

/** gpu.js, loaded when one of its backends starts rather than by every command (it costs about 18 MB of memory). */
export const gpujs = (): typeof import('gpu.js') => createRequire(__filename)('gpu.js') as typeof import('gpu.js');
