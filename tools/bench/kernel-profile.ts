// Where a ShuffleNet step spends its time on tsc-nn's CPU backends (native, wasm): every kernel timed alone on one
// thread (its inputs are whatever the previous full runs left in the arena), or with --in-step (native) inside whole
// steps on TSC_NN_THREADS threads (default 2) with the caches as the step leaves them, grouped by phase and fused-op
// signature, with achieved GFLOP/s. Usage:
//   node dist/tools/bench/kernel-profile.js [--backend native|wasm] [--size 0.5x] [--stem cifar|imagenet] [--resolution 32]
//     [--mode train|infer] [--batch 64] [--reps 3] [--top 25] [--in-step] [--json]
import { parseArgs } from 'node:util';
import { shufflenet, SIZES, type Size } from '../../src/models/shufflenet';
import { compilePrograms } from '../../src/api/programs';
import { initParams } from '../../src/runtime/init';
import { uniform } from '../../src/runtime/random';
import { sizeOf } from '../../src/ir/graph';
import { createBackend, createExecutor } from '../../src/backends/registry';
import type { ArenaExecutor } from '../../src/backends/arena';
import type { NativeExecutor } from '../../src/backends/native/executor';
import { oneOf, positiveInt } from '../commands/common';

/** gbps: the bytes each kernel must move at least (its inputs read once, its output written once) per second. */
export interface KernelGroup { readonly phase: string; readonly ops: string; readonly kernels: number; readonly ms: number; readonly share: number; readonly gflops: number; readonly gbps: number }

/** Each kernel's mean milliseconds run alone on this thread, `reps` times over. */
function timeEachAlone(executor: ArenaExecutor, reps: number): Float64Array {
  const times = new Float64Array(executor.kernels.length);
  for (let r = 0; r < reps; r++) {
    executor.kernels.forEach((_, i) => { const t = performance.now(); executor.runKernelAlone(i); times[i] += (performance.now() - t) / reps; });
  }
  return times;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { backend: { type: 'string' }, size: { type: 'string' }, stem: { type: 'string' }, resolution: { type: 'string' }, mode: { type: 'string' }, batch: { type: 'string' }, reps: { type: 'string' }, top: { type: 'string' }, 'in-step': { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const backendName = oneOf('backend', values.backend, ['native', 'wasm'] as const, 'wasm');
  const size = oneOf('size', values.size, SIZES, '0.5x' as Size);
  const mode = oneOf('mode', values.mode, ['train', 'infer'] as const, 'train');
  const batch = positiveInt('batch', values.batch, 64);
  const reps = positiveInt('reps', values.reps, 3);
  const top = positiveInt('top', values.top, 25);
  const inStep = values['in-step'] === true;
  if (inStep && backendName !== 'native') throw new Error('--in-step times kernels inside the native library\'s runs: use it with --backend native');
  const stem = oneOf('stem', values.stem, ['cifar', 'imagenet'] as const, 'cifar');
  const resolution = positiveInt('resolution', values.resolution, stem === 'cifar' ? 32 : 224);
  const config = shufflenet.configure!({ size, group: 3, stem, resolution });
  const program = await compilePrograms(shufflenet, config, mode, batch);
  const params = initParams(shufflenet.params(config), 1);
  const feeds: Record<string, Float32Array> = {};
  program.graph.sources().forEach((n, i) => { feeds[n.name!] = params.get(n.name!) ?? uniform(sizeOf(n.shape), i + 1); });
  if (feeds.label) feeds.label = feeds.label.map((_, i) => i % config.classes);
  if (feeds.lr) feeds.lr = new Float32Array([0.01]);
  const backend = createBackend(backendName);
  const threads = inStep ? backend.threads : 1;
  const executor = createExecutor(program.graph, { ...backend, threads }) as ArenaExecutor;
  try {
    for (let i = 0; i < 2; i++) executor.run(feeds);
    const times = inStep ? (executor as NativeExecutor).timeKernelsInRuns(reps) : timeEachAlone(executor, reps);
    const total = times.reduce((a, b) => a + b, 0);
    const groups = new Map<string, { phase: string; ops: string; kernels: number; ms: number; macs: number; bytes: number }>();
    executor.kernels.forEach((k, i) => {
      const phase = program.graph.node(k.node).phase ?? 'forward';
      const key = `${phase} ${k.ops.join('>')}`;
      const g = groups.get(key) ?? { phase, ops: k.ops.join('>'), kernels: 0, ms: 0, macs: 0, bytes: 0 };
      g.kernels++; g.ms += times[i]!; g.macs += k.macs;
      g.bytes += 4 * [k.output, ...k.inputs.map((x) => x.layout)].reduce((n, l) => n + sizeOf(l.shape), 0);
      groups.set(key, g);
    });
    const rows: KernelGroup[] = [...groups.values()].sort((a, b) => b.ms - a.ms).slice(0, top)
      .map((g) => ({ phase: g.phase, ops: g.ops, kernels: g.kernels, ms: g.ms, share: g.ms / total, gflops: (2 * g.macs) / (g.ms * 1e6), gbps: g.bytes / (g.ms * 1e6) }));
    if (values.json) {
      console.log(JSON.stringify({ model: `shufflenet ${size} g3 ${stem} ${resolution}x${resolution}`, backend: backendName, mode, batch, threads, inStep, kernels: executor.kernels.length, totalMs: total, groups: rows }));
      return;
    }
    console.log(`shufflenet ${size} g3 ${stem} ${resolution}x${resolution}, ${mode}, batch ${batch} on ${backendName}: ${executor.kernels.length} kernels, ${total.toFixed(1)} ms ${inStep ? `inside whole steps on ${threads} thread${threads > 1 ? 's' : ''}` : 'on one thread (each kernel alone)'}`);
    console.log('     ms  share  kernels  GFLOP/s   GB/s  phase      kernel');
    for (const g of rows) {
      console.log(`${g.ms.toFixed(1).padStart(7)}  ${(100 * g.share).toFixed(1).padStart(4)}%  ${String(g.kernels).padStart(7)}  ${g.gflops.toFixed(1).padStart(7)}  ${g.gbps.toFixed(1).padStart(5)}  ${g.phase.padEnd(9)}  ${g.ops}`);
    }
  } finally {
    executor.close();
  }
}

if (process.argv[1] && /kernel-profile\.[jt]s$/.test(process.argv[1])) {
  main().catch((e: unknown) => { console.error(`kernel-profile: ${(e as Error).message}`); process.exit(1); });
}
