// Any model file trains, evaluates and predicts: a small CIFAR ResNet with option-A shortcuts, written outside the
// project the way the README describes (its shortcut a custom op with defineOp and a VJP), through the CLI and
// through the library from a plain Node script. Small generated CIFAR-format data a small network can learn.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCifarBin } from '../src/runtime/data/cifar10';
import { loadCheckpoint } from '../src/runtime/checkpoint/model-checkpoint';
import { loadModel } from '../src/api/load-model';
import { compileModel } from '../src/api/compile';
import { makeLearnableRecords, useTempDir, writeBatchesFolder } from './data/helpers';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { UserError } from '../src/ir/errors';
import { batchNormOf, batchNormParams } from '../src/ir/model';

const root = path.resolve(__dirname, '..');
const tmp = useTempDir('tsc-nn-any-model-');
const env = () => ({ ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') });
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: tmp(), encoding: 'utf8', env: env(), timeout: 115_000 });
const oneLine = (r: ReturnType<typeof cli>): string => {
  expect(r.status, r.stdout).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
};

// A user's model file: ResNet (He et al. 2016, section 4.2) with n = 1 and narrow stages, at 16x16.
const USER_RESNET = `import { add, batchNorm, compute, conv2d, defineModel, defineOp, dense, globalAvgPool, relu, select, type ParamSpec, type Tensor } from 'tsc-nn';

const shortcutGrad = defineOp<{ pad: number }>({
  name: 'tiny_shortcut_grad',
  compute: ([g, x], { pad }) => compute(x!.shape, (n, c, y, w) => select(y.mod(2).eq(0).and(w.mod(2).eq(0)), g!.at(n, c.add(pad), y.idiv(2), w.idiv(2)), 0)),
});
const shortcutOp = defineOp<{ pad: number }>({
  name: 'tiny_shortcut',
  compute: ([x], { pad }) => {
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    return compute([n, c + 2 * pad, h / 2, w / 2], (i, ch, y, xx) => select(ch.ge(pad).and(ch.lt(c + pad)), x!.at(i, ch.sub(pad), y.mul(2), xx.mul(2)), 0));
  },
  vjp: (g, [x], _out, attrs) => [shortcutGrad([g, x!], attrs)],
});

const conv = (o: number, i: number): ParamSpec => ({ shape: [o, i, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 9 * i } });
const bn = (p: string, c: number): Record<string, ParamSpec> => ({
  [p + '.weight']: { shape: [c], role: 'param', init: { kind: 'const', value: 1 } },
  [p + '.bias']: { shape: [c], role: 'param', init: { kind: 'const', value: 0 } },
  [p + '.running_mean']: { shape: [c], role: 'state', init: { kind: 'const', value: 0 } },
  [p + '.running_var']: { shape: [c], role: 'state', init: { kind: 'const', value: 1 } },
});
const widths = [8, 16, 32];

export default defineModel({
  name: 'tiny-resnet',
  defaults: { width: 8, classes: 10 },
  params: ({ classes }) => {
    const p: Record<string, ParamSpec> = { 'conv1.weight': conv(8, 3), ...bn('bn1', 8) };
    widths.forEach((w, s) => Object.assign(p, { ['layer' + s + '.conv1.weight']: conv(w, s ? w / 2 : w), ...bn('layer' + s + '.bn1', w), ['layer' + s + '.conv2.weight']: conv(w, w), ...bn('layer' + s + '.bn2', w) }));
    return { ...p, 'fc.weight': { shape: [classes, 32], role: 'param', init: { kind: 'he_normal', fanIn: 32 } }, 'fc.bias': { shape: [classes], role: 'param', init: { kind: 'const', value: 0 } } };
  },
  inputs: (_c, batch) => ({ image: [batch, 3, 16, 16] }),
  forward: (p, { image }, _c, { training }) => {
    const norm = (x: Tensor, name: string) => batchNorm(x, { weight: p[name + '.weight']!, bias: p[name + '.bias']!, running_mean: p[name + '.running_mean']!, running_var: p[name + '.running_var']! }, { training });
    let x = relu(norm(conv2d(image!, p['conv1.weight']!, { padding: 1 }), 'bn1'));
    widths.forEach((w, s) => {
      const stride = s ? 2 : 1;
      const f = norm(conv2d(relu(norm(conv2d(x, p['layer' + s + '.conv1.weight']!, { padding: 1, stride }), 'layer' + s + '.bn1')), p['layer' + s + '.conv2.weight']!, { padding: 1 }), 'layer' + s + '.bn2');
      x = relu(add(f, s ? shortcutOp([x], { pad: w / 4 }) : x));
    });
    return dense(globalAvgPool(x), p['fc.weight']!, p['fc.bias']!);
  },
});
`;

let data: string;
let modelFile: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
  const records = makeLearnableRecords(160 + 20, 5);
  const bins: Record<string, Uint8Array> = { 'test_batch.bin': writeCifarBin(records.slice(160)) };
  for (let i = 0; i < 5; i++) bins[`data_batch_${i + 1}.bin`] = writeCifarBin(records.slice(32 * i, 32 * (i + 1)));
  data = path.join(tmp(), 'data');
  writeBatchesFolder(data, bins);
  modelFile = path.join(tmp(), 'tiny-resnet.ts');
  fs.writeFileSync(modelFile, USER_RESNET);
});

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('a model file of the user through the CLI', () => {
  let ckpt: string;

  it('trains: the loss falls within 60 steps, and the checkpoint names the model and its configuration', async () => {
    const out = path.join(tmp(), 'run');
    const r = cli('train', modelFile, '--width', '8', '--data', data, '--batch', '16', '--epochs', '6', '--lr', '0.05', '--warmup-epochs', '0.5', '--weight-decay', '5e-4', '--max-steps', '60', '--no-eval', '--backend', 'wasm', '--out', out, '--json');
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ model: 'tiny-resnet', steps: 60, interrupted: false, settings: { batch: 16, weightDecay: 5e-4, lr: 0.05 } });
    const losses = fs.readFileSync(path.join(out, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    expect(losses).toHaveLength(60);
    expect(mean(losses.slice(-10))).toBeLessThan(0.6 * mean(losses.slice(0, 10)));
    ckpt = summary.checkpoint;
    expect(path.basename(ckpt)).toBe('tiny-resnet-6_10.safetensors');
    const saved = await loadCheckpoint(ckpt);
    expect(saved.config).toEqual({ model: 'tiny-resnet', width: 8, classes: 10 });
    expect(saved.training).toMatchObject({ weightDecay: 5e-4, momentum: 0.9, labelSmoothing: 0.1 });
  });

  it('evaluates and predicts with its checkpoint', () => {
    const e = cli('eval', modelFile, '--checkpoint', ckpt, '--data', data, '--json');
    expect(e.status, e.stderr).toBe(0);
    const r = JSON.parse(e.stdout);
    expect(r).toMatchObject({ images: 20, config: { model: 'tiny-resnet', width: 8 } });
    // Colours are easy: after 60 steps the model is far above chance (10 %).
    expect(r.top1).toBeGreaterThan(0.5);
    const p = cli('predict', modelFile, '--checkpoint', ckpt, '--data', data, '--count', '8', '--out', path.join(tmp(), 'grid.png'), '--json');
    expect(p.status, p.stderr).toBe(0);
    const predictions = JSON.parse(p.stdout) as { index: number; logits: number[] }[];
    expect(predictions.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(predictions.every((x) => x.logits.length === 10)).toBe(true);
    expect(fs.existsSync(path.join(tmp(), 'grid.png'))).toBe(true);
  });

  it('eval and predict without the model file name the model and ask for its file', () => {
    expect(oneLine(cli('eval', '--checkpoint', ckpt, '--data', data))).toMatch(/is a checkpoint of model tiny-resnet: give its model file/);
    expect(oneLine(cli('predict', '--checkpoint', ckpt, '--data', data))).toMatch(/is a checkpoint of model tiny-resnet: give its model file/);
  });

  it('bad model arguments are one line and exit 1, never ignored', () => {
    expect(oneLine(cli('train', 'nope.ts', '--data', data))).toMatch(/nope\.ts: no such file/);
    fs.writeFileSync(path.join(tmp(), 'not-a-model.ts'), 'export const x = 1;\n');
    expect(oneLine(cli('train', 'not-a-model.ts', '--data', data))).toMatch(/not-a-model\.ts: export a model as/);
    expect(oneLine(cli('train', modelFile, '--depth', '3', '--data', data))).toMatch(/unknown option --depth for model tiny-resnet: valid options are --width, --classes/);
    expect(oneLine(cli('train', modelFile, modelFile, '--data', data))).toMatch(/at most one model file/);
    // A model whose forward returns no [batch, classes] logits.
    fs.writeFileSync(path.join(tmp(), 'map.ts'), USER_RESNET.replace("return dense(globalAvgPool(x), p['fc.weight']!, p['fc.bias']!);", 'return x;'));
    expect(oneLine(cli('train', 'map.ts', '--data', data, '--max-steps', '1'))).toMatch(/model tiny-resnet: forward returns \[128, 32, 4, 4\]; train, eval and predict need \[batch, classes\] logits/);
  });
});

describe('a model file of the user through the library', () => {
  it('the README example runs as written from plain Node (tsc-nn resolved as a user gets it)', () => {
    const example = fs.readFileSync(path.join(root, 'examples', 'api.js'), 'utf8');
    expect(fs.readFileSync(path.join(root, 'README.md'), 'utf8')).toContain(example.trim());
    // A folder outside the project where `require('tsc-nn')` finds this package, as after `npm install tsc-nn`.
    const user = path.join(tmp(), 'user');
    fs.mkdirSync(path.join(user, 'node_modules'), { recursive: true });
    fs.symlinkSync(root, path.join(user, 'node_modules', 'tsc-nn'), 'dir');
    fs.copyFileSync(path.join(root, 'examples', 'api.js'), path.join(user, 'api.js'));
    const r = spawnSync(process.execPath, ['api.js', modelFile, data], { cwd: user, encoding: 'utf8', env: env(), timeout: 115_000 });
    expect(r.status, r.stderr).toBe(0);
    const [, first, last] = /loss (\d+\.\d+) -> (\d+\.\d+); saved (.*)$/m.exec(r.stdout)!.map(String);
    expect(Number(last)).toBeLessThan(Number(first));
    expect(r.stdout.match(/^image \d: class \d$/gm)).toHaveLength(4);
  });

  it('compileModel: params are the initialisers by name and writable in place; wasm and js agree on run; training steps lower the loss', async () => {
    const model = loadModel(modelFile);
    const wasm = await compileModel(model, { mode: 'infer', batch: 2, backend: 'wasm', seed: 3 });
    const js = await compileModel(model, { mode: 'infer', batch: 2, backend: 'js', seed: 3 });
    try {
      expect(wasm.inputs).toEqual({ image: [2, 3, 16, 16] });
      expect(Object.keys(wasm.params)).toEqual(Object.keys(model.params(wasm.config)));
      expect(wasm.params['bn1.weight']!.every((v) => v === 1)).toBe(true);
      const image = Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i));
      const a = wasm.run({ image }).logits;
      const b = js.run({ image }).logits;
      expect(a).toHaveLength(20);
      const scale = Math.max(...Array.from(b, Math.abs));
      a.forEach((v, i) => expect(Math.abs(v - b[i]!) / scale).toBeLessThan(1e-4));
      // Writing a parameter in place changes what run computes: a zero classifier gives its bias, 0.25 everywhere.
      wasm.params['fc.weight']!.fill(0);
      wasm.params['fc.bias']!.fill(0.25);
      expect(Array.from(wasm.run({ image }).logits)).toEqual(new Array(20).fill(0.25));
      expect(() => wasm.run({ image: new Float32Array(3) })).toThrow(/input image has 3 elements, \[2, 3, 16, 16\] needs 1536/);
      expect(() => wasm.run({ image, label: [1, 2] })).toThrow(/unknown input label; it takes image/);
    } finally {
      wasm.close();
      js.close();
    }
    const train = await compileModel(model, { mode: 'train', batch: 10, backend: 'wasm' });
    try {
      expect(train.inputs).toEqual({ image: [10, 3, 16, 16], label: [10], lr: [] });
      const records = makeLearnableRecords(10, 9);
      const image = new Float32Array(10 * 3 * 16 * 16);
      // Every class's colour at 16x16 (the top-left quarter of each 32x32 image is enough for a colour).
      records.forEach((rec, n) => { for (let c = 0; c < 3; c++) for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) image[((n * 3 + c) * 16 + y) * 16 + x] = rec.image[c * 1024 + y * 32 + x]! / 255 - 0.5; });
      const label = records.map((rec) => rec.label);
      const before = Float32Array.from(train.params['conv1.weight']!);
      const losses = Array.from({ length: 12 }, () => train.run({ image, label, lr: 0.05 }).loss!);
      expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
      expect(train.params['conv1.weight']!.some((v, i) => v !== before[i])).toBe(true);
    } finally {
      train.close();
    }
  });
});

describe('BatchNorm parameter helpers', () => {
  it('declare the four tensors by PyTorch\'s names and pick them back for batchNorm; a missing one names itself', () => {
    const specs = batchNormParams('layer1.bn', 6, 0);
    expect(Object.keys(specs)).toEqual(['layer1.bn.weight', 'layer1.bn.bias', 'layer1.bn.running_mean', 'layer1.bn.running_var']);
    expect(specs['layer1.bn.weight']).toEqual({ shape: [6], role: 'param', init: { kind: 'const', value: 0 } });
    expect(specs['layer1.bn.running_var']).toEqual({ shape: [6], role: 'state', init: { kind: 'const', value: 1 } });
    const params = { w: { shape: [6], role: 'param' }, b: { shape: [6], role: 'param' }, m: { shape: [6], role: 'state' }, v: { shape: [6], role: 'state' } } as const;
    const g = trace({ params, inputs: { x: [2, 6, 3, 3] } }, (p, { x }) => {
      const named = { 'bn.weight': p.w!, 'bn.bias': p.b!, 'bn.running_mean': p.m!, 'bn.running_var': p.v! };
      const picked = batchNormOf(named, 'bn');
      expect([picked.weight, picked.bias, picked.running_mean, picked.running_var]).toEqual([p.w, p.b, p.m, p.v]);
      expect(() => batchNormOf(named, 'bn2')).toThrow(UserError);
      expect(() => batchNormOf({ 'bn.weight': p.w! }, 'bn')).toThrow(/no parameter bn\.bias: declare it with batchNormParams\('bn', channels\)/);
      return { y: ops.batchNorm(x!, picked, { training: false }) };
    });
    expect(g.outputs).toHaveLength(1);
  });
});
