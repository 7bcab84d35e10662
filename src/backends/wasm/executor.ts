// The WebAssembly SIMD backend's executor: the arena (arena.ts) is one shared WebAssembly.Memory, every tensor at a
// fixed 16-byte-aligned address (no copies between kernels), between two guard bands as wide as the farthest
// speculative read (codegen/wasm.ts). All kernels form one module, assembled once (cached on disk, keyed by the
// compiler, the graph, the memory size and the engine's features) and instantiated on this thread and on a helper
// thread that shares each split kernel's chunks.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { Graph } from '../../ir/graph';
import { printGraph } from '../../ir/print';
import { UserError } from '../../ir/errors';
import { lowerGraph } from '../../codegen/lower';
import { printWasmKernel, wasmModule } from '../../codegen/wasm';
import { cachedModule } from '../../codegen/assemble';
import { ArenaExecutor, guardedLayout, splitKernels } from '../arena';
import type { Split } from '../types';
import { HelperThread } from '../helper-thread';
import { cacheDir, compilerVersion } from '../../platform/cache';
import { wasmTarget } from './features';
import type { ExecutorOptions } from '../types';

type KernelFn = (lo: number, hi: number) => void;

export const PAGE_BYTES = 65536;
export const MAX_PAGES = 65536;

// Runs on the helper thread: the same module over the same memory.
const HELPER_SETUP = `
const { module, memory, names } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory, exp: Math.exp, log: Math.log } });
const fns = names.map((n) => instance.exports[n]);
return (i, lo, hi) => fns[i](lo, hi);
`;

const imports = (memory: WebAssembly.Memory): Record<string, Record<string, unknown>> => ({ env: { memory, exp: Math.exp, log: Math.log } });

export class WasmExecutor extends ArenaExecutor {
  protected readonly floats: Float32Array;
  protected readonly splits: readonly Split[];
  /** Bytes of WebAssembly memory (tensors plus guard bands). */
  readonly memoryBytes: number;
  private readonly fns: KernelFn[];

  constructor(graph: Graph, threads: number, opts: ExecutorOptions = {}) {
    const kernels = lowerGraph(graph);
    super(graph, kernels, guardedLayout(graph, kernels), opts);
    const pages = Math.ceil((this.layout.floats * 4) / PAGE_BYTES);
    if (pages > MAX_PAGES) {
      throw new UserError(`this program needs ${((pages * PAGE_BYTES) / 2 ** 30).toFixed(1)} GiB of tensors; WebAssembly memory is limited to 4 GiB: use a smaller --batch`);
    }
    this.memoryBytes = pages * PAGE_BYTES;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.floats = new Float32Array(memory.buffer);
    const at = (id: number): number => 4 * this.layout.place.get(id)!.offset;
    // The compiler's code, the graph, every tensor's address and the memory size determine every kernel's text:
    // a warm start loads the binary without printing the kernels.
    const target = wasmTarget();
    const addresses = [...this.layout.place].map(([node, p]) => `${node}@${p.offset}`).join(' ');
    const key = createHash('sha256').update(compilerVersion()).update(printGraph(graph, { exprs: true })).update(`${addresses} pages ${pages} fma ${target.fma}`).digest('hex').slice(0, 24);
    const { bytes, meta: sources } = cachedModule(path.join(cacheDir(), 'wasm'), key, () => {
      const printed = kernels.map((k) => printWasmKernel(k, { out: at(k.node), inputs: k.inputs.map((i) => at(i.node)) }, target));
      return { wat: wasmModule(printed, pages), meta: printed.map(({ splitExtent, splitAlign }) => ({ splitExtent, splitAlign })) };
    });
    const module = new WebAssembly.Module(bytes);
    const instance = new WebAssembly.Instance(module, imports(memory));
    this.fns = kernels.map((k) => instance.exports[k.name] as KernelFn);
    this.splits = splitKernels(kernels, sources.map((s) => s.splitExtent), threads, sources.map((s) => s.splitAlign));
    if (this.splits.some((s) => s.chunk < s.hi)) {
      this.helper = new HelperThread(HELPER_SETUP, { module, memory, names: kernels.map((k) => k.name) }, this.splits);
    }
  }

  protected call(i: number, lo: number, hi: number): void {
    this.fns[i]!(lo, hi);
  }
}
