import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CIFAR10_MEAN, CIFAR10_STD } from '../../src/runtime/data/augment';
import { BatchLoader, epochOrder, makeBatch, stepsPerEpoch, type Batch, type BatchOptions, type ImageSet } from '../../src/runtime/data/batches';
import { useTempDir } from './helpers';

const SIDE = 8;
const PLANE = 3 * SIDE * SIDE;

function makeSet(count: number): ImageSet {
  const images = Uint8Array.from({ length: count * PLANE }, (_, i) => (i * 2654435761) >>> 24);
  return { images, labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count };
}

/** Normalized reference of one image after a given crop (padded 4) and flip, computed the obvious way. */
function candidate(src: Uint8Array, x: number, y: number, flip: boolean): Float32Array {
  const out = new Float32Array(PLANE);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < SIDE; i++) {
      for (let j = 0; j < SIDE; j++) {
        const sy = y + i - 4;
        const sx = x + (flip ? SIDE - 1 - j : j) - 4;
        const v = sy >= 0 && sy < SIDE && sx >= 0 && sx < SIDE ? src[(c * SIDE + sy) * SIDE + sx]! : 0;
        out[(c * SIDE + i) * SIDE + j] = (v / 255 - CIFAR10_MEAN[c]!) / CIFAR10_STD[c]!;
      }
    }
  }
  return out;
}

const close = (a: Float32Array, b: Float32Array) => a.every((v, k) => Math.abs(v - b[k]!) < 1e-5);

async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

const data = makeSet(23);
const train: BatchOptions = { batchSize: 5, seed: 1234, train: true };
const evaluation: BatchOptions = { batchSize: 5, seed: 1234, train: false };

describe('epoch order', () => {
  it('is a seeded permutation, the same for the same (seed, epoch), different otherwise', () => {
    const a = epochOrder(1000, train, 3);
    expect([...a].sort((p, q) => p - q)).toEqual([...Array(1000).keys()]);
    expect(epochOrder(1000, train, 3)).toEqual(a);
    expect(epochOrder(1000, train, 4)).not.toEqual(a);
    expect(epochOrder(1000, { ...train, seed: 1235 }, 3)).not.toEqual(a);
    expect([...epochOrder(10, evaluation, 3)]).toEqual([...Array(10).keys()]);
  });

  it('drops the last partial batch for training and keeps it for evaluation', () => {
    expect(stepsPerEpoch(23, train)).toBe(4);
    expect(stepsPerEpoch(23, evaluation)).toBe(5);
  });
});

describe('makeBatch', () => {
  it('training batches hold a crop/flip of the shuffled images, labels as floats', () => {
    const order = epochOrder(data.count, train, 2);
    const batch = makeBatch(data, train, 2, 1, order);
    expect(batch.shape).toEqual([5, 3, SIDE, SIDE]);
    for (let k = 0; k < 5; k++) {
      const index = order[5 + k]!;
      expect(batch.y[k]).toBe(data.labels[index]);
      const got = batch.x.subarray(k * PLANE, (k + 1) * PLANE);
      const src = data.images.subarray(index * PLANE, (index + 1) * PLANE);
      let found = false;
      for (let x = 0; x <= 8; x++) for (let y = 0; y <= 8; y++) for (const flip of [false, true]) found ||= close(got, candidate(src, x, y, flip));
      expect(found).toBe(true);
    }
    expect(batch.y).toBeInstanceOf(Float32Array);
  });

  it('evaluation batches are normalized images in order, the last one partial', () => {
    const order = epochOrder(data.count, evaluation, 0);
    const last = makeBatch(data, evaluation, 0, 4, order);
    expect(last.size).toBe(3);
    expect(last.shape).toEqual([3, 3, SIDE, SIDE]);
    for (let k = 0; k < 3; k++) {
      expect(close(last.x.subarray(k * PLANE, (k + 1) * PLANE), candidate(data.images.subarray((20 + k) * PLANE, (21 + k) * PLANE), 4, 4, false))).toBe(true);
      expect(last.y[k]).toBe(data.labels[20 + k]);
    }
    expect(makeBatch(data, { ...evaluation, resize: 12 }, 0, 0, order).shape).toEqual([5, 3, 12, 12]);
    expect(() => makeBatch(data, evaluation, 0, 5, order)).toThrow(/step 5/);
  });

  it('augmentations vary across steps and epochs over the same images', () => {
    const identity = Uint32Array.from([...Array(23).keys()]);
    const augmented = (epoch: number, step: number) => makeBatch(data, train, epoch, step, identity).x;
    expect(augmented(0, 0)).not.toEqual(augmented(1, 0));
    expect(augmented(0, 0)).toEqual(augmented(0, 0));
  });
});

describe('BatchLoader', () => {
  it('resuming at (epoch, step) yields exactly the batches of an uninterrupted run', async () => {
    const full = new BatchLoader(data, train, { prefetch: 'inline' });
    expect(full.mode).toBe('inline');
    const epochs = [await collect(full.epoch(0)), await collect(full.epoch(1))];
    expect(epochs[0]!.map((b) => b.step)).toEqual([0, 1, 2, 3]);
    expect(epochs[0]![0]!.x).not.toEqual(epochs[1]![0]!.x);
    const resumed = new BatchLoader(data, train, { prefetch: 'inline' });
    expect(await collect(resumed.epoch(1, 2))).toEqual(epochs[1]!.slice(2));
    await full.close();
    await resumed.close();
  });

  it('stops cleanly when the consumer breaks early', async () => {
    const loader = new BatchLoader(data, evaluation, { prefetch: 'inline' });
    for await (const b of loader.epoch(0)) if (b.step === 1) break;
    expect((await collect(loader.epoch(0))).map((b) => b.size)).toEqual([5, 5, 5, 5, 3]);
    await loader.close();
  });

  it('rejects bad options with one-line errors', () => {
    expect(() => new BatchLoader(data, { ...train, batchSize: 0 })).toThrow(/positive integer/);
    expect(() => new BatchLoader(data, { ...train, batchSize: 24 })).toThrow(/no full training batch/);
  });

  describe('worker prefetch (compiled to a temp dir, as from dist)', () => {
    const tmp = useTempDir('batches-worker-');
    /** The loader's modules transpiled to CommonJS, so batch-worker.js sits beside batches.js as in dist. */
    function compiledLoader(): typeof BatchLoader {
      const root = path.resolve(__dirname, '../..');
      for (const file of ['src/ir/errors.ts', 'src/runtime/data/rng.ts', 'src/runtime/data/augment.ts', 'src/runtime/data/batches.ts', 'src/runtime/data/batch-worker.ts']) {
        const js = ts.transpileModule(readFileSync(path.join(root, file), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
        mkdirSync(path.dirname(path.join(tmp(), file)), { recursive: true });
        writeFileSync(path.join(tmp(), file.replace(/\.ts$/, '.js')), js.outputText);
      }
      return (createRequire(__filename)(path.join(tmp(), 'src/runtime/data/batches.js')) as { BatchLoader: typeof BatchLoader }).BatchLoader;
    }

    it('produces the same batches as makeBatch on this thread, and resumes', async () => {
      const loader = new (compiledLoader())(data, { ...train, resize: 10 }, { prefetch: 'worker' });
      expect(loader.mode).toBe('worker');
      const got = await collect(loader.epoch(3));
      const order = epochOrder(data.count, train, 3);
      expect(got).toEqual([0, 1, 2, 3].map((s) => makeBatch(data, { ...train, resize: 10 }, 3, s, order)));
      expect(await collect(loader.epoch(3, 3))).toEqual(got.slice(3));
      await loader.close();
      await expect(collect(loader.epoch(0))).rejects.toThrow(/closed/);
    });
  });
});
