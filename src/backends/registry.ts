// The backend registry: names -> how to start them (probed, never a silent fallback) and their executors:
// gpu.js's (cpu, webasm, gl), gpu.js's WebGPU kernels on Dawn (webgpu) and tsc-nn's own CPU targets: C built by
// the system compiler for this machine's vectors (native), WebAssembly SIMD on worker threads (wasm) and plain
// JavaScript loop nests (js).
// gpu.js's `mode` only echoes the request, so every gpu.js backend is probed with a tiny kernel and reports the
// kernel class that really ran.
import * as os from 'node:os';
import type { GPU } from 'gpu.js';
import type { Graph } from '../ir/graph';
import { BACKENDS, type Backend, type BackendName, type ExecutorOptions, type Executor } from './types';
import { gpujs } from './gpujs/load';
import { GpujsExecutor } from './gpujs/executor';
import { JsExecutor } from './js/executor';
import { WasmExecutor } from './wasm/executor';
import { NativeExecutor } from './native/executor';
import { toolchain } from './native/toolchain';
import { UserError } from '../ir/errors';
import { trace } from '../ir/trace';
import { scale } from '../ir/ops';
import { WebGpuExecutor } from './webgpu/executor';

export { BACKENDS, type Backend, type BackendName } from './types';

type GpujsBackend = Exclude<BackendName, 'native' | 'wasm' | 'js' | 'webgpu'>;
const gpujsMode: Record<GpujsBackend, string> = { cpu: 'cpu', webasm: 'webasm', gl: 'headlessgl' };
const kernelClass: Record<GpujsBackend, string> = { cpu: 'CPUKernel', webasm: 'WebAssemblyKernel', gl: 'HeadlessGLKernel' };


// `auto`: on a machine without a GPU, native code is the fastest where a C compiler works, then tsc-nn's
// WebAssembly SIMD target (see docs/benchmarks.md).
const autoOrder: readonly BackendName[] = ['native', 'wasm', 'js'];

/** Why a backend cannot start, or null when its probe kernel ran on the requested kernel class. */
function probe(name: GpujsBackend): { gpu: GPU } | { error: string } {
  let gpu: GPU;
  try {
    gpu = new (gpujs().GPU)({ mode: gpujsMode[name] as 'cpu' });
  } catch (e) {
    const why = name === 'gl'
      ? 'gpu.js found no headless-gl context (install the optional `gl` package, which needs Debian\'s libxi-dev, and run under `xvfb-run -a`)'
      : (e as Error).message;
    return { error: why };
  }
  try {
    const k = gpu.createKernel('function (a) { return a[this.thread.x] * 2; }', { output: [2], tactic: 'precision' });
    const r = k(new Float32Array([1, 2])) as Float32Array;
    const ran = (k as unknown as { kernel: { constructor: { name: string } } }).kernel.constructor.name;
    if (ran !== kernelClass[name]) return { error: `gpu.js fell back to ${ran}` };
    if (r[0] !== 2 || r[1] !== 4) return { error: 'the probe kernel computed wrong values' };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]! };
  }
  return { gpu };
}

/** Start Dawn on a device thread with a one-kernel program and check what it computes. */
function probeWebgpu(): { device: string } | { error: string } {
  let executor: WebGpuExecutor | undefined;
  try {
    const g = trace({ params: {}, inputs: { a: [2] } }, (_p, x) => scale(x.a!, 2));
    executor = new WebGpuExecutor(g);
    const r = Object.values(executor.run({ a: new Float32Array([1, 2]) }))[0]!;
    if (r[0] !== 2 || r[1] !== 4) return { error: 'the probe kernel computed wrong values' };
    return { device: executor.device };
  } catch (e) {
    const why = (e as Error).message.split('\n')[0]!;
    return { error: /Cannot find module 'dawn-webgpu'/.test(why) ? 'the optional package dawn-webgpu (npm:webgpu@0.6.2) is not installed' : why };
  } finally {
    executor?.close();
  }
}

const cache = new Map<BackendName, Backend>();

/** Threads for tsc-nn's CPU backends: TSC_NN_THREADS, default up to 2 cores. */
function cpuThreads(): number {
  const threads = Number(process.env.TSC_NN_THREADS ?? Math.min(2, os.availableParallelism()));
  return Number.isInteger(threads) && threads >= 1 ? threads : 1;
}

export function isBackendName(s: string): s is BackendName {
  return (BACKENDS as readonly string[]).includes(s);
}

/** Start a backend (`auto`: the fastest on this machine). Never falls back silently: a backend that cannot start is an error. */
export function createBackend(requested: string): Backend {
  if (requested !== 'auto' && !isBackendName(requested)) {
    throw new UserError(`unknown backend "${requested}": choose one of auto, ${BACKENDS.join(', ')}`);
  }
  const order = requested === 'auto' ? autoOrder : [requested];
  const errors: string[] = [];
  for (const name of order) {
    const hit = cache.get(name);
    if (hit) return hit;
    if (name === 'native') {
      const tc = toolchain();
      if ('error' in tc) { errors.push(`native: ${tc.error}`); continue; }
      const threads = cpuThreads();
      const b: Backend = { name, kind: name, threads, toolchain: tc, device: `${tc.version}, ${tc.maxLanes} float lanes` };
      cache.set(name, b);
      return b;
    }
    if (name === 'wasm' || name === 'js') {
      const b: Backend = { name, kind: name, threads: cpuThreads() };
      cache.set(name, b);
      return b;
    }
    if (name === 'webgpu') {
      const p = probeWebgpu();
      if ('device' in p) {
        const b: Backend = { name, kind: 'webgpu', device: p.device, threads: 1 };
        cache.set(name, b);
        return b;
      }
      errors.push(`webgpu: ${p.error}`);
      continue;
    }
    const p = probe(name);
    if ('gpu' in p) {
      const b: Backend = { name, kind: 'gpujs', gpu: p.gpu, device: kernelClass[name], threads: 1 };
      cache.set(name, b);
      return b;
    }
    errors.push(`${name}: ${p.error}`);
  }
  throw new UserError(`backend ${requested} cannot start: ${errors.join('; ')}`);
}

/** Backends that start on this machine (for tests and benchmarks). */
export function availableBackends(): BackendName[] {
  return BACKENDS.filter((b) => { try { createBackend(b); return true; } catch { return false; } });
}

export function createExecutor(graph: Graph, backend: Backend, opts: ExecutorOptions = {}): Executor {
  switch (backend.kind) {
    case 'native': return new NativeExecutor(graph, backend.threads, backend.toolchain!, opts);
    case 'wasm': return new WasmExecutor(graph, backend.threads, opts);
    case 'js': return new JsExecutor(graph, backend.threads, opts);
    case 'gpujs': return new GpujsExecutor(graph, backend, opts);
    case 'webgpu': return new WebGpuExecutor(graph, opts);
  }
}
