// ShuffleNetV1 in TensorFlow.js (tfjs-core ops, cpu or wasm backend), written as a tfjs user would: NHWC, HWIO
// kernels, group convolutions as split + one conv2d per group + concat (tfjs has no grouped convolution),
// tf.depthwiseConv2d, tf.batchNorm, tf.variableGrads and tf.train.momentum.
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { BN_EPS, BN_MOMENTUM, LABEL_SMOOTHING, SGD, paramData, planShuffleNet, samePadding, windowCountsInside, type ShuffleNetPlan, type UnitPlan } from './architecture';
import { registerTfjsGradients } from './tfjs-gradients';
import type { PeerConfig, PeerModel } from './types';

/** The convolutions' gradient kernels: tfjs-backend-wasm 4.22 lacks the weight gradients, so it cannot train. */
const CONV_GRADIENT_KERNELS = ['Conv2DBackpropInput', 'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter'];
/** tsc-nn's 3x3 convolutions pad 1 on every side (`same` would pad only at the end for stride 2). */
const PAD = 1;

async function useBackend(backend: 'cpu' | 'wasm'): Promise<void> {
  if (tf.getBackend() === backend) return;
  if (backend === 'wasm' && !tf.findBackend('wasm')) {
    // Under Node the wasm binaries are read from the package's dist folder.
    const dist = path.dirname(createRequire(__filename).resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    setWasmPaths(dist + path.sep);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js backend ${backend} failed to initialise`);
  await tf.ready();
}

/** A tsc-nn parameter as tfjs variables: conv weights in HWIO, split per group; the classifier as [in, out]. */
interface Layout {
  readonly toTfjs: (w: tf.Tensor) => tf.Tensor[];
  readonly fromTfjs: (parts: tf.Tensor[]) => tf.Tensor;
}
const groupedConv = (groups: number): Layout => ({
  toTfjs: (w) => tf.split(w, groups, 0).map((part) => tf.transpose(part, [2, 3, 1, 0])),
  fromTfjs: (parts) => tf.transpose(tf.concat(parts, 3), [3, 2, 0, 1]),
});
const depthwise: Layout = { toTfjs: (w) => [tf.transpose(w, [2, 3, 0, 1])], fromTfjs: ([w]) => tf.transpose(w!, [2, 3, 0, 1]) };
const dense: Layout = { toTfjs: (w) => [tf.transpose(w)], fromTfjs: ([w]) => tf.transpose(w!) };
const asIs: Layout = { toTfjs: (w) => [tf.clone(w)], fromTfjs: ([w]) => tf.clone(w!) };

function layouts(plan: ShuffleNetPlan): Map<string, Layout> {
  const out = new Map<string, Layout>(Object.keys(plan.shapes).map((name) => [name, asIs]));
  out.set('first_conv.0.weight', groupedConv(1));
  for (const u of plan.units) {
    out.set(`${u.prefix}.branch_main_1.0.weight`, groupedConv(u.firstGroups));
    out.set(`${u.prefix}.branch_main_2.0.weight`, depthwise);
    out.set(`${u.prefix}.branch_main_2.2.weight`, groupedConv(plan.group));
  }
  out.set('classifier.weight', dense);
  return out;
}

/**
 * 3x3 stride-2 `same` average pooling whose gradient is right: tfjs's AvgPoolGrad divides by the full window (9) where
 * its forward divided by the elements inside the input (measured on tfjs-backend-cpu 4.22: the gradient reaching the
 * last row and column is 1/9 instead of 1/4 and 1/6). So: zero-pad explicitly, pool without padding (full windows,
 * forward and gradient agree), and rescale each output by 9 / (its window's elements inside the input).
 */
function avgPoolSameDifferentiable(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  const rows = samePadding(h, 3, 2);
  const cols = samePadding(w, 3, 2);
  const rowCounts = windowCountsInside(h, 3, 2);
  const colCounts = windowCountsInside(w, 3, 2);
  const rescale = tf.tensor4d(rowCounts.flatMap((r) => colCounts.map((c) => 9 / (r * c))), [1, rows.out, cols.out, 1]);
  const padded = tf.pad(x, [[0, 0], [rows.before, rows.after], [cols.before, cols.after], [0, 0]]);
  return tf.mul(tf.avgPool(padded, 3, 2, 'valid'), rescale);
}

class TfjsShuffleNet {
  private readonly layout: Map<string, Layout>;
  /** Variables per tsc-nn parameter name; BN running statistics are not trainable. */
  private readonly vars = new Map<string, tf.Variable[]>();
  readonly trainable: tf.Variable[];

  constructor(private readonly plan: ShuffleNetPlan, params: ReadonlyMap<string, Float32Array>) {
    this.layout = layouts(plan);
    for (const [name, shape] of Object.entries(plan.shapes)) {
      const trainable = !/running_(mean|var)$/.test(name);
      const parts = tf.tidy(() => this.layout.get(name)!.toTfjs(tf.tensor(paramData(params, plan.shapes, name), [...shape])));
      this.vars.set(name, parts.map((p) => { const v = tf.variable(p, trainable); p.dispose(); return v; }));
    }
    this.trainable = [...this.vars.values()].flat().filter((v) => v.trainable);
  }

  private one(name: string): tf.Variable { return this.vars.get(name)![0]!; }

  private groupConv(x: tf.Tensor4D, weight: string): tf.Tensor4D {
    const kernels = this.vars.get(weight)! as tf.Variable<tf.Rank.R4>[];
    if (kernels.length === 1) return tf.conv2d(x, kernels[0]!, 1, 'valid');
    return tf.concat((tf.split(x, kernels.length, 3) as tf.Tensor4D[]).map((part, g) => tf.conv2d(part, kernels[g]!, 1, 'valid')), 3);
  }

  /** Batch statistics in training, updating the running statistics (unbiased variance, as PyTorch); else running ones. */
  private batchNorm(x: tf.Tensor4D, prefix: string, training: boolean): tf.Tensor4D {
    const [gamma, beta, runningMean, runningVar] = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => this.one(`${prefix}.${p}`)) as [tf.Variable<tf.Rank.R1>, tf.Variable<tf.Rank.R1>, tf.Variable<tf.Rank.R1>, tf.Variable<tf.Rank.R1>];
    if (!training) return tf.batchNorm4d(x, runningMean, runningVar, beta, gamma, BN_EPS);
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const count = x.shape[0] * x.shape[1] * x.shape[2];
    runningMean.assign(tf.add(tf.mul(runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
    runningVar.assign(tf.add(tf.mul(runningVar, 1 - BN_MOMENTUM), tf.mul(variance, BN_MOMENTUM * count / Math.max(count - 1, 1))));
    return tf.batchNorm4d(x, mean as tf.Tensor1D, variance as tf.Tensor1D, beta, gamma, BN_EPS);
  }

  /** Interleave the channel groups: [.., C/g, g] -> [.., g, C/g] on the channel axis (NHWC). */
  private channelShuffle(x: tf.Tensor4D): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    const g = this.plan.group;
    return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, c / g, g]), [0, 1, 2, 4, 3]), [n, h, w, c]);
  }

  private unit(x: tf.Tensor4D, u: UnitPlan, training: boolean): tf.Tensor4D {
    const p = u.prefix;
    let branch = tf.relu(this.batchNorm(this.groupConv(x, `${p}.branch_main_1.0.weight`), `${p}.branch_main_1.1`, training));
    branch = this.channelShuffle(branch);
    const dw = this.one(`${p}.branch_main_2.0.weight`) as tf.Variable<tf.Rank.R4>;
    branch = this.batchNorm(tf.depthwiseConv2d(branch, dw, u.stride, PAD), `${p}.branch_main_2.1`, training);
    branch = this.batchNorm(this.groupConv(branch, `${p}.branch_main_2.2.weight`), `${p}.branch_main_2.3`, training);
    if (u.stride === 1) return tf.relu(tf.add(x, branch));
    return tf.relu(tf.concat([training ? avgPoolSameDifferentiable(x) : tf.avgPool(x, 3, 2, 'same'), branch], 3));
  }

  /** images NCHW -> logits. */
  forward(images: tf.Tensor4D, training: boolean): tf.Tensor2D {
    let x = tf.transpose(images, [0, 2, 3, 1]);
    const stem = this.one('first_conv.0.weight') as tf.Variable<tf.Rank.R4>;
    x = tf.relu(this.batchNorm(tf.conv2d(x, stem, this.plan.stemStride, PAD), 'first_conv.1', training));
    if (this.plan.stemMaxPool) x = tf.maxPool(x, 3, 2, 'same');
    this.plan.units.forEach((u) => { x = this.unit(x, u, training); });
    const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, this.one('classifier.weight') as tf.Variable<tf.Rank.R2>), this.one('classifier.bias'));
  }

  async parameters(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, parts] of this.vars) {
      const t = tf.tidy(() => this.layout.get(name)!.fromTfjs(parts));
      out.set(name, (await t.data()) as Float32Array);
      t.dispose();
    }
    return out;
  }

  dispose(): void { for (const parts of this.vars.values()) parts.forEach((v) => v.dispose()); }
}

export async function createTfjsPeer(backend: 'cpu' | 'wasm', cfg: PeerConfig, params: ReadonlyMap<string, Float32Array>): Promise<PeerModel> {
  const plan = planShuffleNet(cfg);
  await useBackend(backend);
  const missing = CONV_GRADIENT_KERNELS.filter((k) => !tf.getKernel(k, backend));
  const cannotTrain = missing.length ? `@tensorflow/tfjs-backend-${backend} ${tf.version_core} has no kernels for ${missing.join(', ')}: the convolutions' gradients cannot run` : undefined;
  if (!cannotTrain) await registerTfjsGradients();
  const model = new TfjsShuffleNet(plan, params);
  const imageShape: [number, number, number, number] = [cfg.batch, 3, plan.config.resolution, plan.config.resolution];
  const optimizer = tf.train.momentum(0, SGD.momentum);
  let learningRate = 0;

  const trainStep = async (images: Float32Array, labels: Float32Array, lr: number): Promise<number> => {
    await useBackend(backend);
    if (lr !== learningRate) { optimizer.setLearningRate(lr); learningRate = lr; }
    const loss = tf.tidy(() => {
      const x = tf.tensor4d(images, imageShape);
      const target = tf.cast(tf.oneHot(tf.tensor1d(Int32Array.from(labels), 'int32'), plan.config.classes), 'float32');
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(target, model.forward(x, true), undefined, LABEL_SMOOTHING, tf.Reduction.MEAN) as tf.Scalar,
        model.trainable);
      // Weight decay on conv and dense weights, as tsc-nn's optimizer (not a loss term: the loss is reported without it).
      optimizer.applyGradients(model.trainable.map((v) => ({ name: v.name, tensor: v.rank > 1 ? tf.add(grads[v.name]!, tf.mul(v, SGD.weightDecay)) : grads[v.name]! })));
      return value;
    });
    const [value] = await loss.data();
    loss.dispose();
    return value!;
  };

  return {
    system: `tfjs-${backend}`,
    async infer(images) {
      await useBackend(backend);
      const logits = tf.tidy(() => model.forward(tf.tensor4d(images, imageShape), false));
      const out = (await logits.data()) as Float32Array;
      logits.dispose();
      return out;
    },
    ...(cannotTrain ? { cannotTrain } : { trainStep }),
    parameters: () => model.parameters(),
    dispose() { model.dispose(); optimizer.dispose(); },
  };
}
