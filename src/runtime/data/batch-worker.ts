// Worker side of BatchLoader's 'worker' prefetch: builds the requested batch and transfers its buffers back.
import { parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../../ir/errors';
import { epochOrder, makeBatch, type BatchOptions, type ImageSet } from './batches';

const { data, options } = workerData as { data: ImageSet; options: BatchOptions };
let cached: { epoch: number; order: Uint32Array } | undefined;

parentPort!.on('message', ({ id, epoch, step }: { id: number; epoch: number; step: number }) => {
  try {
    if (cached?.epoch !== epoch) cached = { epoch, order: epochOrder(data.count, options, epoch) };
    const batch = makeBatch(data, options, epoch, step, cached.order);
    parentPort!.postMessage({ id, batch }, [batch.x.buffer as ArrayBuffer, batch.y.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id, error: e instanceof Error ? e.message : String(e), user: e instanceof UserError });
  }
});
