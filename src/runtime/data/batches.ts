// Batches for training and evaluation. Every batch is a pure function of (data, options, epoch, step):
// the shuffle derives from (seed, epoch) and the augmentation from (seed, epoch, step), so resuming at any
// (epoch, step) reproduces exactly the batches an uninterrupted run would have seen.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../../ir/errors';
import { sampleCropFlip, transformImage, type TransformOptions } from './augment';
import { Rng } from './rng';

/** Square CHW uint8 images (count * 3 * side * side bytes) and their class indices. */
export interface ImageSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface BatchOptions extends TransformOptions {
  batchSize: number;
  seed: number;
  /** Training: shuffle, random crop + flip, drop the last partial batch. Evaluation: fixed order, keep it. */
  train: boolean;
  /** Zero padding of the random crop (training only); default 4. */
  pad?: number;
}

export interface Batch {
  epoch: number;
  step: number;
  /** Images in this batch (the batch size, or fewer for evaluation's last batch). */
  size: number;
  /** NCHW normalized images. */
  x: Float32Array;
  /** Class indices as floats. */
  y: Float32Array;
  shape: [number, number, number, number];
}

const SHUFFLE_STREAM = 1;
const AUGMENT_STREAM = 2;

export function stepsPerEpoch(count: number, options: Pick<BatchOptions, 'batchSize' | 'train'>): number {
  return options.train ? Math.floor(count / options.batchSize) : Math.ceil(count / options.batchSize);
}

/** The order in which an epoch visits the images: a seeded Fisher-Yates shuffle for training, identity otherwise. */
export function epochOrder(count: number, options: Pick<BatchOptions, 'seed' | 'train'>, epoch: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  if (!options.train) return order;
  const rng = Rng.derive(options.seed, SHUFFLE_STREAM, epoch);
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

function imageSide(data: ImageSet): number {
  const side = Math.round(Math.sqrt(data.images.length / data.count / 3));
  if (data.count <= 0 || 3 * side * side * data.count !== data.images.length) {
    throw new UserError(`batches: ${data.images.length} image bytes do not hold ${data.count} square 3-channel images`);
  }
  return side;
}

function checkOptions(data: ImageSet, options: BatchOptions): void {
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) throw new UserError(`batches: batch size must be a positive integer, got ${options.batchSize}`);
  if (options.train && data.count < options.batchSize) throw new UserError(`batches: ${data.count} images make no full training batch of ${options.batchSize}`);
  imageSide(data);
}

/** Builds batch `step` of `epoch`; `order` is epochOrder(...) for that epoch (passed in so callers can reuse it). */
export function makeBatch(data: ImageSet, options: BatchOptions, epoch: number, step: number, order: Uint32Array): Batch {
  const steps = stepsPerEpoch(data.count, options);
  if (!Number.isInteger(step) || step < 0 || step >= steps) throw new UserError(`batches: step ${step} is outside 0..${steps - 1}`);
  const side = imageSide(data);
  const inBytes = 3 * side * side;
  const outSide = options.resize ?? side;
  const outSize = 3 * outSide * outSide;
  const first = step * options.batchSize;
  const size = Math.min(options.batchSize, data.count - first);
  const x = new Float32Array(size * outSize);
  const y = new Float32Array(size);
  const rng = options.train ? Rng.derive(options.seed, AUGMENT_STREAM, epoch, step) : undefined;
  const pad = options.pad ?? 4;
  for (let k = 0; k < size; k++) {
    const index = order[first + k]!;
    const src = data.images.subarray(index * inBytes, (index + 1) * inBytes);
    const crop = rng === undefined ? undefined : { pad, params: sampleCropFlip(rng, pad) };
    transformImage(src, side, x, k * outSize, options, crop);
    y[k] = data.labels[index]!;
  }
  return { epoch, step, size, x, y, shape: [size, 3, outSide, outSide] };
}

export interface BatchLoaderOptions {
  /**
   * 'worker': prepare batches on a worker_thread (needs the compiled batch-worker.js beside this module).
   * 'inline': prepare the next batch on this thread in a later macrotask; it overlaps only with the consumer's
   *   asynchronous waits (I/O, GPU readback), not with synchronous compute.
   * 'auto' (default): 'worker' when batch-worker.js is present (running from dist), else 'inline'.
   */
  prefetch?: 'worker' | 'inline' | 'auto';
}

interface Pending {
  resolve: (batch: Batch) => void;
  reject: (error: Error) => void;
}

/** Hands out one epoch at a time, always preparing batch k+1 while the consumer works on batch k. */
export class BatchLoader {
  readonly steps: number;
  readonly mode: 'worker' | 'inline';
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private cachedOrder: { epoch: number; order: Uint32Array } | undefined;

  constructor(private readonly data: ImageSet, private readonly options: BatchOptions, loaderOptions: BatchLoaderOptions = {}) {
    checkOptions(data, options);
    this.steps = stepsPerEpoch(data.count, options);
    const script = path.join(__dirname, 'batch-worker.js');
    const prefetch = loaderOptions.prefetch ?? 'auto';
    if (prefetch === 'worker' && !existsSync(script)) throw new Error(`batches: worker prefetch needs ${script} (build with tsc first)`);
    this.mode = prefetch === 'inline' || (prefetch === 'auto' && !existsSync(script)) ? 'inline' : 'worker';
    if (this.mode === 'worker') this.startWorker(script);
  }

  /** Batches of `epoch` from `startStep` on (resume support); the next one is being prepared while you hold one. */
  async *epoch(epoch: number, startStep = 0): AsyncGenerator<Batch, void, undefined> {
    let next = startStep < this.steps ? this.request(epoch, startStep) : undefined;
    try {
      for (let step = startStep; step < this.steps; step++) {
        const batch = await next!;
        next = step + 1 < this.steps ? this.request(epoch, step + 1) : undefined;
        yield batch;
      }
    } finally {
      // The consumer stopped early: the batch in flight is no longer wanted, nor its failure.
      next?.catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('batches: loader closed'));
    if (worker !== undefined) await worker.terminate();
  }

  private request(epoch: number, step: number): Promise<Batch> {
    if (this.mode === 'inline') {
      return new Promise((resolve, reject) =>
        setImmediate(() => {
          try {
            resolve(makeBatch(this.data, this.options, epoch, step, this.orderFor(epoch)));
          } catch (e) {
            reject(e as Error);
          }
        }),
      );
    }
    const worker = this.worker;
    if (worker === undefined) return Promise.reject(new Error('batches: loader closed'));
    const id = this.nextId++;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, epoch, step });
    });
  }

  private orderFor(epoch: number): Uint32Array {
    if (this.cachedOrder?.epoch !== epoch) this.cachedOrder = { epoch, order: epochOrder(this.data.count, this.options, epoch) };
    return this.cachedOrder.order;
  }

  private startWorker(script: string): void {
    // Shared memory: the worker reads the images without a copy of the whole set per thread.
    const data: ImageSet = { images: toShared(this.data.images), labels: toShared(this.data.labels), count: this.data.count };
    const worker = new Worker(script, { workerData: { data, options: this.options } });
    worker.unref();
    worker.on('message', (m: { id: number; batch?: Batch; error?: string; user?: boolean }) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.batch !== undefined) p.resolve(m.batch);
      else p.reject(m.user === true ? new UserError(m.error) : new Error(`batches: worker failed: ${m.error}`));
    });
    // A dead worker fails what it owed and every later request.
    worker.on('error', (e) => this.stopWorker(e));
    worker.on('exit', (code) => this.stopWorker(new Error(`batches: worker exited with code ${code}`)));
    this.worker = worker;
  }

  private stopWorker(error: Error): void {
    this.worker = undefined;
    this.failAll(error);
  }

  private failAll(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

function toShared(a: Uint8Array): Uint8Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const shared = new Uint8Array(new SharedArrayBuffer(a.length));
  shared.set(a);
  return shared;
}
