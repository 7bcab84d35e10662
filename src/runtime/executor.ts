// Runs a graph on a gpu.js backend: kernels are printed once, compiled through gpu.js and cached by source; each
// run feeds the sources, calls the kernels in order, and drops every intermediate after its last reader.
import { Input, type IGPUKernelSettings, type IKernelRunShortcut } from 'gpu.js';
import { isSource, outputKey, sizeOf, type Graph } from '../ir/graph';
import { lowerGraph, type LoweredKernel, type TensorLayout } from '../codegen/lower';
import { printGpujsKernel, type GpujsKernelSource } from '../codegen/gpujs';
import type { Backend } from './backend';

const compiled = new WeakMap<Backend['gpu'], Map<string, IKernelRunShortcut>>();

function compileKernel(backend: Backend, k: GpujsKernelSource): IKernelRunShortcut {
  let byBackend = compiled.get(backend.gpu);
  if (!byBackend) { byBackend = new Map(); compiled.set(backend.gpu, byBackend); }
  const key = `${k.output.join('x')}|${k.source}`;
  let kernel = byBackend.get(key);
  if (!kernel) {
    // Loops have constant bounds; the cap is still raised above them so gpu.js can never cut one short.
    const settings = { output: [...k.output], tactic: 'precision', loopMaxIterations: k.loopMaxIterations };
    kernel = backend.gpu.createKernel(k.source, settings as IGPUKernelSettings);
    byBackend.set(key, kernel);
  }
  return kernel;
}

/** A tensor as gpu.js wants it: flat, or a 2-D view when its flat index would pass 2^24. */
function toKernelArg(data: Float32Array, layout: TensorLayout): unknown {
  if (layout.split === 0) return data;
  const cols = sizeOf(layout.shape.slice(layout.split));
  return new Input(data as unknown as number[], [cols, data.length / cols]);
}

/**
 * gpu.js returns a fresh flat array, or rows of a 2-D output. With `poison`, results land in a NaN-filled buffer,
 * so a kernel that computes too few elements shows up as NaN instead of plausible numbers.
 */
function fromKernelResult(result: unknown, size: number, poison: boolean): Float32Array {
  if (result instanceof Float32Array && !poison) {
    if (result.length !== size) throw new Error(`kernel returned ${result.length} values, expected ${size}`);
    return result;
  }
  const out = new Float32Array(size);
  if (poison) out.fill(NaN);
  const rows = result instanceof Float32Array ? [result] : (result as Float32Array[]);
  let off = 0;
  for (const r of rows) { out.set(r.subarray(0, Math.min(r.length, size - off)), off); off += r.length; }
  return out;
}

export class GraphExecutor {
  readonly kernels: readonly LoweredKernel[];
  readonly sources: readonly GpujsKernelSource[];
  private readonly lastUse: number[];

  constructor(readonly graph: Graph, readonly backend: Backend, private readonly opts: { poison?: boolean } = {}) {
    this.kernels = lowerGraph(graph);
    this.sources = this.kernels.map(printGpujsKernel);
    this.lastUse = graph.nodes.map(() => -1);
    graph.nodes.forEach((n) => n.inputs.forEach((i) => { this.lastUse[i] = n.id; }));
    for (const o of graph.outputs) this.lastUse[o.node] = Infinity;
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
      const fn = compileKernel(this.backend, this.sources[i]!);
      const args = k.inputs.map((inp) => toKernelArg(values.get(inp.node)!, inp.layout));
      values.set(k.node, fromKernelResult(fn(...args), sizeOf(k.output.shape), this.opts.poison ?? false));
      for (const inp of k.inputs) if (this.lastUse[inp.node] === k.node && !isSource(this.graph.node(inp.node))) values.delete(inp.node);
    });
    return Object.fromEntries(this.graph.outputs.map((o) => [outputKey(o), values.get(o.node)!]));
  }
}
