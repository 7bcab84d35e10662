// `tsc-nn eval` and `tsc-nn predict` end to end through the built binary, with a checkpoint of the smallest
// ShuffleNetV1 (0.5x, group 3, cifar stem) and small generated CIFAR-format test data, on gpu.js's cpu backend.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { shufflenet } from '../src/models/shufflenet';
import { buildGraph } from '../src/frontend/build';
import { evaluateOutputs } from '../src/ir/reference';
import { initParams } from '../src/runtime/init';
import { tensorShapes } from '../src/api/programs';
import { crossEntropy } from '../src/runtime/session';
import { saveCheckpoint } from '../src/runtime/checkpoint/model-checkpoint';
import { writeSafetensors } from '../src/runtime/checkpoint/safetensors';
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, loadCifar10, writeCifarBin, type Cifar10Data } from '../src/runtime/data/cifar10';
import { epochOrder, makeBatch } from '../src/runtime/data/batches';
import { RIGHT_COLOR, WRONG_COLOR } from '../src/runtime/report/plots';
import { Rng } from './helpers';
import { makeRecords, useTempDir, writeBatchesFolder } from './data/helpers';

const root = path.resolve(__dirname, '..');
const tmp = useTempDir('tsc-nn-eval-');
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], {
  cwd: root, encoding: 'utf8', env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') }, timeout: 110_000,
});

const config = shufflenet.configure!({ size: '0.5x', group: 3, stem: 'cifar', classes: 10 });
let data: string;
let testBin: string;
let test: Cifar10Data;
let ckptDir: string;
let ckpt: string;
let tensors: Map<string, Float32Array>;

/** Initial parameters with BN statistics made non-trivial, so the folded program has real work to do. */
function checkpointTensors(): Map<string, Float32Array> {
  const t = initParams(shufflenet.params(config), 5);
  const rng = Rng.derive(11);
  for (const [name, v] of t) {
    if (name.endsWith('running_mean')) for (let i = 0; i < v.length; i++) v[i] = 0.2 * (rng.next() - 0.5);
    if (name.endsWith('running_var')) for (let i = 0; i < v.length; i++) v[i] = 0.5 + rng.next();
    if (name.endsWith('.bias')) for (let i = 0; i < v.length; i++) v[i] = 0.1 * (rng.next() - 0.5);
  }
  return t;
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
  const records = makeRecords(10 + 5 * 4, 9);
  const bins: Record<string, Uint8Array> = { 'test_batch.bin': writeCifarBin(records.slice(0, 10)) };
  for (let i = 0; i < 5; i++) bins[`data_batch_${i + 1}.bin`] = writeCifarBin(records.slice(10 + 4 * i, 14 + 4 * i));
  data = path.join(tmp(), 'data');
  testBin = path.join(writeBatchesFolder(data, bins), 'test_batch.bin');
  test = await loadCifar10(data, 'test');
  ckptDir = path.join(tmp(), 'run');
  fs.mkdirSync(ckptDir);
  ckpt = path.join(ckptDir, 'shufflenetv1-3_16.safetensors');
  tensors = checkpointTensors();
  const shapes = tensorShapes(shufflenet, config);
  // A momentum buffer, as training checkpoints hold: inference ignores it.
  tensors.set('momentum.classifier.bias', new Float32Array(10));
  await saveCheckpoint(ckpt, tensors, shapes, { config: { model: 'shufflenet', ...config }, epoch: 3, step: 48, training: { seed: 1, batch: 4 } });
});

const small = ['--backend', 'cpu', '--batch', '4'];

interface EvalJson { checkpoint: string; loss: number; top1: number; top5: number; images: number; seconds: number; config: Record<string, unknown> }
interface PredictionJson { index: number; label: number; predicted: number; logits: number[] }

const argmax = (row: readonly number[]): number => row.indexOf(Math.max(...row));

/** The PNG's size and RGB pixels (encodePng writes 8-bit RGB with filter 0 on every scanline). */
function decodePng(bytes: Buffer): { width: number; height: number; pixels: Buffer } {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(bytes.toString('ascii', 12, 16)).toBe('IHDR');
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const idat = bytes.indexOf('IDAT');
  const raw = inflateSync(bytes.subarray(idat + 4, idat + 4 + bytes.readUInt32BE(idat - 4)));
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) raw.copy(pixels, y * width * 3, y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1));
  return { width, height, pixels };
}

const hasColor = (pixels: Buffer, [r, g, b]: readonly number[]): boolean => {
  for (let i = 0; i < pixels.length; i += 3) if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b) return true;
  return false;
};

describe('tsc-nn eval', () => {
  it('--json prints one object with loss, top-1, top-5, images and time, and appends to eval_log.txt', () => {
    const r = cli('eval', '--checkpoint', ckpt, '--data', data, ...small, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const e = JSON.parse(r.stdout) as EvalJson;
    expect(e.images).toBe(10);
    expect(e.checkpoint).toBe(ckpt);
    expect(e.config).toMatchObject({ size: '0.5x', group: 3, stem: 'cifar', classes: 10, resolution: 32 });
    expect(Number.isFinite(e.loss) && e.loss > 0).toBe(true);
    expect(e.seconds).toBeGreaterThan(0);
    for (const k of ['top1', 'top5'] as const) expect(Number.isInteger(e[k] * 10) && e[k] >= 0 && e[k] <= 1, k).toBe(true);
    expect(e.top5).toBeGreaterThanOrEqual(e.top1);

    const log = fs.readFileSync(path.join(ckptDir, 'eval_log.txt'), 'utf8').trim().split('\n');
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
    expect(log[0]).toContain(ckpt);
    expect(log[0]).toContain(`top-1 ${e.top1.toFixed(4)} top-5 ${e.top5.toFixed(4)}`);
  });

  it('agrees with predict: the same top-1 and loss from the logits of every test image; a .bin file as data', () => {
    const e = JSON.parse(cli('eval', '--checkpoint', ckpt, '--data', testBin, ...small, '--json').stdout) as EvalJson;
    const r = cli('predict', '--checkpoint', ckpt, '--data', data, ...small, '--count', '16', '--json', '--out', path.join(tmp(), 'all.png'));
    expect(r.status, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as PredictionJson[];
    expect(p).toHaveLength(10);
    expect(e.top1).toBeCloseTo(p.filter((x) => x.predicted === x.label).length / 10, 12);
    const logits = new Float32Array(p.flatMap((x) => x.logits));
    expect(e.loss).toBeCloseTo(crossEntropy(logits, p.map((x) => x.label), 10), 5);
    expect(fs.readFileSync(path.join(ckptDir, 'eval_log.txt'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('prints a human summary', () => {
    const r = cli('eval', '--checkpoint', ckpt, '--data', data, ...small);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/shufflenet size 0\.5x, group 3, classes 10, stem cifar/);
    expect(r.stdout).toMatch(/^loss +\d+\.\d{4}$/m);
    expect(r.stdout).toMatch(/^top-1 +\d+\.\d\d%$/m);
    expect(r.stdout).toMatch(/^top-5 +\d+\.\d\d%$/m);
    expect(r.stdout).toMatch(/^images +10$/m);
    expect(r.stdout).toMatch(/^time +\d+\.\d\d s/m);
  });
});

describe('tsc-nn predict', () => {
  it('--json gives index, label, predicted and logits in file order, equal to the reference; writes the PNG', () => {
    const out = path.join(tmp(), 'pred', 'grid.png');
    const r = cli('predict', '--checkpoint', ckpt, '--data', data, ...small, '--count', '6', '--json', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as PredictionJson[];
    expect(p.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const x of p) {
      expect(Object.keys(x).sort()).toEqual(['index', 'label', 'logits', 'predicted']);
      expect(x.label).toBe(test.labels[x.index]);
      expect(x.logits).toHaveLength(10);
      expect(x.predicted).toBe(argmax(x.logits));
    }
    // Image 5 sits in the second, zero-padded batch of 4: its logits equal the float64 reference forward pass of
    // the traced (unfolded) inference graph with the checkpoint's tensors.
    const one = { images: test.images.subarray(5 * CIFAR10_IMAGE_BYTES, 6 * CIFAR10_IMAGE_BYTES), labels: test.labels.subarray(5, 6), count: 1 };
    const opts = { batchSize: 1, seed: 0, train: false, resize: 32 };
    const feeds: Record<string, Float32Array> = { image: makeBatch(one, opts, 0, 0, epochOrder(1, opts, 0)).x };
    for (const [k, v] of tensors) feeds[k] = v;
    const ref = evaluateOutputs(buildGraph(shufflenet, config, { batch: 1, mode: 'infer' }), feeds).logits!;
    const scale = Math.max(...ref.map(Math.abs));
    p[5]!.logits.forEach((v, c) => expect(Math.abs(v - ref[c]!) / scale, `class ${c}`).toBeLessThan(1e-4));

    const png = decodePng(fs.readFileSync(out));
    // The seed's layout, 8 columns: 6 images make one row of cells of 128 pixels (enlarged 4x), titles above them.
    expect(png.width).toBeGreaterThan(6 * 128);
    expect(png.height).toBeGreaterThan(128);
    expect(png.height).toBeLessThan(2 * 128);
    expect(hasColor(png.pixels, RIGHT_COLOR)).toBe(p.some((x) => x.predicted === x.label));
    expect(hasColor(png.pixels, WRONG_COLOR)).toBe(p.some((x) => x.predicted !== x.label));
    expect(fs.readdirSync(path.dirname(out))).toEqual(['grid.png']);
  });

  it('prints a table with class names', () => {
    const out = path.join(tmp(), 'table.png');
    const r = cli('predict', '--checkpoint', ckpt, '--data', testBin, ...small, '--count', '3', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.some((l) => /index +label +predicted +confidence/.test(l))).toBe(true);
    for (let i = 0; i < 3; i++) expect(lines.some((l) => new RegExp(`^ +${i} +${CIFAR10_CLASSES[test.labels[i]!]} +[a-z]+ +\\d+\\.\\d%`).test(l)), `row ${i}`).toBe(true);
    expect(lines.at(-1)).toMatch(new RegExp(`^\\d of 3 right; wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    expect(fs.readFileSync(out).subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  });
});

describe('bad input for eval and predict', () => {
  const oneLine = (r: ReturnType<typeof cli>, command: string): string => {
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]!.startsWith(`tsc-nn ${command}: `)).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    return lines[0]!;
  };

  it('a missing --checkpoint or --data says what to pass', () => {
    for (const command of ['eval', 'predict']) {
      expect(oneLine(cli(command, '--data', data), command)).toMatch(/--checkpoint FILE/);
      const noData = oneLine(cli(command, '--checkpoint', ckpt), command);
      expect(noData).toMatch(/--data PATH/);
      expect(noData).toMatch(/--download/);
    }
  });

  it('a corrupt checkpoint (bad header, truncated data, missing file) is one line naming the file', () => {
    const bytes = fs.readFileSync(ckpt);
    const badHeader = path.join(tmp(), 'bad-header.safetensors');
    const garbled = Buffer.from(bytes);
    garbled.write('{{{{', 8, 'ascii');
    fs.writeFileSync(badHeader, garbled);
    expect(oneLine(cli('eval', '--checkpoint', badHeader, '--data', data, ...small), 'eval')).toMatch(/bad-header\.safetensors: header is not valid JSON/);

    const tooLong = path.join(tmp(), 'too-long.safetensors');
    fs.writeFileSync(tooLong, Buffer.from('garbage, not safetensors'));
    expect(oneLine(cli('predict', '--checkpoint', tooLong, '--data', data, ...small), 'predict')).toMatch(/too-long\.safetensors: header length \d+ runs past the end/);

    const truncated = path.join(tmp(), 'truncated.safetensors');
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 1000));
    expect(oneLine(cli('eval', '--checkpoint', truncated, '--data', data, ...small), 'eval')).toMatch(/truncated\.safetensors.*truncated file/);

    expect(oneLine(cli('predict', '--checkpoint', path.join(tmp(), 'nope.safetensors'), '--data', data), 'predict')).toMatch(/cannot read .*nope\.safetensors/);
  });

  it('a checkpoint of another configuration lists the mismatching tensors', () => {
    const line = oneLine(cli('eval', '--checkpoint', ckpt, '--data', data, ...small, '--size', '1.0x'), 'eval');
    expect(line).toContain(`${ckpt} does not match the model`);
    expect(line).toMatch(/first_conv\.0\.weight is \[12, 3, 3, 3\], the model needs \[24, 3, 3, 3\]/);
    expect(line).toMatch(/overrides of the checkpoint's configuration: size 1\.0x/);
    const classes = oneLine(cli('predict', '--checkpoint', ckpt, '--data', data, ...small, '--classes', '100'), 'predict');
    expect(classes).toMatch(/mis-shaped \(2\): classifier\.weight is \[10, 480\], the model needs \[100, 480\], classifier\.bias is \[10\], the model needs \[100\]/);
  });

  it('a safetensors file without tsc-nn metadata is read as a state_dict: what it lacks and what it has extra is listed', async () => {
    const plain = path.join(tmp(), 'plain.safetensors');
    await writeSafetensors(plain, new Map([['w', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]]));
    const line = oneLine(cli('eval', '--checkpoint', plain, '--data', data), 'eval');
    expect(line).toMatch(/plain\.safetensors does not match the model \(a state_dict without tsc-nn metadata\): missing \(247\): first_conv\.0\.weight, .*; extra \(1\): w$/);
  });
});
