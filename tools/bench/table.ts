// `npm run bench`: issue 5's benchmark table. Every configuration runs on every tsc-nn backend that starts here and
// on the peers (TensorFlow.js cpu/wasm, jax-js, PyTorch, ONNX Runtime), each measurement in its own process (peak
// RSS is per process), interleaved A B A B over rounds; results go to docs/benchmarks.json and docs/benchmarks.md
// with the date, the machine and the command, and the speed goals checked after the tables. `--smoke` runs a
// seconds-long version (tiny batch, our fast backends) for CI; `--render FILE` rewrites the markdown beside a saved
// JSON report without measuring again.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { availableBackends } from '../../src/backends/registry';
import { atomicWrite } from '../../src/platform/atomic';
import { benchGroupConvs, CEILING_GFLOPS, type ConvResult } from './conv-micro';
import { median } from './measure';
import { PEER_SYSTEMS } from './systems';

interface Config { readonly id: string; readonly size: string; readonly stem: string; readonly resolution: number; readonly batch: number; readonly mode: 'infer' | 'train' }

const CONFIGS: readonly Config[] = [
  { id: '0.5x g3 cifar, batch 64, inference', size: '0.5x', stem: 'cifar', resolution: 32, batch: 64, mode: 'infer' },
  { id: '0.5x g3 cifar, batch 64, training step', size: '0.5x', stem: 'cifar', resolution: 32, batch: 64, mode: 'train' },
  { id: '1.0x g3 cifar, batch 64, inference', size: '1.0x', stem: 'cifar', resolution: 32, batch: 64, mode: 'infer' },
  { id: '1.0x g3 cifar, batch 64, training step', size: '1.0x', stem: 'cifar', resolution: 32, batch: 64, mode: 'train' },
  { id: '2.0x g3 imagenet 224x224, batch 8, inference', size: '2.0x', stem: 'imagenet', resolution: 224, batch: 8, mode: 'infer' },
];
const SMOKE: readonly Config[] = [
  { id: '0.5x g3 cifar, batch 2, inference (smoke)', size: '0.5x', stem: 'cifar', resolution: 32, batch: 2, mode: 'infer' },
  { id: '0.5x g3 cifar, batch 2, training step (smoke)', size: '0.5x', stem: 'cifar', resolution: 32, batch: 2, mode: 'train' },
];

/**
 * gpu.js's backends take seconds to tens of seconds a step here even at 0.5x (GL and WebGPU run on llvmpipe, a
 * software rasteriser): they are measured on the 0.5x rows only.
 */
const GPUJS_BACKENDS = new Set(['cpu', 'webasm', 'gl', 'webgpu']);
const gpujsNote = (system: string, c: Config): string | undefined =>
  (GPUJS_BACKENDS.has(system) && c.size !== '0.5x' ? 'not run: gpu.js backends are measured on the 0.5x rows only' : undefined);

/** Measurements known to take many minutes a step here (shared notes): not run, and said so in the table. */
const TOO_SLOW: Readonly<Record<string, string>> = {
  'tfjs-cpu|1.0x g3 cifar, batch 64, training step': 'not run: more than 420 s a step (shared notes)',
  'tfjs-cpu|0.5x g3 cifar, batch 64, training step': 'not run: 167 s a step (shared notes); 0.38 images/s',
};

interface Row { readonly system: string; readonly runs: Record<string, unknown>[]; readonly note?: string }

/** The speed goals: tsc-nn's native backend against ONNX Runtime in inference and PyTorch in training. */
const GOALS = { infer: { peer: 'onnxruntime', factor: 1.25 }, train: { peer: 'pytorch', factor: 3 } } as const;
const GOAL_BACKEND = 'native';
/** The whole training step's GFLOP/s as a share of the 1x1 group convolution's alone. */
const STEP_OF_CEILING = 0.4;

const isPeer = (system: string): boolean => (PEER_SYSTEMS as readonly string[]).includes(system);

/** The median over a row's rounds of images/s; NaN when no round measured one. */
function rowImagesPerSec(row: Row | undefined): number {
  const ips = (row?.runs ?? []).map((r) => r.imagesPerSec).filter((x): x is number => typeof x === 'number');
  return ips.length ? median(ips) : NaN;
}

/** Why a row has no measurement: its note, the peer's `cannot`, or the run's error. */
const whyNot = (row: Row): string => row.note ?? (row.runs.map((x) => x.cannot ?? x.error).find((x) => x) as string | undefined) ?? 'failed';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const convBackends = (): ('wasm' | 'native')[] => (['wasm', 'native'] as const).filter((b) => availableBackends().includes(b));
const run = (script: string, args: readonly string[]): Record<string, unknown> => {
  try {
    const out = execFileSync(process.execPath, [path.join(ROOT, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { error: (err.stderr ?? err.message).trim().split('\n').at(-1) ?? 'failed' };
  }
};

function measure(system: string, c: Config, steps: number, budgetS: number): Record<string, unknown> {
  const common = ['--size', c.size, '--group', '3', '--stem', c.stem, '--resolution', String(c.resolution), '--batch', String(c.batch), '--mode', c.mode, '--steps', String(steps), '--budget-s', String(budgetS)];
  if (isPeer(system)) return run('dist/tools/bench/peer-bench.js', ['--system', system, ...common]);
  return run('bin/tsc-nn.js', ['bench', '--backend', system, '--json', ...common]);
}

const fmt = (v: unknown, digits = 1): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

/**
 * Each configuration's goal as a table row: tsc-nn's native backend (else its fastest, named) against the goal's
 * peer. Configurations whose peer was not run (--smoke) have none; no rows, no section.
 */
function goalLines(configs: readonly Config[], table: Map<string, Row[]>, convs: readonly ConvResult[]): string[] {
  const lines: string[] = [];
  for (const c of configs) {
    const rows = table.get(c.id)!;
    const goal = GOALS[c.mode];
    const peer = rows.find((r) => r.system === goal.peer);
    if (!peer) continue;
    const ours = rows.filter((r) => !isPeer(r.system) && Number.isFinite(rowImagesPerSec(r)));
    const nativeRow = rows.find((r) => r.system === GOAL_BACKEND);
    const fastest = [...ours].sort((a, b) => rowImagesPerSec(b) - rowImagesPerSec(a))[0];
    const best = ours.find((r) => r.system === GOAL_BACKEND) ?? fastest;
    const backend = !best ? '-' : best.system === GOAL_BACKEND ? GOAL_BACKEND
      : `${best.system} (the fastest; ${nativeRow ? `${GOAL_BACKEND}: ${whyNot(nativeRow)}` : `no ${GOAL_BACKEND} backend here`})`;
    const ratio = rowImagesPerSec(best) / rowImagesPerSec(peer);
    const met = Number.isFinite(ratio) ? (ratio >= goal.factor ? 'yes' : 'no')
      : `unknown: ${best ? `${goal.peer}: ${whyNot(peer)}` : 'no tsc-nn backend measured'}`;
    lines.push(`| ${c.id} | ${backend} | ${fmt(rowImagesPerSec(best))} | ${goal.peer} | ${fmt(rowImagesPerSec(peer))} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-'} | >= ${goal.factor}x | ${met} |`);
  }
  if (!lines.length) return [];
  // The training step's arithmetic rate against the fastest 1x1 group convolution alone on the same backend.
  const ceiling = Math.max(...convs.filter((c) => c.backend === GOAL_BACKEND).map((c) => c.gflops));
  const rates = configs.filter((c) => c.mode === 'train').map((c) => {
    const gflops = (table.get(c.id)!.find((r) => r.system === GOAL_BACKEND)?.runs ?? []).map((r) => r.gflops).filter((x): x is number => typeof x === 'number');
    const share = gflops.length && Number.isFinite(ceiling) ? median(gflops) / ceiling : NaN;
    return `| ${c.id} | ${fmt(gflops.length ? median(gflops) : NaN)} | ${fmt(ceiling)} | ${Number.isFinite(share) ? `${Math.round(100 * share)} %` : '-'} | >= ${Math.round(100 * STEP_OF_CEILING)} % | ${Number.isFinite(share) ? (share >= STEP_OF_CEILING ? 'yes' : 'no') : 'unknown'} |`;
  });
  return ['## Goals', '', `tsc-nn's ${GOAL_BACKEND} backend against ONNX Runtime in inference (>= ${GOALS.infer.factor}x its images/s) and against`,
    `PyTorch in training (>= ${GOALS.train.factor}x); where ${GOAL_BACKEND} has no measurement, tsc-nn's fastest backend (named). Medians over rounds.`, '',
    '| configuration | tsc-nn | images/s | peer | images/s | ratio | goal | met |', '| --- | --- | --- | --- | --- | --- | --- | --- |', ...lines, '',
    `The ${GOAL_BACKEND} training step's GFLOP/s against the 1x1 group convolution alone on ${GOAL_BACKEND} (the fastest of the two below):`, '',
    '| configuration | step GFLOP/s | 1x1 conv GFLOP/s | share | goal | met |', '| --- | --- | --- | --- | --- | --- |', ...rates, ''];
}

function markdown(configs: readonly Config[], table: Map<string, Row[]>, convs: readonly ConvResult[], meta: Record<string, string>): string {
  const lines = [`# Benchmarks`, '', `${meta.date}; ${meta.machine}; \`${meta.command}\`.`, '',
    'Each figure is the median over rounds of that round\'s median step (min-max over rounds in brackets); every',
    'measurement in its own process, the systems interleaved round by round. "vs wasm" is images/s relative to',
    'tsc-nn\'s wasm backend. Peers run the same model on the same weights and data; "agrees" is their first output',
    'against tsc-nn\'s (logits relative L2, or the training loss difference). Compile: building the program and',
    'kernels; first step: the first run after it; both from the first round, which for tsc-nn starts with empty',
    'caches. Peak RSS: the largest of the rounds (benchmarks.json has every round).', ''];
  for (const c of configs) {
    const rows = table.get(c.id)!;
    const ref = rowImagesPerSec(rows.find((r) => r.system === 'wasm'));
    lines.push(`## ${c.id}`, '', '| system | images/s | step ms | vs wasm | compile ms | first step ms | peak RSS MB | GFLOP/s | agrees |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) {
      const ok = r.runs.filter((x) => typeof x.imagesPerSec === 'number');
      if (!ok.length) {
        lines.push(`| ${r.system} | ${whyNot(r)} | | | | | | | |`);
        continue;
      }
      const ips = ok.map((x) => x.imagesPerSec as number);
      const steps = ok.map((x) => x.medianStepMs as number);
      const agree = ok[0]!.agreement as Record<string, number> | undefined;
      const agrees = agree ? Object.entries(agree).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ') : '';
      lines.push(`| ${r.system} | ${fmt(median(ips))} (${fmt(Math.min(...ips))}-${fmt(Math.max(...ips))}) | ${fmt(median(steps), 0)} | ${fmt(median(ips) / ref, 2)}x | ${ok[0]!.compileMs} | ${ok[0]!.firstStepMs} | ${Math.max(...ok.map((x) => x.peakRssMb as number))} | ${fmt(ok[0]!.gflops)} | ${agrees} |`);
    }
    lines.push('');
  }
  lines.push(...goalLines(configs, table, convs));
  if (convs.length) {
    lines.push('## 1x1 group convolution alone (2 threads)', '', `wasm against the ceiling of hand-written WebAssembly SIMD on 2 workers (shared notes: ${CEILING_GFLOPS.low}-${CEILING_GFLOPS.high} GFLOP/s);`,
      'native is the ceiling the training step is measured against above.', '',
      '| backend | convolution | median ms | GFLOP/s | of the wasm ceiling |', '| --- | --- | --- | --- | --- |');
    for (const c of convs) {
      const share = c.backend === 'wasm' ? `${Math.round((100 * c.gflops) / CEILING_GFLOPS.high)}-${Math.round((100 * c.gflops) / CEILING_GFLOPS.low)} %` : '';
      lines.push(`| ${c.backend ?? 'wasm'} | ${c.name} | ${c.medianMs.toFixed(2)} (${c.minMs.toFixed(2)}-${c.maxMs.toFixed(2)}) | ${c.gflops.toFixed(1)} | ${share} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean' }, 'conv-only': { type: 'boolean' }, out: { type: 'string' }, rounds: { type: 'string' }, steps: { type: 'string' }, 'budget-s': { type: 'string' }, render: { type: 'string' } } });
  if (values.render) {
    // Rewrite the markdown from a saved JSON report (the same measurements, no new runs).
    if (!fs.existsSync(values.render)) throw new Error(`--render ${values.render}: no such file (give the benchmarks.json a run wrote)`);
    const saved = JSON.parse(fs.readFileSync(values.render, 'utf8')) as { configs: (Config & { rows: Row[] })[]; groupConv: ConvResult[]; date: string; machine: string; command: string };
    const md = markdown(saved.configs, new Map(saved.configs.map((c) => [c.id, c.rows])), saved.groupConv, { date: saved.date, machine: saved.machine, command: saved.command });
    await atomicWrite(path.join(path.dirname(values.render), 'benchmarks.md'), Buffer.from(md));
    console.log(md);
    return;
  }
  if (values['conv-only']) {
    for (const backend of convBackends()) for (const c of await benchGroupConvs(200, backend)) console.log(JSON.stringify(c));
    return;
  }
  const smoke = Boolean(values.smoke);
  const configs = smoke ? SMOKE : CONFIGS;
  const rounds = Number(values.rounds ?? (smoke ? 1 : 2));
  const steps = Number(values.steps ?? (smoke ? 1 : 3));
  const budgetS = Number(values['budget-s'] ?? 15);
  const ours = smoke ? (['wasm', 'js'] as const).filter((b) => availableBackends().includes(b)) : availableBackends();
  const systems: string[] = [...ours, ...(smoke ? [] : PEER_SYSTEMS)];
  const table = new Map<string, Row[]>();
  for (const c of configs) {
    const rows: Row[] = systems.map((system) => ({ system, runs: [], note: TOO_SLOW[`${system}|${c.id}`] ?? gpujsNote(system, c) }));
    for (let round = 0; round < rounds; round++) {
      for (const row of rows) {
        if (row.note) continue;
        // A system slower than the budget a step already has its number: one round is enough.
        const last = row.runs.at(-1);
        if (last && (typeof last.medianStepMs !== 'number' || (last.medianStepMs as number) > 1000 * budgetS)) continue;
        process.stderr.write(`bench: ${c.id} on ${row.system} (round ${round + 1}/${rounds})\n`);
        row.runs.push(measure(row.system, c, steps, budgetS));
      }
    }
    table.set(c.id, rows);
  }
  const convs: ConvResult[] = [];
  if (!smoke) for (const backend of convBackends()) convs.push(...await benchGroupConvs(30, backend));
  const meta = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`,
    command: `npm run bench${smoke ? ' -- --smoke' : ''}`,
  };
  const outDir = values.out ?? path.join(ROOT, 'docs');
  fs.mkdirSync(outDir, { recursive: true });
  const json = { ...meta, rounds, steps, configs: configs.map((c) => ({ ...c, rows: table.get(c.id) })), groupConv: convs };
  await atomicWrite(path.join(outDir, 'benchmarks.json'), Buffer.from(`${JSON.stringify(json, null, 1)}\n`));
  const md = markdown(configs, table, convs, meta);
  await atomicWrite(path.join(outDir, 'benchmarks.md'), Buffer.from(md));
  console.log(md);
}

void main().catch((e: unknown) => { console.error(`bench: ${(e as Error).message ?? String(e)}`); process.exit(1); });
