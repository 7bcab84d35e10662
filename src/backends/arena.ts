// What tsc-nn's CPU executors (native, wasm, js) share: every tensor at a fixed place of one arena laid out by the
// memory plan (every kernel output where the plan puts it, then each source at its own place), feeding and reading
// it, and running each kernel, shared in chunks with a helper thread when it is worth a handoff.
import { isSource, sizeOf, type Graph } from '../ir/graph';
import type { LoweredKernel } from '../codegen/lower';
import { planMemory, PLAN_ALIGN_BYTES } from '../passes/memory-plan';
import { readReach } from '../codegen/vector-printer';
import { checkedFeeds, collectOutputs } from './feeds';
import type { HelperThread } from './helper-thread';
import type { Executor, ExecutorOptions, OutputTargets, Split } from './types';

/** Kernels doing less work than this (output elements plus multiply-adds) are not worth a thread handoff. */
const MIN_PARALLEL_WORK = 32768;

export interface Placement { readonly offset: number; readonly length: number }

export interface ArenaLayout {
  readonly place: ReadonlyMap<number, Placement>;
  /** Floats from 0 to the end of the last tensor, plus `guard` after it. */
  readonly floats: number;
}

/**
 * Offsets (in floats) of every node: compute nodes where the memory plan puts them, after `guard` leading floats
 * (a multiple of `align`); then each source at a multiple of `align` floats; then `guard` floats.
 */
export function layoutArena(graph: Graph, guard = 0, align = 1): ArenaLayout {
  const plan = planMemory(graph);
  let offset = guard + plan.peakBytes / 4;
  const place = new Map<number, Placement>();
  for (const n of graph.nodes) {
    const length = sizeOf(n.shape);
    if (isSource(n)) { place.set(n.id, { offset, length }); offset += Math.ceil(length / align) * align; } else place.set(n.id, { offset: guard + plan.offsetOf[n.id]! / 4, length });
  }
  return { place, floats: offset + guard };
}

/** Floats in a cache line: the vector targets start every tensor on one (see PLAN_ALIGN_BYTES). */
export const LINE_FLOATS = PLAN_ALIGN_BYTES / 4;

/**
 * The layout of the vector targets (wasm, native): tensors cache-line aligned between guard bands as wide as the
 * farthest speculative read of any kernel (codegen/vector-printer.ts), plus one vector.
 */
export function guardedLayout(graph: Graph, kernels: readonly LoweredKernel[]): ArenaLayout {
  const reach = kernels.reduce((m, k) => { const r = readReach(k); return Math.max(m, r.below, r.above); }, 0);
  return layoutArena(graph, Math.ceil((reach + 16) / LINE_FLOATS) * LINE_FLOATS, LINE_FLOATS);
}

/** Chunks per split kernel: enough for the faster thread to take more of them, few enough to cost nothing. */
const CHUNKS = 8;

/** How each kernel's split axis is cut into chunks for the threads to share, each a multiple of its align. */
export function splitKernels(kernels: readonly LoweredKernel[], splitExtents: readonly number[], threads: number, aligns: readonly number[] = []): Split[] {
  return kernels.map((k, i) => {
    const hi = splitExtents[i]! || 1;
    const align = aligns[i] ?? 1;
    const parallel = threads > 1 && hi >= 2 * align && sizeOf(k.output.shape) + k.macs >= MIN_PARALLEL_WORK;
    return { chunk: parallel ? Math.ceil(hi / Math.min(CHUNKS, hi / align) / align) * align : hi, hi };
  });
}

export abstract class ArenaExecutor implements Executor {
  protected abstract readonly floats: Float32Array;
  protected abstract readonly splits: readonly Split[];
  protected helper?: HelperThread;

  constructor(readonly graph: Graph, readonly kernels: readonly LoweredKernel[], protected readonly layout: ArenaLayout, protected readonly opts: ExecutorOptions) {}

  /** Run rows [lo, hi) of kernel `i` on this thread. */
  protected abstract call(i: number, lo: number, hi: number): void;

  run(feeds: Readonly<Record<string, Float32Array>>, into?: OutputTargets): Record<string, Float32Array> {
    this.feed(feeds);
    this.runKernels();
    return collectOutputs(this.graph, (node) => {
      const p = this.layout.place.get(node)!;
      return { view: this.floats.subarray(p.offset, p.offset + p.length), owned: false };
    }, into);
  }

  /** Copy every source into the arena. */
  feed(feeds: Readonly<Record<string, Float32Array>>): void {
    for (const { node, value } of checkedFeeds(this.graph, feeds)) this.floats.set(value, this.layout.place.get(node)!.offset);
  }

  /** Run every kernel on what the arena holds (benchmarks time kernels alone this way). */
  runKernels(): void {
    this.kernels.forEach((k, i) => {
      if (this.opts.poison) { const p = this.layout.place.get(k.node)!; this.floats.fill(NaN, p.offset, p.offset + p.length); }
      const { chunk, hi } = this.splits[i]!;
      if (chunk < hi) this.helper!.runSplit(i, (lo, end) => this.call(i, lo, end));
      else this.call(i, 0, hi);
    });
  }

  /** Run kernel `i` alone, all its rows on this thread (profiling). */
  runKernelAlone(i: number): void {
    this.call(i, 0, this.splits[i]!.hi);
  }

  close(): void {
    this.helper?.close();
  }
}
