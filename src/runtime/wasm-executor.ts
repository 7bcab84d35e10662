// The WebAssembly SIMD backend's executor: every tensor lives at a fixed byte address of one shared
// WebAssembly.Memory laid out by the memory plan (no copies between kernels), between two guard bands as wide as
// the farthest speculative read. All kernels form one module, assembled once (cached on disk by its text) and
// instantiated on this thread and on a helper thread that runs the upper half of each split kernel.
import * as path from 'node:path';
import { isSource, outputKey, sizeOf, type Graph } from '../ir/graph';
import { UserError } from '../ir/errors';
import { lowerGraph, type LoweredKernel } from '../codegen/lower';
import { printWasmKernel, readReach, wasmModule } from '../codegen/wasm';
import { assembleWatCached } from '../codegen/assemble';
import { planMemory } from '../passes/memory-plan';
import { HelperThread } from './helper-thread';
import { cacheDir } from './program-cache';
import type { Executor, ExecutorOptions } from './executor';

type KernelFn = (lo: number, hi: number) => void;

/** Kernels doing less work than this (output elements plus multiply-adds) are not worth a thread handoff. */
const MIN_PARALLEL_WORK = 32768;
const PAGE = 65536;
const MAX_PAGES = 65536;
const align16 = (n: number): number => Math.ceil(n / 16) * 16;

// Runs on the helper thread: the same module over the same memory.
const HELPER_SETUP = `
const { module, memory, names, splits } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory, exp: Math.exp, log: Math.log } });
const fns = names.map((n) => instance.exports[n]);
return (i) => fns[i](splits[i].mid, splits[i].hi);
`;

export class WasmExecutor implements Executor {
  readonly kernels: readonly LoweredKernel[];
  /** Bytes of shared memory (tensors plus guard bands). */
  readonly memoryBytes: number;
  private readonly floats: Float32Array;
  private readonly place = new Map<number, { readonly at: number; readonly length: number }>();
  private readonly fns: KernelFn[];
  private readonly splits: { readonly mid: number; readonly hi: number }[];
  private readonly helper?: HelperThread;

  constructor(readonly graph: Graph, threads: number, private readonly opts: ExecutorOptions = {}) {
    this.kernels = lowerGraph(graph);
    const plan = planMemory(graph);
    const reach = this.kernels.reduce((m, k) => { const r = readReach(k); return Math.max(m, r.below, r.above); }, 0);
    const guard = align16(4 * reach + 64);
    let offset = guard;
    const alloc = (bytes: number): number => { const at = offset; offset += align16(bytes); return at; };
    const bufferAt = plan.bufferBytes.map(alloc);
    const outputs = new Set(graph.outputs.map((o) => o.node));
    for (const n of graph.nodes) {
      const length = sizeOf(n.shape);
      const at = isSource(n) || outputs.has(n.id) ? alloc(4 * length) : bufferAt[plan.bufferOf[n.id]!]!;
      this.place.set(n.id, { at, length });
    }
    const pages = Math.ceil((offset + guard) / PAGE);
    if (pages > MAX_PAGES) {
      throw new UserError(`this program needs ${((pages * PAGE) / 2 ** 30).toFixed(1)} GiB of tensors; WebAssembly memory is limited to 4 GiB: use a smaller --batch`);
    }
    this.memoryBytes = pages * PAGE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.floats = new Float32Array(memory.buffer);
    const at = (id: number): number => this.place.get(id)!.at;
    const sources = this.kernels.map((k) => printWasmKernel(k, { out: at(k.node), inputs: k.inputs.map((i) => at(i.node)) }));
    const module = new WebAssembly.Module(assembleWatCached(wasmModule(sources, pages), path.join(cacheDir(), 'wasm')));
    const instance = new WebAssembly.Instance(module, { env: { memory, exp: Math.exp, log: Math.log } });
    this.fns = this.kernels.map((k) => instance.exports[k.name] as KernelFn);
    this.splits = this.kernels.map((k, i) => {
      const extent = sources[i]!.splitExtent;
      const parallel = threads > 1 && extent >= 2 && sizeOf(k.output.shape) + k.macs >= MIN_PARALLEL_WORK;
      return { mid: parallel ? Math.ceil(extent / 2) : (extent || 1), hi: extent || 1 };
    });
    if (threads > 1 && this.splits.some((s) => s.mid < s.hi)) {
      this.helper = new HelperThread(HELPER_SETUP, { module, memory, names: this.kernels.map((k) => k.name), splits: this.splits });
    }
  }

  run(feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
    for (const n of this.graph.sources()) {
      const v = feeds[n.name!];
      if (!v) throw new Error(`no value fed for ${n.op} ${n.name}`);
      const p = this.place.get(n.id)!;
      if (v.length !== p.length) throw new Error(`${n.name}: fed ${v.length} values, shape [${n.shape.join(', ')}] needs ${p.length}`);
      this.floats.set(v, p.at / 4);
    }
    this.kernels.forEach((k, i) => {
      if (this.opts.poison) { const p = this.place.get(k.node)!; this.floats.fill(NaN, p.at / 4, p.at / 4 + p.length); }
      const { mid, hi } = this.splits[i]!;
      if (mid < hi) {
        this.helper!.start(i);
        this.fns[i]!(0, mid);
        this.helper!.join();
      } else {
        this.fns[i]!(0, hi);
      }
    });
    return Object.fromEntries(this.graph.outputs.map((o) => {
      const p = this.place.get(o.node)!;
      return [outputKey(o), this.floats.slice(p.at / 4, p.at / 4 + p.length)];
    }));
  }

  close(): void {
    this.helper?.close();
  }
}
