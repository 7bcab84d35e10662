// Test data generators: small CIFAR-10-shaped files, folders and archives in a temp dir.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { create } from 'tar';
import { afterAll, beforeAll } from 'vitest';
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, type CifarRecord } from '../../src/runtime/data/cifar10';

/** Deterministic pseudo-random records (an LCG, independent of the code under test). */
export function makeRecords(count: number, seed = 1): CifarRecord[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  return Array.from({ length: count }, () => {
    const image = new Uint8Array(CIFAR10_IMAGE_BYTES);
    for (let i = 0; i < image.length; i++) image[i] = next();
    return { label: next() % 10, image };
  });
}

/** Records a small network can learn in a few dozen steps: each class has its own colour, under pixel noise. */
export function makeLearnableRecords(count: number, seed = 1): CifarRecord[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  const plane = CIFAR10_IMAGE_BYTES / 3;
  return Array.from({ length: count }, (_, i) => {
    const label = i % 10;
    const colour = [25 * label, 250 - 25 * label, (label % 3) * 100];
    const image = new Uint8Array(CIFAR10_IMAGE_BYTES);
    for (let c = 0; c < 3; c++) for (let k = 0; k < plane; k++) image[c * plane + k] = Math.max(0, Math.min(255, colour[c]! + (next() % 41) - 20));
    return { label, image };
  });
}

/** A temp dir made before the enclosing describe's tests and removed after them (so skipped suites leave none). */
export function useTempDir(prefix: string): () => string {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return () => dir;
}

/** Writes cifar-10-batches-bin/ under root with the given .bin contents and the class-name file. */
export function writeBatchesFolder(root: string, bins: Record<string, Uint8Array>): string {
  const folder = path.join(root, 'cifar-10-batches-bin');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'batches.meta.txt'), CIFAR10_CLASSES.join('\n') + '\n\n');
  for (const [name, bytes] of Object.entries(bins)) writeFileSync(path.join(folder, name), bytes);
  return folder;
}

/** Packs root/cifar-10-batches-bin into a .tar.gz with the official layout. */
export async function writeArchive(root: string, file: string): Promise<string> {
  await create({ gzip: true, file, cwd: root, portable: true }, ['cifar-10-batches-bin']);
  return file;
}
