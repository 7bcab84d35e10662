// A checkpoint's predictions for the first images of the CIFAR-10 test split, with logits, and the picture grid
// the seed draws (2 rows of 8 for 16 images, "predicted (label)" in green when right, red when wrong).
import type { ModelDef } from '../ir/model';
import { createBackend } from '../backends/registry';
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, loadCifar10 } from '../runtime/data/cifar10';
import { BatchLoader, type ImageSet } from '../runtime/data/batches';
import { predictionGrid, RIGHT_COLOR, WRONG_COLOR } from '../runtime/report/plots';
import { encodePng } from '../runtime/report/png';
import { openModelCheckpoint, type OpenedCheckpoint } from './checkpoint';
import { checkLabels, openPredictor, type InferenceOptions } from './evaluate';

export interface Prediction {
  readonly index: number;
  readonly label: number;
  readonly predicted: number;
  readonly logits: number[];
}

export interface PredictResult<C extends object> {
  readonly predictions: Prediction[];
  readonly classNames: readonly string[];
  readonly config: C;
  readonly checkpoint: OpenedCheckpoint<C>;
  readonly backend: string;
  /** The first `count` test images, CHW bytes. */
  readonly images: Uint8Array;
  readonly source: string;
}

export const argmax = (row: ArrayLike<number>): number => {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
  return best;
};

/** Softmax probability of the predicted class. */
export const confidence = (logits: readonly number[], predicted: number): number => {
  const max = Math.max(...logits);
  const sum = logits.reduce((a, v) => a + Math.exp(v - max), 0);
  return Math.exp(logits[predicted]! - max) / sum;
};

export async function predictModel<C extends object>(model: ModelDef<C>, opts: InferenceOptions<C> & { readonly count?: number }): Promise<PredictResult<C>> {
  const opened = await openModelCheckpoint(model, opts.checkpoint, { overrides: opts.config });
  const backend = typeof opts.backend === 'object' ? opts.backend : createBackend(opts.backend ?? 'auto');
  const data = await loadCifar10(opts.data, 'test');
  const count = Math.min(opts.count ?? 16, data.count);
  const batch = opts.batch ?? Math.min(128, count);
  const { predictor, classes, side } = await openPredictor(model, opened, backend, batch);
  checkLabels(data, classes, count);
  // The first `count` images in file order: evaluation batches keep the order and take no augmentation.
  const subset: ImageSet = { images: data.images.subarray(0, count * CIFAR10_IMAGE_BYTES), labels: data.labels.subarray(0, count), count };
  const loader = new BatchLoader(subset, { batchSize: batch, seed: 0, train: false, resize: side }, { prefetch: 'inline' });
  const predictions: Prediction[] = [];
  try {
    for await (const b of loader.epoch(0)) {
      const logits = predictor.logits(b.x, b.size);
      for (let k = 0; k < b.size; k++) {
        const row = Array.from(logits.subarray(k * classes, (k + 1) * classes));
        const index = b.step * batch + k;
        predictions.push({ index, label: subset.labels[index]!, predicted: argmax(row), logits: row });
      }
    }
  } finally {
    await loader.close();
    predictor.close();
  }
  const classNames = data.classNames.length === classes ? data.classNames : classes === 10 ? [...CIFAR10_CLASSES] : Array.from({ length: classes }, (_, c) => `class ${c}`);
  return { predictions, classNames, config: opened.config, checkpoint: opened, backend: backend.name, images: subset.images, source: data.source };
}

/** The seed's picture: 8 columns (2 rows for 16 images), each titled "predicted (label)". */
export function predictionPng(result: PredictResult<object>): Uint8Array {
  const name = (c: number): string => result.classNames[c] ?? `class ${c}`;
  const titles = result.predictions.map((p) => `${name(p.predicted)} (${name(p.label)})`);
  const colors = result.predictions.map((p) => (p.predicted === p.label ? RIGHT_COLOR : WRONG_COLOR));
  return encodePng(predictionGrid(result.images, titles, colors, { cols: 8, scale: 4 }));
}
