// The WGSL gpu.js generates for a kernel can be read back from the device thread (tools/bench/webgpu-kernels.ts).
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { WebGpuExecutor } from '../src/backends/webgpu/executor';
import { testBackends } from './helpers';

describe.runIf(testBackends.includes('webgpu'))('webgpu shader sources', () => {
  it('are the compute shaders of the kernels that ran, reading their input through gpu.js accessors', () => {
    const g = trace({ params: {}, inputs: { x: [2, 3, 4, 4] } }, (_p, { x }) => ops.relu(x!));
    const executor = new WebGpuExecutor(g);
    try {
      expect(executor.shaderSources()).toEqual(['']); // not built before its first run
      executor.run({ x: new Float32Array(96).fill(-1) });
      const [wgsl] = executor.shaderSources();
      expect(wgsl).toContain('@compute');
      expect(wgsl).toMatch(/max\(get_user_a0\(/);
    } finally {
      executor.close();
    }
  });
});
