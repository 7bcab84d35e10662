// `tsc-nn predict [MODEL.ts]`: a checkpoint's predictions for the first images of the CIFAR-10 test split, as a
// table or JSON, and the seed's PNG grid. A thin shell over the library's predictModel.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { confidence, predictionPng, predictModel } from '../../src/api/predict';
import { atomicWrite } from '../../src/platform/atomic';
import { describeConfig, inferenceOptions, inferenceSetup } from './eval';
import { positiveInt, type Command } from './common';

export const predictCommand: Command = {
  name: 'predict',
  summary: 'predict classes of the first test images with a checkpoint (table or JSON, and a PNG grid)',
  usage: 'tsc-nn predict [MODEL.ts] --checkpoint FILE --data PATH|--download [--count 16] [--out predictions.png] [--json] [--backend auto] [--batch N] [model flags, e.g. --size 0.5x | --depth 20]',
  options: { ...inferenceOptions, count: { type: 'string' }, out: { type: 'string' } },
  allowModelFlags: true,
  async run(args) {
    const { values } = args;
    const count = positiveInt('count', values.count, 16);
    const out = typeof values.out === 'string' ? values.out : 'predictions.png';
    if (!out.toLowerCase().endsWith('.png')) throw new UserError(`--out must name a .png file (got ${out})`);
    const { chosen, opts } = await inferenceSetup('predict', args);
    const json = values.json === true;
    const info = (line: string): void => { if (json) console.error(line); else console.log(line); };
    const r = await predictModel(chosen.model, { ...opts, count });
    if (r.predictions.length < count) info(`${r.source} holds ${r.predictions.length} images; predicting all of them`);
    info(`${opts.checkpoint}: ${describeConfig(chosen.model.name, r.config)}; backend ${r.backend}`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await atomicWrite(out, predictionPng(r)).catch((e: Error) => { throw new UserError(`cannot write ${out}: ${e.message}`); });
    const { predictions } = r;
    if (json) {
      console.log(JSON.stringify(predictions));
      console.error(`wrote ${out}`);
      return;
    }
    const name = (c: number): string => r.classNames[c] ?? `class ${c}`;
    const width = Math.max(9, ...r.classNames.map((n) => n.length));
    console.log(`${'index'.padStart(5)}  ${'label'.padEnd(width)}  ${'predicted'.padEnd(width)}  confidence`);
    for (const p of predictions) {
      const mark = p.predicted === p.label ? '' : '  x';
      console.log(`${String(p.index).padStart(5)}  ${name(p.label).padEnd(width)}  ${name(p.predicted).padEnd(width)}  ${(100 * confidence(p.logits, p.predicted)).toFixed(1).padStart(9)}%${mark}`);
    }
    console.log(`${predictions.filter((p) => p.predicted === p.label).length} of ${predictions.length} right; wrote ${out}`);
  },
};
