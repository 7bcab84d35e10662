// Runs a compiled graph on a backend. Kernels are printed once per target and cached by source. gpu.js backends
// return a fresh array per kernel; the JavaScript backend writes into the memory plan's buffers, allocated once
// per executor and reused across runs (graph outputs get fresh arrays, since callers keep them).
import { Input, type IGPUKernelSettings, type IKernelRunShortcut } from 'gpu.js';
import { isSource, outputKey, sizeOf, type Graph } from '../ir/graph';
import { lowerGraph, type LoweredKernel, type TensorLayout } from '../codegen/lower';
import { printGpujsKernel } from '../codegen/gpujs';
import { printJsKernel } from '../codegen/js';
import { planMemory } from '../passes/memory-plan';
import type { Backend } from './backend';

/** A kernel ready to run: reads its inputs, writes its output into `out` (or returns a new array). */
type RunKernel = (inputs: readonly Float32Array[], out: Float32Array | undefined) => Float32Array;

const gpujsCache = new WeakMap<object, Map<string, IKernelRunShortcut>>();
const jsCache = new Map<string, (...args: Float32Array[]) => void>();

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

function compileJs(k: LoweredKernel): RunKernel {
  const src = printJsKernel(k);
  let fn = jsCache.get(src.body);
  if (!fn) {
    fn = new Function(...src.params, src.body) as (...args: Float32Array[]) => void;
    jsCache.set(src.body, fn);
  }
  const f = fn;
  const size = sizeOf(k.output.shape);
  return (inputs, out) => {
    const dst = out ?? new Float32Array(size);
    f(dst, ...inputs);
    return dst;
  };
}

export class GraphExecutor {
  readonly kernels: readonly LoweredKernel[];
  private readonly runners: readonly RunKernel[];
  private readonly lastUse: number[];
  private readonly outputNodes: Set<number>;
  private readonly buffers: Float32Array[];
  private readonly bufferOf: Readonly<Record<number, number>>;

  constructor(readonly graph: Graph, readonly backend: Backend, private readonly opts: { poison?: boolean } = {}) {
    this.kernels = lowerGraph(graph);
    this.runners = this.kernels.map((k) => (backend.kind === 'js' ? compileJs(k) : compileGpujs(backend, k)));
    this.lastUse = graph.nodes.map(() => -1);
    graph.nodes.forEach((n) => n.inputs.forEach((i) => { this.lastUse[i] = n.id; }));
    for (const o of graph.outputs) this.lastUse[o.node] = Infinity;
    this.outputNodes = new Set(graph.outputs.map((o) => o.node));
    const plan = planMemory(graph);
    this.bufferOf = plan.bufferOf;
    // Only the JavaScript target writes into planned buffers; gpu.js allocates its own results.
    this.buffers = backend.kind === 'js' ? plan.bufferBytes.map((b) => new Float32Array(b / 4)) : [];
  }

  /** Feed every source by name; returns the graph outputs by `outputKey`. */
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
      let out: Float32Array | undefined;
      if (this.outputNodes.has(k.node)) out = this.opts.poison || this.backend.kind === 'js' ? new Float32Array(size) : undefined;
      else if (this.buffers.length) out = this.buffers[this.bufferOf[k.node]!]!.subarray(0, size);
      else if (this.opts.poison) out = new Float32Array(size);
      if (out && this.opts.poison) out.fill(NaN);
      values.set(k.node, this.runners[i]!(k.inputs.map((inp) => values.get(inp.node)!), out));
      for (const inp of k.inputs) if (this.lastUse[inp.node] === k.node && !isSource(this.graph.node(inp.node))) values.delete(inp.node);
    });
    return Object.fromEntries(this.graph.outputs.map((o) => [outputKey(o), values.get(o.node)!]));
  }
}
