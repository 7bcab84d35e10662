// The JavaScript backend's executor: kernels are plain JavaScript loop nests (codegen/js.ts) over subarrays of one
// shared arena (arena.ts); split kernels share their chunks with a helper thread that compiles the same sources.
import type { Graph } from '../../ir/graph';
import { lowerGraph } from '../../codegen/lower';
import { printJsKernel } from '../../codegen/js';
import { ArenaExecutor, layoutArena, splitKernels } from '../arena';
import type { Split } from '../types';
import { HelperThread } from '../helper-thread';
import type { ExecutorOptions } from '../types';

type Kernel = (...args: (Float32Array | number)[]) => void;

// Runs on the helper thread: the same kernel sources over the same arena.
const HELPER_SETUP = `
const floats = new Float32Array(workerData.arena);
const kernels = workerData.kernels.map((k) => ({ fn: new Function(...k.params, k.body), args: k.args.map(([off, len]) => floats.subarray(off, off + len)) }));
return (i, lo, hi) => { const k = kernels[i]; k.fn(...k.args, lo, hi); };
`;

export class JsExecutor extends ArenaExecutor {
  protected readonly floats: Float32Array;
  protected readonly splits: readonly Split[];
  private readonly fns: Kernel[];
  private readonly args: Float32Array[][];

  constructor(graph: Graph, threads: number, opts: ExecutorOptions = {}) {
    super(graph, lowerGraph(graph), layoutArena(graph), opts);
    const arena = new SharedArrayBuffer(Math.max(4, this.layout.floats * 4));
    this.floats = new Float32Array(arena);
    const tensors = (k: (typeof this.kernels)[number]): number[] => [k.node, ...k.inputs.map((i) => i.node)];
    const view = (id: number): Float32Array => { const p = this.layout.place.get(id)!; return this.floats.subarray(p.offset, p.offset + p.length); };
    const sources = this.kernels.map(printJsKernel);
    this.fns = sources.map((s) => new Function(...s.params, s.body) as Kernel);
    this.args = this.kernels.map((k) => tensors(k).map(view));
    this.splits = splitKernels(this.kernels, sources.map((s) => s.splitExtent), threads);
    if (this.splits.some((s) => s.chunk < s.hi)) {
      const kernels = sources.map((s, i) => ({
        params: s.params, body: s.body,
        args: tensors(this.kernels[i]!).map((id) => [this.layout.place.get(id)!.offset, this.layout.place.get(id)!.length]),
      }));
      this.helper = new HelperThread(HELPER_SETUP, { arena, kernels }, this.splits);
    }
  }

  protected call(i: number, lo: number, hi: number): void {
    this.fns[i]!(...this.args[i]!, lo, hi);
  }
}
