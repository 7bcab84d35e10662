// The JavaScript backend's executor: every tensor lives at a fixed place in one shared arena laid out by the memory
// plan (sources, planned intermediate buffers, outputs), so kernels take no allocation and a second thread can
// work on the same arrays. Kernels whose outermost output axis can be split run half on this thread and half on a
// worker thread; the two meet at an Atomics barrier after each kernel.
import { Worker } from 'node:worker_threads';
import { isSource, outputKey, sizeOf, type Graph } from '../ir/graph';
import { lowerGraph, type LoweredKernel } from '../codegen/lower';
import { printJsKernel, type JsKernelSource } from '../codegen/js';
import { planMemory } from '../passes/memory-plan';

type Kernel = (...args: (Float32Array | number)[]) => void;

/** Kernels smaller than this many output elements are not worth a thread handoff. */
const MIN_PARALLEL_ELEMENTS = 4096;

// The worker compiles the same kernel sources over the same arena and runs the upper half of each split kernel.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { arena, control, kernels } = workerData;
const floats = new Float32Array(arena);
const ctrl = new Int32Array(control);
const compiled = kernels.map((k) => ({ fn: new Function(...k.params, k.body), args: k.args.map(([off, len]) => floats.subarray(off, off + len)), mid: k.mid, hi: k.hi }));
Atomics.store(ctrl, 2, 0);
Atomics.notify(ctrl, 2);
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, 0, seen);
  const seq = Atomics.load(ctrl, 0);
  if (seq < 0) break;
  seen = seq;
  const k = compiled[Atomics.load(ctrl, 1)];
  k.fn(...k.args, k.mid, k.hi);
  Atomics.store(ctrl, 2, seq);
  Atomics.notify(ctrl, 2);
}
`;

interface Placed { readonly offset: number; readonly length: number }

export class JsExecutor {
  readonly kernels: readonly LoweredKernel[];
  private readonly floats: Float32Array;
  private readonly place = new Map<number, Placed>();
  private readonly fns: Kernel[];
  private readonly args: Float32Array[][];
  private readonly splits: { mid: number; hi: number }[];
  private readonly control = new Int32Array(new SharedArrayBuffer(12));
  private readonly worker?: Worker;
  private seq = 0;

  constructor(readonly graph: Graph, threads: number, private readonly opts: { poison?: boolean } = {}) {
    this.kernels = lowerGraph(graph);
    const plan = planMemory(graph);
    // Arena layout: planned buffers first, then sources and outputs, each at its own place.
    let offset = 0;
    const bufferOffsets = plan.bufferBytes.map((bytes) => { const at = offset; offset += bytes / 4; return at; });
    const outputs = new Set(graph.outputs.map((o) => o.node));
    for (const n of graph.nodes) {
      const length = sizeOf(n.shape);
      if (isSource(n) || outputs.has(n.id)) { this.place.set(n.id, { offset, length }); offset += length; }
      else this.place.set(n.id, { offset: bufferOffsets[plan.bufferOf[n.id]!]!, length });
    }
    const arena = new SharedArrayBuffer(Math.max(4, offset * 4));
    this.floats = new Float32Array(arena);
    const view = (id: number): Float32Array => { const p = this.place.get(id)!; return this.floats.subarray(p.offset, p.offset + p.length); };
    const sources: JsKernelSource[] = this.kernels.map(printJsKernel);
    this.fns = sources.map((s) => new Function(...s.params, s.body) as Kernel);
    this.args = this.kernels.map((k) => [view(k.node), ...k.inputs.map((i) => view(i.node))]);
    this.splits = this.kernels.map((k, i) => {
      const extent = sources[i]!.splitExtent;
      const parallel = threads > 1 && extent >= 2 && sizeOf(k.output.shape) >= MIN_PARALLEL_ELEMENTS;
      return { mid: parallel ? Math.ceil(extent / 2) : (extent || 1), hi: extent || 1 };
    });
    if (threads > 1 && this.splits.some((s) => s.mid < s.hi)) {
      const kernels = sources.map((s, i) => ({
        params: s.params, body: s.body, mid: this.splits[i]!.mid, hi: this.splits[i]!.hi,
        args: [this.kernels[i]!.node, ...this.kernels[i]!.inputs.map((x) => x.node)].map((id) => [this.place.get(id)!.offset, this.place.get(id)!.length]),
      }));
      Atomics.store(this.control, 2, -1);
      this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { arena, control: this.control.buffer, kernels } });
      this.worker.unref();
      // Wait until the worker has compiled its kernels.
      while (Atomics.load(this.control, 2) === -1) Atomics.wait(this.control, 2, -1, 50);
    }
  }

  run(feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
    for (const n of this.graph.sources()) {
      const v = feeds[n.name!];
      if (!v) throw new Error(`no value fed for ${n.op} ${n.name}`);
      const p = this.place.get(n.id)!;
      if (v.length !== p.length) throw new Error(`${n.name}: fed ${v.length} values, shape [${n.shape.join(', ')}] needs ${p.length}`);
      this.floats.set(v, p.offset);
    }
    this.kernels.forEach((_, i) => {
      const args = this.args[i]!;
      if (this.opts.poison) args[0]!.fill(NaN);
      const { mid, hi } = this.splits[i]!;
      if (mid < hi) {
        const seq = ++this.seq;
        Atomics.store(this.control, 1, i);
        Atomics.store(this.control, 0, seq);
        Atomics.notify(this.control, 0);
        this.fns[i]!(...args, 0, mid);
        while (Atomics.load(this.control, 2) !== seq) Atomics.wait(this.control, 2, seq - 1, 50);
      } else {
        this.fns[i]!(...args, 0, hi);
      }
    });
    return Object.fromEntries(this.graph.outputs.map((o) => {
      const p = this.place.get(o.node)!;
      return [outputKey(o), this.floats.slice(p.offset, p.offset + p.length)];
    }));
  }

  /** Stop the worker thread. */
  close(): void {
    if (!this.worker) return;
    Atomics.store(this.control, 0, -1);
    Atomics.notify(this.control, 0);
    void this.worker.terminate();
  }
}
