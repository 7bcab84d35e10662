// `tsc-nn export --format onnx`: the exported models run in ONNX Runtime (onnxruntime-node, CPU) and give the logits
// of tsc-nn's float64 reference interpreter on the traced graph; custom ops and bad flags are one-line errors.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, type AnyModel } from '../src/api/load-model';
import { buildGraph } from '../src/frontend/build';
import { evaluateOutputs } from '../src/ir/reference';
import { configure } from '../src/api/classifier';
import { openModelCheckpoint } from '../src/api/checkpoint';
import { tensorShapes } from '../src/api/programs';
import { initParams } from '../src/runtime/init';
import { saveCheckpoint } from '../src/runtime/checkpoint/model-checkpoint';
import { shufflenet } from '../src/models/shufflenet';
import { decodeOnnxModel, exportOnnx, ONNX_IR_VERSION, ONNX_OPSET } from '../src/export/onnx';
import { Rng } from '../src/runtime/data/rng';
import { useTempDir } from './data/helpers';

const root = path.resolve(__dirname, '..');
const tmp = useTempDir('tsc-nn-export-');
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 110_000 });
const pretrained = path.join('pretrained', 'shufflenetv1-0.5x-g3-cifar-16_781.safetensors');

/** Standard ONNX operators the exporter may write (default domain only). */
const STANDARD_OPS = new Set(['Conv', 'BatchNormalization', 'Relu', 'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal',
  'Identity', 'Shape', 'ConstantOfShape', 'Reshape', 'Transpose', 'Concat', 'Slice', 'Pad', 'Expand', 'ReduceSum', 'ReduceMax', 'Gemm',
  'AveragePool', 'MaxPool', 'GlobalAveragePool', 'Flatten']);

/** Initial parameters with BN statistics and biases made non-trivial, so every BN and bias does real work. */
function randomTensors(model: AnyModel, config: Record<string, unknown>, seed: number): Map<string, Float32Array> {
  const t = initParams(model.params(config), seed);
  const rng = Rng.derive(seed, 1);
  for (const [name, v] of t) {
    if (name.endsWith('running_mean')) for (let i = 0; i < v.length; i++) v[i] = 0.4 * (rng.next() - 0.5);
    else if (name.endsWith('running_var')) for (let i = 0; i < v.length; i++) v[i] = 0.5 + rng.next();
    else if (name.endsWith('.bias') || (name.endsWith('.weight') && v.length === model.params(config)[name]!.shape[0])) {
      for (let i = 0; i < v.length; i++) v[i] = (name.endsWith('.bias') ? 0 : 1) + 0.2 * (rng.next() - 0.5);
    }
  }
  return t;
}

const randomImages = (count: number, side: number, seed: number): Float32Array => {
  const rng = Rng.derive(seed, 2);
  return Float32Array.from({ length: count * 3 * side * side }, () => 4 * rng.next() - 2);
};

/** ONNX Runtime's logits for the images (one thread: the machine is shared). */
async function runOnnx(bytes: Uint8Array, images: Float32Array, dims: readonly number[]): Promise<{ logits: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    expect(session.inputNames).toEqual(['image']);
    expect(session.outputNames).toEqual(['logits']);
    const out = await session.run({ image: new ort.Tensor('float32', images, [...dims]) });
    return { logits: out.logits!.data as Float32Array, dims: out.logits!.dims };
  } finally {
    await session.release();
  }
}

/** tsc-nn's float64 reference logits of the traced inference graph. */
function referenceLogits(model: AnyModel, config: Record<string, unknown>, tensors: ReadonlyMap<string, Float32Array>, images: Float32Array, batch: number): Float64Array {
  const feeds: Record<string, Float32Array> = { image: images };
  for (const [k, v] of tensors) feeds[k] = v;
  return evaluateOutputs(buildGraph(model, config, { batch, mode: 'infer' }), feeds).logits!;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

interface ExportJson { out: string; format: string; bytes: number; opset: number; irVersion: number; nodes: number; ops: Record<string, number>; initializers: number; inputs: Record<string, Array<number | string>>; outputs: Record<string, Array<number | string>> }
interface DecodedModel {
  ir_version: number;
  opset_import: Array<{ domain?: string; version: number }>;
  graph: { node: Array<{ op_type: string; domain?: string; attribute?: Array<{ name: string; i?: number; ints?: number[] }> }>; initializer: Array<{ name: string; dims: number[] }> };
  metadata_props?: Array<{ key: string; value: string }>;
}

function checkStandard(file: string): DecodedModel {
  const m = decodeOnnxModel(fs.readFileSync(file)) as unknown as DecodedModel;
  expect(m.ir_version).toBe(ONNX_IR_VERSION);
  expect(m.opset_import.map((o) => [o.domain ?? '', o.version])).toEqual([['', ONNX_OPSET]]);
  for (const n of m.graph.node) {
    expect(STANDARD_OPS.has(n.op_type), n.op_type).toBe(true);
    expect(n.domain ?? '').toBe('');
  }
  return m;
}

let smallFile: string;
let small: AnyModel;
let smallConfig: Record<string, unknown>;
let smallTensors: Map<string, Float32Array>;
let smallCkpt: string;
let resnetCkpt: string;

beforeAll(async () => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
  smallFile = path.join(root, 'examples', 'small-convnet.ts');
  small = loadModel(smallFile);
  smallConfig = configure(small);
  smallTensors = randomTensors(small, smallConfig, 21);
  smallCkpt = path.join(tmp(), 'small-convnet.safetensors');
  await saveCheckpoint(smallCkpt, smallTensors, tensorShapes(small, smallConfig), { config: { model: small.name, ...smallConfig }, epoch: 0, step: 0 });

  const resnet = loadModel(path.join(root, 'models', 'resnet.ts'));
  const resnetConfig = configure(resnet, { depth: 8 });
  resnetCkpt = path.join(tmp(), 'resnet8.safetensors');
  await saveCheckpoint(resnetCkpt, initParams(resnet.params(resnetConfig), 3), tensorShapes(resnet, resnetConfig), { config: { model: 'resnet', ...resnetConfig }, epoch: 0, step: 0 });
});

describe('tsc-nn export --format onnx', () => {
  it('exports the small convnet example (random weights): ONNX Runtime gives the reference logits', async () => {
    const out = path.join(tmp(), 'small.onnx');
    const r = cli('export', 'examples/small-convnet.ts', '--checkpoint', smallCkpt, '--format', 'onnx', '--out', out, '--batch', '4', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const s = JSON.parse(r.stdout) as ExportJson;
    expect(s).toMatchObject({ out, format: 'onnx', opset: 13, irVersion: 7, inputs: { image: [4, 3, 16, 16] }, outputs: { logits: [4, 10] } });
    expect(s.bytes).toBe(fs.statSync(out).size);
    // conv-BN-ReLU, max pool, grouped conv-BN-ReLU, global average pool, dense as one Gemm.
    expect(s.ops).toEqual({ Conv: 2, BatchNormalization: 2, Relu: 2, MaxPool: 1, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });

    const m = checkStandard(out);
    expect(m.graph.initializer.map((t) => t.name).sort()).toEqual([...smallTensors.keys()].sort());
    expect(m.graph.initializer.find((t) => t.name === 'conv2.weight')!.dims).toEqual([16, 4, 3, 3]);
    const conv2 = m.graph.node.filter((n) => n.op_type === 'Conv')[1]!;
    expect(conv2.attribute!.find((a) => a.name === 'group')!.i).toBe(2);
    // 'same' 3x3 stride-2 pooling of 16: 7 * 2 + 3 - 16 = 1 padding row and column, at the end.
    expect(m.graph.node.find((n) => n.op_type === 'MaxPool')!.attribute!.find((a) => a.name === 'pads')!.ints).toEqual([0, 0, 1, 1]);
    expect(JSON.parse(m.metadata_props!.find((p) => p.key === 'tsc-nn.config')!.value)).toEqual({ model: 'small-convnet', ...smallConfig });

    const images = randomImages(4, 16, 5);
    const got = await runOnnx(fs.readFileSync(out), images, [4, 3, 16, 16]);
    expect(got.dims).toEqual([4, 10]);
    const diff = maxAbsDiff(got.logits, referenceLogits(small, smallConfig, smallTensors, images, 4));
    console.log(`small-convnet: max |ONNX Runtime - tsc-nn reference| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
  });

  it('exports the pretrained ShuffleNetV1 0.5x g3 checkpoint: ONNX Runtime gives the reference logits at batch 2', async () => {
    const out = path.join(tmp(), 'nested', 'shufflenet.onnx');
    const r = cli('export', '--checkpoint', pretrained, '--out', out, '--batch', '2', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout) as ExportJson;
    expect(s.inputs).toEqual({ image: [2, 3, 32, 32] });
    expect(s.outputs).toEqual({ logits: [2, 10] });
    // 49 conv-BN pairs, 16 channel shuffles (reshape, transpose, reshape), 3 stride-2 units (average pool, concat),
    // 13 residual adds; the checkpoint's 49 * 5 + 2 tensors plus 32 reshape shapes as initializers.
    expect(s.ops).toMatchObject({ Conv: 49, BatchNormalization: 49, Transpose: 16, Reshape: 32, AveragePool: 3, Concat: 3, Add: 13, GlobalAveragePool: 1, Gemm: 1 });

    const m = checkStandard(out);
    const names = new Set(m.graph.initializer.map((t) => t.name));
    for (const name of ['first_conv.0.weight', 'features.0.branch_main_1.0.weight', 'features.0.branch_main_1.1.running_var', 'classifier.bias']) expect(names.has(name), name).toBe(true);
    for (const pool of m.graph.node.filter((n) => n.op_type === 'AveragePool')) {
      expect(pool.attribute!.find((a) => a.name === 'count_include_pad')!.i ?? 0).toBe(0);
    }

    const opened = await openModelCheckpoint(shufflenet, pretrained);
    const config = opened.config as unknown as Record<string, unknown>;
    expect(config).toMatchObject({ size: '0.5x', group: 3, stem: 'cifar' });
    const images = randomImages(2, 32, 9);
    const got = await runOnnx(fs.readFileSync(out), images, [2, 3, 32, 32]);
    const ref = referenceLogits(shufflenet as unknown as AnyModel, config, opened.tensors, images, 2);
    const diff = maxAbsDiff(got.logits, ref);
    console.log(`shufflenet 0.5x g3 (pretrained): max |ONNX Runtime - tsc-nn reference| = ${diff.toExponential(2)} (max |logit| ${Math.max(...ref.map(Math.abs)).toFixed(2)})`);
    expect(diff).toBeLessThan(1e-4);
  });

  it('--dynamic-batch declares a symbolic batch: the small convnet runs at batch 1 and 3', async () => {
    const out = path.join(tmp(), 'small-dynamic.onnx');
    const r = cli('export', 'examples/small-convnet.ts', '--checkpoint', smallCkpt, '--out', out, '--dynamic-batch', '--json');
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as ExportJson;
    expect(s.inputs).toEqual({ image: ['batch', 3, 16, 16] });
    expect(s.outputs).toEqual({ logits: ['batch', 10] });
    for (const batch of [1, 3]) {
      const images = randomImages(batch, 16, 30 + batch);
      const got = await runOnnx(fs.readFileSync(out), images, [batch, 3, 16, 16]);
      expect(got.dims).toEqual([batch, 10]);
      expect(maxAbsDiff(got.logits, referenceLogits(small, smallConfig, smallTensors, images, batch))).toBeLessThan(1e-4);
    }
  });

  it('maps pooling padding, channel shuffles, concat, slices and scalar affines exactly (library API)', async () => {
    // Pools with explicit padding (averages divide by the elements inside the input, as ONNX's count_include_pad
    // = 0), a strided conv with a bias, a channel shuffle, a slice, a pad, concat, affine and a mean.
    const file = path.join(tmp(), 'zoo.ts');
    fs.writeFileSync(file, `import { add, affine, avgPool2d, channelShuffle, concat, conv2d, defineModel, dense, globalAvgPool, maxPool2d, mul, pad, relu, slice } from 'tsc-nn';
export default defineModel({
  name: 'zoo',
  defaults: { classes: 5 },
  params: ({ classes }) => ({
    'conv.weight': { shape: [6, 3, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 27 } },
    'conv.bias': { shape: [6], role: 'param', init: { kind: 'normal', std: 0.5 } },
    'fc.weight': { shape: [classes, 10], role: 'param', init: { kind: 'normal', std: 0.5 } },
    'fc.bias': { shape: [classes], role: 'param', init: { kind: 'normal', std: 0.5 } },
  }),
  inputs: (_c, batch) => ({ image: [batch, 3, 11, 11] }),
  forward: (p, { image }) => {
    const x = relu(conv2d(image!, p['conv.weight']!, { stride: 2, padding: 1, bias: p['conv.bias'] }));
    const avg = avgPool2d(x, { kernel: 3, stride: 1, padding: 1 });
    const max = maxPool2d(channelShuffle(x, 3), { kernel: 2, stride: 1, padding: 1 });
    const cut = slice(max, 2, 1, 6);
    const side = pad(slice(cut, 3, 0, 5), 3, 1, 0);
    const joined = concat([mul(avg, affine(avg, 0.5, 1)), slice(side, 1, 1, 4)], 1);
    return add(dense(globalAvgPool(joined), p['fc.weight']!, p['fc.bias']!), affine(dense(globalAvgPool(joined), p['fc.weight']!), -1, 0.25));
  },
});
`);
    const zoo = loadModel(file);
    const config = configure(zoo);
    const tensors = randomTensors(zoo, config, 4);
    const result = exportOnnx(zoo, config, tensors, { batch: 2 });
    expect(result.ops).toMatchObject({ AveragePool: 1, MaxPool: 1, Transpose: 1, Slice: 3, Pad: 1, Concat: 1, Gemm: 2 });
    const images = randomImages(2, 11, 13);
    const got = await runOnnx(result.bytes, images, [2, 3, 11, 11]);
    expect(maxAbsDiff(got.logits, referenceLogits(zoo, config, tensors, images, 2))).toBeLessThan(1e-4);
  });
});

describe('bad input for export', () => {
  const oneLine = (r: ReturnType<typeof cli>): string => {
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]!.startsWith('tsc-nn export: ')).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    return lines[0]!;
  };

  it('a custom op (models/resnet.ts: resnet_shortcut_a) is one line naming the op, its location and the model', () => {
    const out = path.join(tmp(), 'resnet.onnx');
    const line = oneLine(cli('export', 'models/resnet.ts', '--checkpoint', resnetCkpt, '--out', out));
    expect(line).toMatch(/^tsc-nn export: op resnet_shortcut_a \(models\/resnet\.ts:\d+:\d+\) in model resnet has no ONNX equivalent/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a format other than onnx, a missing --out or --checkpoint: one line, exit 1', () => {
    const out = path.join(tmp(), 'never.onnx');
    expect(oneLine(cli('export', '--checkpoint', pretrained, '--out', out, '--format', 'tflite'))).toBe('tsc-nn export: --format must be one of onnx (got tflite)');
    expect(oneLine(cli('export', '--checkpoint', pretrained))).toMatch(/--out FILE\.onnx/);
    expect(oneLine(cli('export', '--out', out))).toMatch(/--checkpoint FILE/);
    expect(oneLine(cli('export', '--checkpoint', pretrained, '--out', out, '--batch', '0'))).toMatch(/--batch must be a positive integer/);
    expect(oneLine(cli('export', 'models/resnet.ts', '--checkpoint', pretrained, '--out', out))).toMatch(/a checkpoint of model shufflenet, not resnet/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
