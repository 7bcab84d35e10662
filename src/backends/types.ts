// The interfaces every backend shares: what a backend is, and the executor that runs a compiled graph on it.
// Executors and the registry import this leaf module; it imports nothing of theirs.
import type { GPU } from 'gpu.js';
import type { LoweredKernel } from '../codegen/lower';
import type { Toolchain } from './native/toolchain';

export const BACKENDS = ['native', 'wasm', 'js', 'cpu', 'webasm', 'gl', 'webgpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

type OwnBackend = 'native' | 'wasm' | 'js';

export interface Backend {
  readonly name: BackendName;
  /** `gpujs`: kernels run through gpu.js; `webgpu`: gpu.js's WebGPU kernels on Dawn; `native` / `wasm` / `js`: tsc-nn's own CPU targets. */
  readonly kind: 'gpujs' | 'webgpu' | OwnBackend;
  /** What really runs: the gpu.js kernel class, or Dawn's backend and adapter. */
  readonly device?: string;
  readonly gpu?: GPU;
  /** The C compiler and flags the native backend builds with. */
  readonly toolchain?: Toolchain;
  /** Threads the native, wasm and js backends run kernels on (TSC_NN_THREADS, default: up to 2 cores). */
  readonly threads: number;
}

export interface Executor {
  readonly kernels: readonly LoweredKernel[];
  /**
   * Feed every source by name; returns the graph outputs by `outputKey`, in new arrays or in the arrays `into`
   * names (which may be arrays it was fed: sources are read before any output is written).
   */
  run(feeds: Readonly<Record<string, Float32Array>>, into?: OutputTargets): Record<string, Float32Array>;
  /** Release threads and device memory. */
  close(): void;
}

export interface ExecutorOptions {
  /** Fill every kernel's output with NaN before it runs, so unwritten elements show up. */
  readonly poison?: boolean;
}

/** Where a run's outputs go: arrays (by output key) that receive those outputs instead of new arrays. */
export type OutputTargets = Readonly<Record<string, Float32Array>>;

/** Rows [0, hi) of a kernel's split axis, run in chunks of `chunk` rows (chunk >= hi: on one thread). */
export interface Split { readonly chunk: number; readonly hi: number }
