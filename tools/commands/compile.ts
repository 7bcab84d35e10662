// `tsc-nn compile FILE.ts`: load a model through the TypeScript compiler API, trace it, and write the artifact.
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { countParams } from '../../src/ir/model';
import { verify } from '../../src/ir/verify';
import { buildGraph, MODES } from '../../src/frontend/build';
import { configureModel, loadModel, parseModelFlags } from '../../src/api/load-model';
import { outputKey } from '../../src/ir/graph';
import { countKernels, passesFor, runPasses } from '../../src/passes/pipeline';
import { EMITS, forwardMacs, kernelCounts, opCounts, writeArtifact, type Manifest } from '../../src/runtime/artifact';
import { exportWeb } from '../../src/export/web';
import { oneOf, positiveInt, type Command } from './common';

const TARGETS = ['node', 'web'] as const;

export const compileCommand: Command = {
  name: 'compile',
  summary: 'trace a model file and write its IR, gpu.js kernels and manifest (--target web: a page that runs it in a browser)',
  usage: 'tsc-nn compile FILE.ts [--out DIR] [--emit all|ir|kernels] [--mode train|infer] [--batch N] [--json] [model options, e.g. --size 0.5x]\n'
    + '       tsc-nn compile FILE.ts --target web --checkpoint CKPT [--data CIFAR] [--batch 16] [--out DIR] [--json] [model options]',
  options: {
    target: { type: 'string' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    emit: { type: 'string' },
    mode: { type: 'string' },
    batch: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowModelFlags: true,
  async run({ values, positionals, extra }) {
    const file = positionals[0];
    if (!file) throw new UserError('compile needs a model file: tsc-nn compile FILE.ts');
    const target = oneOf('target', values.target, TARGETS, 'node');
    if (target === 'web') { await compileWeb(file, values, extra); return; }
    for (const flag of ['checkpoint', 'data'] as const) {
      if (values[flag] !== undefined) throw new UserError(`--${flag} belongs to --target web`);
    }
    const emit = oneOf('emit', values.emit, EMITS, 'all');
    const mode = oneOf('mode', values.mode, MODES, 'infer');
    const batch = positiveInt('batch', values.batch, 1);
    const model = loadModel(file);
    const config = configureModel(model, extra);
    const t0 = performance.now();
    const traced = buildGraph(model, config, { batch, mode });
    verify(traced);
    const program = runPasses(traced, passesFor(mode));
    const { graph } = program;
    const manifest: Manifest = {
      model: model.name,
      config,
      mode,
      batch,
      params: countParams(model.params(config)),
      macsPerExample: forwardMacs(traced, batch),
      ops: opCounts(traced),
      kernels: kernelCounts(graph),
      passes: program.passes,
      peakBytes: program.plan.peakBytes,
      liveBytes: program.plan.liveBytes,
      naiveBytes: program.plan.naiveBytes,
      inputs: Object.fromEntries(graph.sources('input').map((n) => [n.name!, n.shape])),
      outputs: Object.fromEntries(graph.outputs.map((o) => [outputKey(o), graph.node(o.node).shape])),
    };
    const dir = typeof values.out === 'string' ? values.out : path.join('out', model.name);
    const written = await writeArtifact(dir, program, manifest, emit);
    const ms = performance.now() - t0;
    if (values.json) {
      console.log(JSON.stringify({ ...manifest, dir, files: written.length, compileMs: Math.round(ms) }));
      return;
    }
    const fmt = (n: number): string => n.toLocaleString('en-US');
    console.log(`${model.name} (${Object.entries(config).map(([k, v]) => `${k} ${String(v)}`).join(', ')}), mode ${mode}, batch ${batch}`);
    console.log(`  parameters      ${fmt(manifest.params)}`);
    console.log(`  MACs / example  ${fmt(Math.round(manifest.macsPerExample))}`);
    console.log(`  traced IR       ${fmt(traced.nodes.length)} nodes, ${fmt(countKernels(traced))} kernels unoptimised`);
    for (const r of program.passes) {
      console.log(`  ${r.pass.padEnd(42)} kernels ${fmt(r.kernelsBefore).padStart(5)} -> ${fmt(r.kernelsAfter).padStart(5)}  ${JSON.stringify(r.changed)}`);
    }
    const k = manifest.kernels;
    console.log(`  kernels         ${fmt(k.total)} (forward ${k.forward}, backward ${k.backward}, optimizer ${k.optimizer})`);
    console.log(`  memory plan     ${(manifest.peakBytes / 2 ** 20).toFixed(1)} MiB arena (most alive at once ${(manifest.liveBytes / 2 ** 20).toFixed(1)} MiB; one range per intermediate ${(manifest.naiveBytes / 2 ** 20).toFixed(1)} MiB)`);
    console.log(`  wrote ${written.length} files to ${dir} in ${ms.toFixed(0)} ms`);
  },
};

/** `--target web`: the checkpoint's inference program as a folder a static server can serve (src/export/web.ts). */
async function compileWeb(file: string, values: Readonly<Record<string, string | boolean | undefined>>, extra: Readonly<Record<string, string | true>>): Promise<void> {
  if (typeof values.checkpoint !== 'string') throw new UserError('--target web needs --checkpoint FILE (the weights the page runs)');
  if (values.mode !== undefined && values.mode !== 'infer') throw new UserError('--target web compiles the inference program (--mode infer)');
  if (values.emit !== undefined) throw new UserError('--emit belongs to --target node');
  const batch = positiveInt('batch', values.batch, 16);
  const model = loadModel(file);
  const overrides = parseModelFlags(model, extra);
  const out = typeof values.out === 'string' ? values.out : path.join('out', `${model.name}-web`);
  const t0 = performance.now();
  const r = await exportWeb(model, { checkpoint: values.checkpoint, out, batch, data: typeof values.data === 'string' ? values.data : undefined, config: overrides });
  const ms = performance.now() - t0;
  if (values.json) {
    console.log(JSON.stringify({ dir: r.dir, files: r.files, totalBytes: r.totalBytes, batch, kernels: r.plan.wasm.kernels.length, pages: r.plan.wasm.pages, images: r.plan.images?.count ?? 0, compileMs: Math.round(ms) }));
    return;
  }
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(2)} MiB`;
  console.log(`${model.name} (${Object.entries(r.plan.config).map(([k, v]) => `${k} ${String(v)}`).join(', ')}) for the web, batch ${batch}: ${r.plan.wasm.kernels.length} kernels, ${mib(r.plan.wasm.pages * 65536)} of WebAssembly memory`);
  for (const f of r.files) console.log(`  ${f.name.padEnd(20)} ${mib(f.bytes).padStart(10)}`);
  console.log(`wrote ${r.files.length} files (${mib(r.totalBytes)}) to ${out} in ${ms.toFixed(0)} ms; try it: tsc-nn serve ${out}`);
}
