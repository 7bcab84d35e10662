// `tsc-nn bench [MODEL.ts]`: time one model configuration (inference or a training step) on one backend. Without a
// file it times the built-in ShuffleNetV1 at 0.5x.
import { createBackend, createExecutor } from '../../src/backends/registry';
import { initParams } from '../../src/runtime/init';
import { compilePrograms } from '../../src/api/programs';
import { uniform } from '../../src/runtime/random';
import { MODES } from '../../src/frontend/build';
import { outputKey, sizeOf } from '../../src/ir/graph';
import { configure, logitClasses } from '../../src/api/classifier';
import { chooseModel, modelOverrides } from './model-arg';
import { oneOf, positiveInt, type Command } from './common';
import { peakRssMb, summarize, timeSteps } from '../bench/measure';

export const benchCommand: Command = {
  name: 'bench',
  summary: 'time a model file (default: ShuffleNetV1 0.5x) inference or training step on a backend (one JSON line with --json)',
  usage: 'tsc-nn bench [MODEL.ts] [model flags, e.g. --size 0.5x --group 3 | --depth 20] [--batch 64] [--mode infer|train] [--backend auto] [--steps 5] [--budget-s S] [--json]',
  options: {
    batch: { type: 'string' }, mode: { type: 'string' }, backend: { type: 'string' }, steps: { type: 'string' }, 'budget-s': { type: 'string' }, json: { type: 'boolean' },
  },
  allowModelFlags: true,
  async run({ values, positionals, extra }) {
    const chosen = chooseModel('bench', positionals);
    const { model } = chosen;
    const config = configure(model, { ...(chosen.file ? {} : { size: '0.5x' }), ...modelOverrides(chosen, extra) });
    const mode = oneOf('mode', values.mode, MODES, 'infer');
    const batch = positiveInt('batch', values.batch, 64);
    const steps = positiveInt('steps', values.steps, 5);
    const budgetMs = 1000 * positiveInt('budget-s', values['budget-s'], 1e9);
    const backend = createBackend(typeof values.backend === 'string' ? values.backend : 'auto');
    const t0 = performance.now();
    const program = await compilePrograms(model, config, mode, batch);
    const classes = logitClasses(model, program.graph, batch);
    const executor = createExecutor(program.graph, backend);
    const compileMs = performance.now() - t0;
    const feeds: Record<string, Float32Array> = {};
    for (const [k, v] of initParams(model.params(config), 1)) feeds[k] = v;
    for (const s of program.graph.sources()) {
      if (feeds[s.name!]) continue;
      const n = sizeOf(s.shape);
      if (s.name === 'label') feeds.label = Float32Array.from({ length: n }, (_, i) => i % classes);
      else if (s.name === 'lr') feeds.lr = new Float32Array([0.01]);
      else if (s.name === 'image') feeds.image = uniform(n, 2);
      else feeds[s.name!] = new Float32Array(n);
    }
    // As in training: updated parameters, momentum and BN statistics are written back into the arrays fed.
    const into = Object.fromEntries(program.graph.outputs.filter((o) => o.kind === 'update' || o.kind === 'state').map((o) => [outputKey(o), feeds[o.name]!]));
    let timed;
    try {
      timed = summarize(await timeSteps(() => executor.run(feeds, into), steps, budgetMs), batch);
    } finally {
      executor.close();
    }
    const macs = executor.kernels.reduce((p, k) => p + k.macs, 0);
    const result = {
      model: model.name, ...config, mode, batch, backend: backend.name, device: backend.device ?? 'cpu', threads: backend.threads,
      compileMs: Math.round(compileMs), programCached: program.cached, ...timed, gflops: (2 * macs) / timed.medianStepMs / 1e6, peakRssMb: peakRssMb(),
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      const described = Object.entries(config).map(([k, v]) => `${k} ${String(v)}`).join(', ');
      console.log(`${model.name} (${described}) ${mode} batch ${batch} on ${backend.name} (${backend.threads} thread${backend.threads > 1 ? 's' : ''})`);
      console.log(`  compile ${result.compileMs} ms, first step ${result.firstStepMs} ms, median step ${result.medianStepMs} ms (min ${result.minStepMs}, max ${result.maxStepMs})`);
      console.log(`  ${result.imagesPerSec.toFixed(1)} images/s, ${result.gflops.toFixed(2)} GFLOP/s, peak RSS ${result.peakRssMb} MB`);
    }
  },
};
