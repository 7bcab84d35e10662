// Runs a compiled graph on a backend. gpu.js kernels are printed once, compiled through gpu.js and cached by
// source; each run feeds the sources, calls the kernels in order, and drops every intermediate after its last
// reader (gpu.js allocates its own results). tsc-nn's own CPU targets have arena executors
// (wasm-executor.ts, js-executor.ts).
import { Input, type IGPUKernelSettings, type IKernelRunShortcut } from 'gpu.js';
import { isSource, outputKey, sizeOf, type Graph } from '../ir/graph';
import { lowerGraph, type LoweredKernel, type TensorLayout } from '../codegen/lower';
import { printGpujsKernel } from '../codegen/gpujs';
import { JsExecutor } from './js-executor';
import { WasmExecutor } from './wasm-executor';
import { WebGpuExecutor } from './webgpu-executor';
import type { Backend } from './backend';

/** A kernel ready to run: reads its inputs, writes its output into `out` (or returns a new array). */
type RunKernel = (inputs: readonly Float32Array[], out: Float32Array | undefined) => Float32Array;

const gpujsCache = new WeakMap<object, Map<string, IKernelRunShortcut>>();

export interface Executor {
  readonly kernels: readonly LoweredKernel[];
  /** Feed every source by name; returns the graph outputs by `outputKey`. */
  run(feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array>;
  /** Release threads and device memory. */
  close(): void;
}

export interface ExecutorOptions {
  /** Fill every kernel's output with NaN before it runs, so unwritten elements show up. */
  readonly poison?: boolean;
}

export function createExecutor(graph: Graph, backend: Backend, opts: ExecutorOptions = {}): Executor {
  switch (backend.kind) {
    case 'wasm': return new WasmExecutor(graph, backend.threads, opts);
    case 'js': return new JsExecutor(graph, backend.threads, opts);
    case 'gpujs': return new GpujsExecutor(graph, backend, opts);
    case 'webgpu': return new WebGpuExecutor(graph, opts);
  }
}

/** A tensor as gpu.js wants it: flat, or a 2-D view when its flat index would pass 2^24. */
function toGpujsArg(data: Float32Array, layout: TensorLayout): unknown {
  if (layout.split === 0) return data;
  const cols = sizeOf(layout.shape.slice(layout.split));
  return new Input(data as unknown as number[], [cols, data.length / cols]);
}

function compileGpujs(backend: Backend, k: LoweredKernel): RunKernel {
  const src = printGpujsKernel(k);
  let byBackend = gpujsCache.get(backend);
  if (!byBackend) { byBackend = new Map(); gpujsCache.set(backend, byBackend); }
  const key = `${src.output.join('x')}|${src.source}`;
  let kernel = byBackend.get(key);
  if (!kernel) {
    // Loops have constant bounds; the cap is still raised above them so gpu.js can never cut one short.
    const settings = { output: [...src.output], tactic: 'precision', loopMaxIterations: src.loopMaxIterations };
    kernel = backend.gpu!.createKernel(src.source, settings as IGPUKernelSettings);
    byBackend.set(key, kernel);
  }
  const fn = kernel;
  const size = sizeOf(k.output.shape);
  return (inputs, out) => {
    const result = fn(...inputs.map((d, i) => toGpujsArg(d, k.inputs[i]!.layout)));
    // A 2-D output comes back as rows; a poisoned `out` catches a kernel that computes too few elements.
    const rows = result instanceof Float32Array ? [result] : (result as Float32Array[]);
    if (!out && rows.length === 1 && rows[0]!.length === size) return rows[0]!;
    const dst = out ?? new Float32Array(size);
    let off = 0;
    for (const r of rows) { dst.set(r.subarray(0, Math.min(r.length, size - off)), off); off += r.length; }
    return dst;
  };
}

class GpujsExecutor implements Executor {
  readonly kernels: readonly LoweredKernel[];
  private readonly runners: readonly RunKernel[];
  private readonly lastUse: number[];

  constructor(readonly graph: Graph, readonly backend: Backend, private readonly opts: ExecutorOptions = {}) {
    this.kernels = lowerGraph(graph);
    this.runners = this.kernels.map((k) => compileGpujs(backend, k));
    this.lastUse = graph.nodes.map(() => -1);
    graph.nodes.forEach((n) => n.inputs.forEach((i) => { this.lastUse[i] = n.id; }));
    for (const o of graph.outputs) this.lastUse[o.node] = Infinity;
  }

  close(): void {
    // gpu.js results are garbage-collected arrays on these backends.
  }

  run(feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
    const values = new Map<number, Float32Array>();
    for (const n of this.graph.nodes) {
      if (!isSource(n)) continue;
      const v = feeds[n.name!];
      if (!v) throw new Error(`no value fed for ${n.op} ${n.name}`);
      if (v.length !== sizeOf(n.shape)) throw new Error(`${n.name}: fed ${v.length} values, shape [${n.shape.join(', ')}] needs ${sizeOf(n.shape)}`);
      values.set(n.id, v);
    }
    this.kernels.forEach((k, i) => {
      const size = sizeOf(k.output.shape);
      const out = this.opts.poison ? new Float32Array(size).fill(NaN) : undefined;
      values.set(k.node, this.runners[i]!(k.inputs.map((inp) => values.get(inp.node)!), out));
      for (const inp of k.inputs) if (this.lastUse[inp.node] === k.node && !isSource(this.graph.node(inp.node))) values.delete(inp.node);
    });
    return Object.fromEntries(this.graph.outputs.map((o) => [outputKey(o), values.get(o.node)!]));
  }
}
