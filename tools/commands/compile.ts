// `tsc-nn compile FILE.ts`: load a model through the TypeScript compiler API, trace it, and write the artifact.
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { countParams } from '../../src/ir/model';
import { verify } from '../../src/ir/verify';
import { buildGraph, MODES } from '../../src/frontend/build';
import { configureModel, loadModel } from '../../src/api/load-model';
import { outputKey } from '../../src/ir/graph';
import { countKernels, passesFor, runPasses } from '../../src/passes/pipeline';
import { EMITS, forwardMacs, kernelCounts, opCounts, writeArtifact, type Manifest } from '../../src/runtime/artifact';
import { oneOf, positiveInt, type Command } from './common';

export const compileCommand: Command = {
  name: 'compile',
  summary: 'trace a model file and write its IR, gpu.js kernels and manifest',
  usage: 'tsc-nn compile FILE.ts [--out DIR] [--emit all|ir|kernels] [--mode train|infer] [--batch N] [--json] [model options, e.g. --size 0.5x]',
  options: {
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
