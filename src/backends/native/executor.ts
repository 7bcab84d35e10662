// The native backend's executor: every kernel printed as C (codegen/c.ts) into one library per program, built by
// the system compiler (toolchain.ts), cached on disk under a key of the compiler, the graph, every tensor's address
// and the thread split, and loaded into this process with process.dlopen (a Node-API entry point, no FFI package).
// The arena is a Float32Array laid out as the wasm backend's (guard bands for speculative reads); one call runs the
// whole program, its thread pool sharing each split kernel's chunks (codegen/c.ts).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Graph } from '../../ir/graph';
import { lowerGraph } from '../../codegen/lower';
import { cProgram, printCKernel } from '../../codegen/c';
import { ArenaExecutor, guardedLayout, LINE_FLOATS, splitKernels } from '../arena';
import type { ExecutorOptions, Split } from '../types';
import { cacheDir, compilerVersion } from '../../platform/cache';
import { buildLibrary, type Toolchain } from './toolchain';

interface KernelLibrary {
  run(arena: Float32Array, threads: number): void;
  /** Floats to skip from the start of `arena` to reach a cache-line boundary. */
  skew(arena: Float32Array): number;
  /** Add each kernel's milliseconds in later runs to `times` (one per kernel); an empty array stops. */
  profile(times: Float64Array): void;
  kernel(arena: Float32Array, index: number, lo: number, hi: number): void;
}

/** Load a built library (process.dlopen finds its Node-API entry point). */
function loadLibrary(file: string): KernelLibrary {
  const module = { exports: {} as KernelLibrary };
  process.dlopen(module, file);
  return module.exports;
}

export class NativeExecutor extends ArenaExecutor {
  protected readonly floats: Float32Array;
  /** Kernels called one by one from JavaScript (poisoned runs, profiling) run whole on this thread. */
  protected readonly splits: readonly Split[];
  private readonly library: KernelLibrary;

  constructor(graph: Graph, private readonly threads: number, toolchain: Toolchain, opts: ExecutorOptions = {}) {
    const kernels = lowerGraph(graph);
    super(graph, kernels, guardedLayout(graph, kernels), opts);
    const at = (id: number): number => 4 * this.layout.place.get(id)!.offset;
    const printed = kernels.map((k) => printCKernel(k, { out: at(k.node), inputs: k.inputs.map((i) => at(i.node)) }, toolchain));
    const runs = splitKernels(kernels, printed.map((s) => s.splitExtent), threads, printed.map((s) => s.splitAlign)).map((s) => ({ chunk: s.chunk, rows: s.hi }));
    this.splits = runs.map((r) => ({ chunk: r.rows, hi: r.rows }));
    // Kernel files compile in parallel, one per core (a training step's kernels take gcc -O3 about 20 s on one).
    const program = cProgram(printed, runs, Math.min(8, os.availableParallelism()));
    const hash = createHash('sha256').update(compilerVersion()).update(toolchain.version).update(toolchain.flags.join(' ')).update(program.driver);
    for (const f of program.kernelFiles) hash.update(f);
    const key = hash.digest('hex').slice(0, 24);
    const dir = path.join(cacheDir(), 'native');
    const file = path.join(dir, `${key}.node`);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(dir, { recursive: true });
      // Two processes may build the same program at once: each writes its own files and renames the library into place.
      const sources = [...program.kernelFiles, program.driver].map((text, i) => {
        const src = path.join(dir, `${key}.${process.pid}.${i}.c`);
        fs.writeFileSync(src, text);
        return src;
      });
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        buildLibrary(toolchain, sources, tmp);
        fs.renameSync(tmp, file);
      } finally {
        for (const src of sources) fs.rmSync(src, { force: true });
        fs.rmSync(tmp, { force: true });
      }
    }
    this.library = loadLibrary(file);
    // The layout aligns tensors to cache lines relative to the arena's start; JavaScript only promises 8 bytes.
    const raw = new Float32Array(this.layout.floats + LINE_FLOATS - 1);
    const skew = this.library.skew(raw);
    this.floats = raw.subarray(skew, skew + this.layout.floats);
  }

  override runKernels(): void {
    if (this.opts.poison) super.runKernels();
    else this.library.run(this.floats, this.threads);
  }

  /** Each kernel's mean milliseconds inside `runs` whole runs on this executor's threads (caches as a step leaves them). */
  timeKernelsInRuns(runs: number): Float64Array {
    const times = new Float64Array(this.kernels.length);
    this.library.profile(times);
    try {
      for (let r = 0; r < runs; r++) this.runKernels();
    } finally {
      this.library.profile(new Float64Array(0));
    }
    return times.map((t) => t / runs);
  }

  protected call(i: number, lo: number, hi: number): void {
    this.library.kernel(this.floats, i, lo, hi);
  }
}
