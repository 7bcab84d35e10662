import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/ir/errors';
import {
  CIFAR10_CLASSES, CIFAR10_FILE_MD5, CIFAR10_IMAGE_BYTES, CIFAR10_RECORD_BYTES,
  downloadCifar10, loadCifar10, md5, writeCifarBin, type Cifar10Data, type CifarRecord,
} from '../../src/runtime/data/cifar10';
import { makeRecords, useTempDir, writeArchive, writeBatchesFolder } from './helpers';

const TRAIN = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];

function expectRecords(data: { images: Uint8Array; labels: Uint8Array; count: number }, records: CifarRecord[]): void {
  expect(data.count).toBe(records.length);
  expect(data.images.length).toBe(records.length * CIFAR10_IMAGE_BYTES);
  records.forEach((r, i) => {
    expect(data.labels[i]).toBe(r.label);
    expect(data.images.subarray(i * CIFAR10_IMAGE_BYTES, (i + 1) * CIFAR10_IMAGE_BYTES)).toEqual(r.image);
  });
}

async function expectUserError(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<string> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(UserError);
  const message = (e as Error).message;
  expect(message).not.toContain('\n');
  for (const part of parts) expect(message).toMatch(part);
  return message;
}

describe('loadCifar10', () => {
  const tmp = useTempDir('cifar10-test-');
  // Per-file record sets: train batches of 3, 2, 1, 2, 3 records, test of 4.
  const bins: Record<string, CifarRecord[]> = {};
  [...TRAIN, 'test_batch.bin'].forEach((name, i) => (bins[name] = makeRecords([3, 2, 1, 2, 3, 4][i]!, i + 7)));
  const trainRecords = TRAIN.flatMap((n) => bins[n]!);
  let folder = '';
  let archive = '';

  beforeAll(async () => {
    folder = writeBatchesFolder(path.join(tmp(), 'extracted'), Object.fromEntries(Object.entries(bins).map(([n, r]) => [n, writeCifarBin(r)])));
    archive = await writeArchive(path.join(tmp(), 'extracted'), path.join(tmp(), 'cifar-10-binary.tar.gz'));
  });

  it('reads the record layout written by writeCifarBin from a single .bin file, whatever the split', async () => {
    const file = path.join(tmp(), 'one.bin');
    writeFileSync(file, writeCifarBin(bins['test_batch.bin']!));
    for (const split of ['train', 'test'] as const) {
      const data = await loadCifar10(file, split);
      expectRecords(data, bins['test_batch.bin']!);
      expect(data.classNames).toEqual(CIFAR10_CLASSES);
      expect(data.source).toBe(file);
    }
  });

  it('reads both splits from the extracted folder and from its parent, batches in order', async () => {
    for (const root of [folder, path.dirname(folder)]) {
      expectRecords(await loadCifar10(root, 'train'), trainRecords);
      expectRecords(await loadCifar10(root, 'test'), bins['test_batch.bin']!);
    }
  });

  it('streams both splits from the .tar.gz without leaving files behind', async () => {
    const before = readdirSync(tmp()).sort();
    const train = await loadCifar10(archive, 'train');
    expectRecords(train, trainRecords);
    expect(train.classNames).toEqual(CIFAR10_CLASSES);
    expectRecords(await loadCifar10(archive, 'test'), bins['test_batch.bin']!);
    expect(readdirSync(tmp()).sort()).toEqual(before);
  });

  it('rejects a size that is not a multiple of 3073, naming the file and the offset', async () => {
    const file = path.join(tmp(), 'data_batch_1.bin');
    writeFileSync(file, Buffer.concat([writeCifarBin(makeRecords(2)), Buffer.alloc(10)]));
    await expectUserError(loadCifar10(file, 'train'), file, 'size 6156', `offset ${2 * CIFAR10_RECORD_BYTES}`);
  });

  it('rejects a label above 9 at the offset of its record', async () => {
    const bytes = writeCifarBin(makeRecords(3));
    bytes[2 * CIFAR10_RECORD_BYTES] = 10;
    const file = path.join(tmp(), 'badlabel.bin');
    writeFileSync(file, bytes);
    await expectUserError(loadCifar10(file, 'test'), file, 'record 2', `offset ${2 * CIFAR10_RECORD_BYTES}`, 'label 10');
  });

  it('rejects data that is not gzip, and a truncated archive', async () => {
    const garbage = path.join(tmp(), 'garbage.tar.gz');
    writeFileSync(garbage, Buffer.from('this is not a gzip file at all, just some text padding it out'.repeat(20)));
    await expectUserError(loadCifar10(garbage, 'test'), garbage);
    const cut = path.join(tmp(), 'cut.tar.gz');
    const whole = readFileSync(archive);
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await expectUserError(loadCifar10(cut, 'test'), cut, `of ${Math.floor(whole.length / 2)} bytes read`, /truncated|unexpected end/i);
  });

  it('names the missing files of a split, in an archive and in a folder', async () => {
    const root = path.join(tmp(), 'partial');
    writeBatchesFolder(root, { 'test_batch.bin': writeCifarBin(makeRecords(1)), 'data_batch_2.bin': writeCifarBin(makeRecords(1)) });
    const partial = await writeArchive(root, path.join(tmp(), 'partial.tar.gz'));
    await expectUserError(loadCifar10(partial, 'train'), 'data_batch_1.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin');
    await expectUserError(loadCifar10(root, 'train'), root, 'data_batch_1.bin, data_batch_3.bin');
    await expectUserError(loadCifar10(path.join(tmp(), 'nowhere'), 'test'), 'does not exist');
  });

  it('checks the md5 of full-size files with an official name unless verify is off', async () => {
    const sub = path.join(tmp(), 'full');
    const bytes = new Uint8Array(10_000 * CIFAR10_RECORD_BYTES); // all-zero records: label 0, black images
    writeBatchesFolder(sub, { 'test_batch.bin': bytes });
    await expectUserError(loadCifar10(sub, 'test'), 'test_batch.bin', `${md5(bytes)} differs from the published ${CIFAR10_FILE_MD5['test_batch.bin']}`);
    expect((await loadCifar10(sub, 'test', { verify: 'off' })).count).toBe(10_000);
  });
});

describe('downloadCifar10', () => {
  const tmp = useTempDir('cifar10-download-');
  let server: Server;
  let base = '';
  let body = Buffer.alloc(0);

  beforeAll(async () => {
    const root = path.join(tmp(), 'src');
    writeBatchesFolder(root, { 'test_batch.bin': writeCifarBin(makeRecords(5)) });
    body = readFileSync(await writeArchive(root, path.join(tmp(), 'served.tar.gz')));
    server = createServer((req, res) => {
      if (req.url === '/cifar.tar.gz') {
        res.writeHead(200, { 'content-length': body.length });
        // Paced writes so the client sees several chunks and reports progress more than once.
        const send = (i: number): void => {
          if (i >= body.length) res.end();
          else res.write(body.subarray(i, i + 4096), () => setTimeout(() => send(i + 4096), 2));
        };
        send(0);
      } else if (req.url === '/moved') {
        res.writeHead(302, { location: '/cifar.tar.gz' }).end();
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('downloads atomically with progress, verifies the md5 and reuses a good cached copy', async () => {
    const cache = path.join(tmp(), 'cache1');
    const progress: [number, number | undefined][] = [];
    const file = await downloadCifar10(cache, { url: `${base}/moved`, expectedMd5: md5(body), onProgress: (b, t) => progress.push([b, t]) });
    expect(file).toBe(path.join(cache, 'cifar-10-binary.tar.gz'));
    expect(readFileSync(file)).toEqual(body);
    expect(readdirSync(cache)).toEqual(['cifar-10-binary.tar.gz']);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([body.length, body.length]);
    expect((await loadCifar10(file, 'test')).count).toBe(5);
    progress.length = 0;
    await downloadCifar10(cache, { url: `${base}/missing`, expectedMd5: md5(body) });
    expect(progress).toEqual([]);
  });

  it('keeps nothing when the md5 differs or the server fails', async () => {
    const cache = path.join(tmp(), 'cache2');
    await expectUserError(downloadCifar10(cache, { url: `${base}/cifar.tar.gz` }), `${md5(body)} differs from the expected c32a1d4ab5d03f1284b67883e8d87530`);
    await expectUserError(downloadCifar10(cache, { url: `${base}/missing` }), 'HTTP 404');
    await expectUserError(downloadCifar10(cache, { url: 'http://127.0.0.1:1/x' }), 'failed');
    expect(readdirSync(cache)).toEqual([]);
    expect(existsSync(path.join(cache, 'cifar-10-binary.tar.gz'))).toBe(false);
  });
});

describe('real CIFAR-10 (set CIFAR10_PATH to run)', () => {
  const source = process.env.CIFAR10_PATH ?? '';
  // Rebuilds the file from what was loaded: its md5 must be the published one.
  const rebuiltMd5 = (data: Cifar10Data, from: number, to: number): string =>
    md5(writeCifarBin(Array.from({ length: to - from }, (_, k) => ({
      label: data.labels[from + k]!, image: data.images.subarray((from + k) * CIFAR10_IMAGE_BYTES, (from + k + 1) * CIFAR10_IMAGE_BYTES),
    }))));

  it.skipIf(!source)('loads the official test split: 10,000 records, published md5, 1,000 of each class', async () => {
    const data = await loadCifar10(source, 'test');
    expect(data.count).toBe(10_000);
    expect(data.classNames).toEqual(CIFAR10_CLASSES);
    expect(rebuiltMd5(data, 0, 10_000)).toBe(CIFAR10_FILE_MD5['test_batch.bin']);
    expect(Array.from({ length: 10 }, (_, c) => data.labels.filter((l) => l === c).length)).toEqual(Array(10).fill(1000));
  }, 60_000);

  it.skipIf(!source)('loads the official train split: 50,000 records, the five published md5s in order', async () => {
    const data = await loadCifar10(source, 'train');
    expect(data.count).toBe(50_000);
    TRAIN.forEach((name, i) => expect(rebuiltMd5(data, i * 10_000, (i + 1) * 10_000)).toBe(CIFAR10_FILE_MD5[name]));
  }, 60_000);
});
