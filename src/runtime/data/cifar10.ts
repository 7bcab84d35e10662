// CIFAR-10 binary version: reading the archive / folder / single file, validating it, and downloading it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { UserError } from '../../ir/errors';

export const CIFAR10_RECORD_BYTES = 3073;
export const CIFAR10_IMAGE_BYTES = 3072;
export const CIFAR10_RECORDS_PER_FILE = 10_000;
export const CIFAR10_CLASSES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];
export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_ARCHIVE_NAME = 'cifar-10-binary.tar.gz';
export const CIFAR10_ARCHIVE_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
const BATCHES_DIR = 'cifar-10-batches-bin';
const META_FILE = 'batches.meta.txt';
const OFFICIAL_FILE_BYTES = CIFAR10_RECORD_BYTES * CIFAR10_RECORDS_PER_FILE;

/** Published md5s of the official files: they tell a good copy from a corrupt one. */
export const CIFAR10_FILE_MD5: Readonly<Record<string, string>> = {
  'data_batch_1.bin': '5dd7e06a14cb22eb9f671a540d1b7c25',
  'data_batch_2.bin': '5ea93a67294ea407fff1d09f752e9692',
  'data_batch_3.bin': '942cd6a4bcdd0dd3c604fbe906cb4421',
  'data_batch_4.bin': 'ae636b3ba5c66a11e91e8cb52e771fcb',
  'data_batch_5.bin': '53f37980c15c3d472c316c40844f3f0d',
  'test_batch.bin': '803d5f7f4d78ea53de84dbe85f74fb6d',
};

export type Cifar10Split = 'train' | 'test';

export interface Cifar10Data {
  /** count * 3072 bytes, each image CHW (1024 R, 1024 G, 1024 B), row-major 32x32. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  classNames: string[];
  /** Where the records came from, for logs. */
  source: string;
}

export interface LoadCifar10Options {
  /** 'auto': check the md5 of each official file of full size (small files with official names are test data). */
  verify?: 'auto' | 'off';
}

export interface CifarRecord {
  label: number;
  /** 3072 bytes, CHW. */
  image: Uint8Array;
}

/** The files a split reads, in the official order. */
export function cifar10SplitFiles(split: Cifar10Split): string[] {
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

/** Encodes records in the CIFAR-10 binary layout (used to generate test data). */
export function writeCifarBin(records: readonly CifarRecord[]): Uint8Array {
  const out = new Uint8Array(records.length * CIFAR10_RECORD_BYTES);
  records.forEach((r, i) => {
    if (r.image.length !== CIFAR10_IMAGE_BYTES) throw new Error(`record ${i}: image has ${r.image.length} bytes, expected ${CIFAR10_IMAGE_BYTES}`);
    out[i * CIFAR10_RECORD_BYTES] = r.label;
    out.set(r.image, i * CIFAR10_RECORD_BYTES + 1);
  });
  return out;
}

/** Loads one split from an archive, an extracted folder (or its parent), or a single .bin file. */
export async function loadCifar10(source: string, split: Cifar10Split, options: LoadCifar10Options = {}): Promise<Cifar10Data> {
  const verify = options.verify ?? 'auto';
  const stat = await fsp.stat(source).catch((e: NodeJS.ErrnoException) => {
    throw new UserError(e.code === 'ENOENT' ? `cifar10: ${source} does not exist` : `cifar10: cannot access ${source}: ${oneLine(e)}`);
  });
  let files: NamedBytes[];
  let meta: string | undefined;
  if (stat.isDirectory()) {
    ({ files, meta } = await readFolder(source, split));
  } else if (source.endsWith('.bin')) {
    files = [{ name: source, bytes: await fsp.readFile(source) }];
  } else {
    ({ files, meta } = await readArchive(source, stat.size, split));
  }
  const parts = files.map((f) => checkBin(f, verify));
  const count = parts.reduce((n, p) => n + p.length / CIFAR10_RECORD_BYTES, 0);
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let i = 0;
  for (const bytes of parts) {
    for (let off = 0; off < bytes.length; off += CIFAR10_RECORD_BYTES, i++) {
      labels[i] = bytes[off]!;
      images.set(bytes.subarray(off + 1, off + CIFAR10_RECORD_BYTES), i * CIFAR10_IMAGE_BYTES);
    }
  }
  return { images, labels, count, classNames: parseMeta(meta, source), source };
}

interface NamedBytes {
  /** Path shown in errors; its basename decides whether an official md5 applies. */
  name: string;
  bytes: Uint8Array;
}

async function readFolder(dir: string, split: Cifar10Split): Promise<{ files: NamedBytes[]; meta?: string }> {
  const nested = path.join(dir, BATCHES_DIR);
  const root = (await fsp.stat(nested).then((s) => s.isDirectory(), () => false)) ? nested : dir;
  const wanted = cifar10SplitFiles(split);
  const missing: string[] = [];
  const files: NamedBytes[] = [];
  for (const name of wanted) {
    const file = path.join(root, name);
    try {
      files.push({ name: file, bytes: await fsp.readFile(file) });
    } catch {
      missing.push(name);
    }
  }
  if (missing.length > 0) throw new UserError(`cifar10: ${root} lacks ${missing.join(', ')} (needed for the ${split} split)`);
  const meta = await fsp.readFile(path.join(root, META_FILE), 'utf8').catch(() => undefined);
  return { files, meta };
}

/** Streams the .tar.gz once, keeping only the split's .bin entries (and the class names) in memory. */
async function readArchive(archive: string, size: number, split: Cifar10Split): Promise<{ files: NamedBytes[]; meta?: string }> {
  const wanted = new Set(cifar10SplitFiles(split));
  const found = new Map<string, Uint8Array>();
  let meta: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const base = path.posix.basename(entry.path);
      if (entry.type !== 'File' || (!wanted.has(base) && base !== META_FILE)) {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => {
        const bytes = Buffer.concat(chunks);
        if (base === META_FILE) meta = bytes.toString('utf8');
        else found.set(base, bytes);
      });
    },
  });
  const input = createReadStream(archive);
  let read = 0;
  input.on('data', (chunk) => (read += chunk.length));
  try {
    await pipeline(input, parser);
  } catch (e) {
    // The stream reads ahead in chunks, so the offset says where reading stood, not the exact bad byte.
    throw new UserError(`cifar10: ${archive}: bad gzip data or truncated archive, failed with ${read} of ${size} bytes read: ${oneLine(e)}`);
  }
  const missing = [...wanted].filter((n) => !found.has(n));
  if (missing.length > 0) throw new UserError(`cifar10: ${archive} lacks ${missing.join(', ')} (needed for the ${split} split)`);
  return { files: [...wanted].map((n) => ({ name: `${archive}:${BATCHES_DIR}/${n}`, bytes: found.get(n)! })), meta };
}

/** Validates a .bin's size, labels and (for full-size official files) md5; returns its bytes. */
function checkBin({ name, bytes }: NamedBytes, verify: 'auto' | 'off'): Uint8Array {
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / CIFAR10_RECORD_BYTES) * CIFAR10_RECORD_BYTES;
    throw new UserError(`cifar10: ${name}: size ${bytes.length} is not a positive multiple of ${CIFAR10_RECORD_BYTES} (record size); the partial record starts at byte offset ${whole}`);
  }
  for (let off = 0; off < bytes.length; off += CIFAR10_RECORD_BYTES) {
    if (bytes[off]! > 9) {
      throw new UserError(`cifar10: ${name}: record ${off / CIFAR10_RECORD_BYTES} at byte offset ${off} has label ${bytes[off]} (expected 0-9)`);
    }
  }
  const expected = CIFAR10_FILE_MD5[path.posix.basename(name.replace(/\\/g, '/'))];
  if (verify === 'auto' && expected !== undefined && bytes.length === OFFICIAL_FILE_BYTES) {
    const actual = md5(bytes);
    if (actual !== expected) throw new UserError(`cifar10: ${name}: md5 ${actual} differs from the published ${expected}: the file is corrupt or modified`);
  }
  return bytes;
}

function parseMeta(meta: string | undefined, source: string): string[] {
  if (meta === undefined) return [...CIFAR10_CLASSES];
  const names = meta.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length !== 10) throw new UserError(`cifar10: ${source}: ${META_FILE} lists ${names.length} class names, expected 10`);
  return names;
}

export function md5(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
}

export interface DownloadCifar10Options {
  url?: string;
  /** Called as bytes arrive; total is undefined when the server sends no Content-Length. */
  onProgress?: (bytes: number, total: number | undefined) => void;
  /** Defaults to the official archive's md5. */
  expectedMd5?: string;
}

/**
 * Downloads the archive into cacheDir and returns its path. A copy already there with the expected md5 is reused;
 * a new one is written to a temp file and renamed only once complete and verified, so a crash never leaves a
 * half-written archive under the final name.
 */
export async function downloadCifar10(cacheDir: string, options: DownloadCifar10Options = {}): Promise<string> {
  const url = options.url ?? CIFAR10_URL;
  const expectedMd5 = options.expectedMd5 ?? CIFAR10_ARCHIVE_MD5;
  const target = path.join(cacheDir, CIFAR10_ARCHIVE_NAME);
  await fsp.mkdir(cacheDir, { recursive: true });
  if ((await fileMd5(target).catch(() => undefined)) === expectedMd5) return target;
  const temp = path.join(cacheDir, `.${CIFAR10_ARCHIVE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const response = await get(url, 5);
    const header = response.headers['content-length'];
    const total = header === undefined ? undefined : Number(header);
    const hash = createHash('md5');
    let received = 0;
    response.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
    });
    const out = createWriteStream(temp, { flags: 'wx' });
    await pipeline(response, out);
    if (total !== undefined && received !== total) throw new UserError(`download of ${url} ended after ${received} of ${total} bytes`);
    const actual = hash.digest('hex');
    if (actual !== expectedMd5) throw new UserError(`download of ${url}: md5 ${actual} differs from the expected ${expectedMd5}`);
    const fh = await fsp.open(temp, 'r+');
    await fh.sync().finally(() => fh.close());
    await fsp.rename(temp, target);
    return target;
  } catch (e) {
    await fsp.rm(temp, { force: true });
    if (e instanceof UserError) throw e;
    throw new UserError(`download of ${url} failed: ${oneLine(e)}`);
  }
}

async function fileMd5(file: string): Promise<string> {
  const hash = createHash('md5');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** GET that follows a few redirects (the official host may redirect http to https). */
function get(url: string, redirects: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status >= 300 && status < 400 && location !== undefined && redirects > 0) {
        res.resume();
        resolve(get(new URL(location, url).toString(), redirects - 1));
      } else if (status !== 200) {
        res.resume();
        reject(new UserError(`download of ${url} failed: HTTP ${status}`));
      } else {
        resolve(res);
      }
    });
    req.on('error', reject);
  });
}
