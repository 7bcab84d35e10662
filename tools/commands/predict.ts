// `tsc-nn predict`: a checkpoint's predictions for the first images of the CIFAR-10 test split (or of one .bin
// file), as a table or JSON, and a PNG grid titled "predicted (label)", green when right and red when wrong.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { createBackend } from '../../src/runtime/backend';
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, loadCifar10 } from '../../src/runtime/data/cifar10';
import { BatchLoader, type ImageSet } from '../../src/runtime/data/batches';
import { predictionGrid, RIGHT_COLOR, WRONG_COLOR } from '../../src/runtime/report/plots';
import { encodePng } from '../../src/runtime/report/png';
import { atomicWrite } from '../../src/runtime/atomic';
import { checkLabels, describeConfig, inferenceOptions, makePredictor, openCheckpoint } from './eval';
import { positiveInt, type Command } from './common';

export interface Prediction {
  readonly index: number;
  readonly label: number;
  readonly predicted: number;
  readonly logits: number[];
}

const argmax = (row: ArrayLike<number>): number => {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
  return best;
};

/** Softmax probability of the predicted class. */
const confidence = (logits: readonly number[], predicted: number): number => {
  const max = Math.max(...logits);
  const sum = logits.reduce((a, v) => a + Math.exp(v - max), 0);
  return Math.exp(logits[predicted]! - max) / sum;
};

export const predictCommand: Command = {
  name: 'predict',
  summary: 'predict classes of the first test images with a checkpoint (table or JSON, and a PNG grid)',
  usage: 'tsc-nn predict --checkpoint FILE --data PATH|--download [--count 16] [--out predictions.png] [--json] [--backend auto] [--batch N] [--size 0.5x] [--group 3] [--stem cifar|imagenet] [--classes 10] [--resolution 32]',
  options: { ...inferenceOptions, count: { type: 'string' }, out: { type: 'string' } },
  async run({ values }) {
    const wanted = positiveInt('count', values.count, 16);
    const out = typeof values.out === 'string' ? values.out : 'predictions.png';
    if (!out.toLowerCase().endsWith('.png')) throw new UserError(`--out must name a .png file (got ${out})`);
    const opened = await openCheckpoint('predict', values);
    const { config } = opened;
    const json = values.json === true;
    const info = (line: string): void => { if (json) console.error(line); else console.log(line); };
    const backend = createBackend(typeof values.backend === 'string' ? values.backend : 'auto');
    const data = await loadCifar10(opened.dataPath, 'test');
    const count = Math.min(wanted, data.count);
    if (count < wanted) info(`${data.source} holds ${data.count} images; predicting all of them`);
    checkLabels(data, config.classes, count);
    const batch = positiveInt('batch', values.batch, Math.min(128, count));
    const predictor = await makePredictor(opened, backend, batch);
    info(`${opened.file}: ${describeConfig(config)}; backend ${backend.name}`);

    // The first `count` images in file order: evaluation batches keep the order and take no augmentation.
    const subset: ImageSet = { images: data.images.subarray(0, count * CIFAR10_IMAGE_BYTES), labels: data.labels.subarray(0, count), count };
    const loader = new BatchLoader(subset, { batchSize: batch, seed: 0, train: false, resize: config.resolution }, { prefetch: 'inline' });
    const predictions: Prediction[] = [];
    try {
      for await (const b of loader.epoch(0)) {
        const logits = predictor.logits(b.x, b.size);
        for (let k = 0; k < b.size; k++) {
          const row = Array.from(logits.subarray(k * config.classes, (k + 1) * config.classes));
          const index = b.step * batch + k;
          predictions.push({ index, label: subset.labels[index]!, predicted: argmax(row), logits: row });
        }
      }
    } finally {
      await loader.close();
    }

    const names = data.classNames.length === 10 ? data.classNames : [...CIFAR10_CLASSES];
    const name = (c: number): string => names[c] ?? `class ${c}`;
    const titles = predictions.map((p) => `${name(p.predicted)} (${name(p.label)})`);
    const colors = predictions.map((p) => (p.predicted === p.label ? RIGHT_COLOR : WRONG_COLOR));
    const grid = predictionGrid(subset.images, titles, colors, { cols: Math.ceil(Math.sqrt(count)), scale: 4 });
    const dir = path.dirname(out);
    fs.mkdirSync(dir, { recursive: true });
    await atomicWrite(out, encodePng(grid)).catch((e: Error) => { throw new UserError(`cannot write ${out}: ${e.message}`); });

    const right = predictions.filter((p) => p.predicted === p.label).length;
    if (json) {
      console.log(JSON.stringify(predictions));
      console.error(`wrote ${out}`);
      return;
    }
    const width = Math.max(9, ...names.map((n) => n.length));
    console.log(`${'index'.padStart(5)}  ${'label'.padEnd(width)}  ${'predicted'.padEnd(width)}  confidence`);
    for (const p of predictions) {
      const mark = p.predicted === p.label ? '' : '  x';
      console.log(`${String(p.index).padStart(5)}  ${name(p.label).padEnd(width)}  ${name(p.predicted).padEnd(width)}  ${(100 * confidence(p.logits, p.predicted)).toFixed(1).padStart(9)}%${mark}`);
    }
    console.log(`${right} of ${count} right; wrote ${out}`);
  },
};
