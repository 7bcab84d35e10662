// Evaluation over a labelled image set: cross-entropy, top-1 and top-5 accuracy, with a progress bar.
import { BatchLoader, type ImageSet } from './data/batches';
import { ProgressBar } from './report/progress';
import { crossEntropy, topKHits, type Predictor } from './session';

export interface EvalResult {
  readonly loss: number;
  readonly top1: number;
  readonly top5: number;
  readonly images: number;
  readonly seconds: number;
  readonly imagesPerSec: number;
}

export async function evaluate(predictor: Predictor, data: ImageSet, resolution: number, opts: { progress?: boolean } = {}): Promise<EvalResult> {
  const start = Date.now();
  const loader = new BatchLoader(data, { batchSize: predictor.batch, seed: 0, train: false, resize: resolution }, { prefetch: 'auto' });
  const bar = opts.progress ? new ProgressBar('eval', loader.steps) : undefined;
  let loss = 0;
  let top1 = 0;
  let top5 = 0;
  let images = 0;
  try {
    for await (const batch of loader.epoch(0)) {
      const logits = predictor.logits(batch.x, batch.size);
      loss += crossEntropy(logits, batch.y, predictor.classes) * batch.size;
      top1 += topKHits(logits, batch.y, predictor.classes, 1);
      top5 += topKHits(logits, batch.y, predictor.classes, Math.min(5, predictor.classes));
      images += batch.size;
      bar?.update(batch.step + 1, `top-1 ${(100 * top1 / images).toFixed(1)}%`);
    }
  } finally {
    bar?.done();
    await loader.close();
  }
  const seconds = (Date.now() - start) / 1000;
  return { loss: loss / images, top1: top1 / images, top5: top5 / images, images, seconds, imagesPerSec: images / seconds };
}

/** One line of eval_log.txt (beside the checkpoint): date, checkpoint, top-1, top-5, loss, images and data. */
export function evalLogLine(checkpoint: string, r: EvalResult, data: string, date = new Date()): string {
  return `${date.toISOString()} ${checkpoint}: top-1 ${r.top1.toFixed(4)} top-5 ${r.top5.toFixed(4)} loss ${r.loss.toFixed(4)} images ${r.images} data ${data}\n`;
}
