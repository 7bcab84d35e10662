// `tsc-nn train` end to end through the built binary, on small generated CIFAR-format data and the smallest
// ShuffleNetV1 (0.5x, group 3, cifar stem) on gpu.js's cpu backend: checkpoints, logs, exact resume, bad input, NaN.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCifarBin } from '../src/runtime/data/cifar10';
import { loadCheckpoint } from '../src/runtime/checkpoint/model-checkpoint';
import { makeRecords, useTempDir, writeBatchesFolder } from './data/helpers';
import { availableBackends } from '../src/backends/registry';

const root = path.resolve(__dirname, '..');
const tmp = useTempDir('tsc-nn-train-');
// Compiled programs are cached in the temp dir: the tests exercise this compiler, and leave no files behind.
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], {
  cwd: root, encoding: 'utf8', env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') }, timeout: 110_000,
});

/** 64 training images over the five data_batch files (16 steps of 4 per epoch) and 10 test images. */
function writeData(dir: string): string {
  const records = makeRecords(74, 3);
  const bins: Record<string, Uint8Array> = { 'test_batch.bin': writeCifarBin(records.slice(64)) };
  for (let i = 0; i < 5; i++) bins[`data_batch_${i + 1}.bin`] = writeCifarBin(records.slice(13 * i, Math.min(64, 13 * (i + 1))));
  writeBatchesFolder(dir, bins);
  return dir;
}

interface LogRow { epoch: number; step: number; loss: number; lr: number; top1: number; ms: number }
const readLog = (dir: string): LogRow[] => fs.readFileSync(path.join(dir, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogRow);

const small = ['--size', '0.5x', '--group', '3', '--stem', 'cifar', '--batch', '4', '--epochs', '2', '--no-eval', '--backend', 'cpu'];
let data: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
  data = writeData(path.join(tmp(), 'data'));
});

describe('tsc-nn train', () => {
  it('writes a checkpoint named by epoch and step, a JSONL line per step and the loss curve', async () => {
    const out = path.join(tmp(), 'full');
    const r = cli('train', '--data', data, ...small, '--max-steps', '4', '--out', out);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/saved .*shufflenetv1-1_4\.safetensors after 4 steps/);
    // 4 of the epoch's 16 steps: "epoch 1, step 4"; the seed's naming.
    expect(fs.readdirSync(out).sort()).toEqual(['curves.svg', 'shufflenetv1-1_4.safetensors', 'train_log.jsonl']);

    const log = readLog(out);
    expect(log.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    for (const l of log) {
      expect(l.epoch).toBe(1);
      expect(Number.isFinite(l.loss) && l.loss > 0).toBe(true);
      expect(l.lr).toBeGreaterThan(0);
    }
    // Warm-up lasts 4 epochs, cut to the run's 2 epochs of 16 steps: the rate rises linearly by base / 32.
    expect(log[0]!.lr).toBeCloseTo(0.05 / 32, 12);
    expect(log[3]!.lr).toBeCloseTo((4 * 0.05) / 32, 12);
    expect(fs.readFileSync(path.join(out, 'curves.svg'), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*training loss[\s\S]*<\/svg>$/);

    const ckpt = await loadCheckpoint(path.join(out, 'shufflenetv1-1_4.safetensors'));
    expect(ckpt.config).toMatchObject({ model: 'shufflenet', size: '0.5x', group: 3, classes: 10, stem: 'cifar' });
    expect(ckpt.step).toBe(4);
    expect(ckpt.training).toMatchObject({ batch: 4, epochs: 2, seed: 1 });
    expect(ckpt.shapes.get('first_conv.0.weight')).toEqual([12, 3, 3, 3]);
    expect(ckpt.shapes.get('classifier.weight')).toEqual([10, 480]);
    expect(ckpt.shapes.get('momentum.classifier.weight')).toEqual([10, 480]);
    for (const [name, t] of ckpt.tensors) expect(t.every(Number.isFinite), name).toBe(true);
    // Four steps moved the weights away from their initial values (a BN bias starts at 0).
    expect(ckpt.tensors.get('first_conv.1.bias')!.some((v) => v !== 0)).toBe(true);
  });

  it('trains on every other backend that starts here (wasm, js, and the GPU backends webgpu and gl) with the losses of cpu', () => {
    const losses = (backend: string): number[] => {
      const out = path.join(tmp(), `on-${backend}`);
      const r = cli('train', '--data', data, ...small.slice(0, -1), backend, '--max-steps', '2', '--out', out);
      expect(r.status, r.stderr).toBe(0);
      return readLog(out).map((l) => l.loss);
    };
    const reference = losses('cpu');
    const others = availableBackends().filter((b) => b !== 'cpu' && b !== 'webasm');
    expect(others).toEqual(expect.arrayContaining(['wasm', 'js']));
    for (const b of others) {
      const got = losses(b);
      got.forEach((l, i) => expect(Math.abs(l - reference[i]!), `${b} step ${i + 1}: ${l} vs cpu ${reference[i]}`).toBeLessThan(1e-4));
    }
  }, 600_000);

  it('resumes exactly: 2 steps, then --resume for 2 more, equals 4 uninterrupted steps', async () => {
    const full = path.join(tmp(), 'full');
    expect(fs.existsSync(path.join(full, 'shufflenetv1-1_4.safetensors')), 'needs the previous test').toBe(true);
    const out = path.join(tmp(), 'resumed');
    const first = cli('train', '--data', data, ...small, '--max-steps', '2', '--out', out);
    expect(first.status, first.stderr).toBe(0);
    const middle = path.join(out, 'shufflenetv1-1_2.safetensors');
    expect(fs.existsSync(middle)).toBe(true);
    // The configuration and schedule come from the checkpoint: no --size or --epochs here.
    const second = cli('train', '--data', data, '--backend', 'cpu', '--no-eval', '--resume', middle, '--max-steps', '2', '--out', out);
    expect(second.status, second.stderr).toBe(0);

    const a = readLog(full);
    const b = readLog(out);
    expect(b.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    for (let i = 0; i < 4; i++) {
      expect(b[i]!.loss, `loss of step ${i + 1}`).toBe(a[i]!.loss);
      expect(b[i]!.lr).toBe(a[i]!.lr);
    }
    // Same data order, augmentation, parameters, BN statistics and momentum: the same bytes.
    const x = await loadCheckpoint(path.join(full, 'shufflenetv1-1_4.safetensors'));
    const y = await loadCheckpoint(path.join(out, 'shufflenetv1-1_4.safetensors'));
    expect([...y.tensors.keys()].sort()).toEqual([...x.tensors.keys()].sort());
    for (const [name, t] of x.tensors) expect(Buffer.from(y.tensors.get(name)!.buffer).equals(Buffer.from(t.buffer)), name).toBe(true);
  });

  it('a non-finite loss stops with one line naming the step, and the last good checkpoint stays intact', async () => {
    const resumed = path.join(tmp(), 'resumed', 'shufflenetv1-1_2.safetensors');
    expect(fs.existsSync(resumed), 'needs the previous test').toBe(true);
    const out = path.join(tmp(), 'nan');
    fs.mkdirSync(out);
    const good = path.join(out, 'shufflenetv1-1_2.safetensors');
    fs.copyFileSync(resumed, good);
    const before = fs.readFileSync(good);
    // Step 3 runs on good weights and updates them with a rate of 1e30; step 4's loss is then NaN.
    const r = cli('train', '--data', data, '--backend', 'cpu', '--no-eval', '--resume', good, '--lr', '1e30', '--warmup-epochs', '0', '--save-every', '1', '--max-steps', '4', '--out', out);
    expect(r.status).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('tsc-nn'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^tsc-nn train: loss is (NaN|-?Infinity) at step 4 \(epoch 1\): training stopped/);
    expect(errors[0]).toContain(`the last good checkpoint is ${good}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readLog(out).map((l) => l.step)).toEqual([3]);
    // The good checkpoint is untouched; the one holding the exploded weights is moved out of the rotation.
    expect(fs.readFileSync(good).equals(before)).toBe(true);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.safetensors'))).toEqual(['shufflenetv1-1_2.safetensors']);
    expect(fs.existsSync(path.join(out, 'shufflenetv1-1_3.safetensors.nonfinite'))).toBe(true);
    expect(errors[0]).toContain('shufflenetv1-1_3.safetensors.nonfinite');
  });

  it('Ctrl-C (SIGINT) saves a checkpoint and exits cleanly', async () => {
    const out = path.join(tmp(), 'interrupted');
    const child = spawn(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), 'train', '--data', data, ...small, '--out', out], {
      cwd: root, env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    // Interrupt once the first step is logged.
    const log = path.join(out, 'train_log.jsonl');
    while (!(fs.existsSync(log) && fs.readFileSync(log, 'utf8').length > 0)) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(130);
    const steps = readLog(out).length;
    expect(stdout).toMatch(new RegExp(`interrupted: saved .*shufflenetv1-1_${steps}\\.safetensors; continue with --resume`));
    const ckpt = await loadCheckpoint(path.join(out, `shufflenetv1-1_${steps}.safetensors`));
    expect(ckpt.step).toBe(steps);
  });

  it('without --data or --download, says how to get data', () => {
    const r = cli('train', '--size', '0.5x', '--out', path.join(tmp(), 'nodata'));
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tsc-nn train: no data: pass --data PATH .* or --download/);
  });

  it('a corrupt --resume checkpoint is one line naming the file', () => {
    const bad = path.join(tmp(), 'corrupt.safetensors');
    fs.writeFileSync(bad, fs.readFileSync(path.join(tmp(), 'full', 'shufflenetv1-1_4.safetensors')).subarray(0, 5000));
    const r = cli('train', '--data', data, ...small, '--resume', bad, '--out', path.join(tmp(), 'corrupt-run'));
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toMatch(/truncated/);
  });
});
