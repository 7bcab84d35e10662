// ShuffleNetV1 in jax-js on its WebAssembly device, written as a JAX user would: NCHW with OIHW kernels (tsc-nn's
// layouts), lax.convGeneralDilated with featureGroupCount for the group and depthwise convolutions, pooling with
// lax.reduceWindow, and the whole inference and training step (valueAndGrad + momentum SGD) under jit.
// jax-js frees arrays by reference counting: every use of an array consumes one reference, so an array used twice
// is passed as `.ref` first (README, "Reference counting").
import { defaultDevice, init, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import { BN_EPS, BN_MOMENTUM, LABEL_SMOOTHING, SGD, paramData, planShuffleNet, samePadding, windowCountsInside, type ShuffleNetPlan } from './architecture';
import type { PeerConfig, PeerModel } from './types';

type Tree = Record<string, np.Array>;
/** Batch norm of a layer's output, given the layer's BN parameter prefix. */
type BatchNorm = (x: np.Array, prefix: string) => np.Array;

const perChannel = (v: np.Array): np.Array => v.reshape([1, v.shape[0]!, 1, 1]);

function conv(x: np.Array, w: np.Array, stride: number, padding: number, groups: number): np.Array {
  return lax.convGeneralDilated(x, w, [stride, stride], [[padding, padding], [padding, padding]], { featureGroupCount: groups });
}

/** 3x3 stride-2 pooling with TensorFlow `same` padding; `combine` reduces one window. */
function poolSame(x: np.Array, combine: (window: np.Array) => np.Array): np.Array {
  const [, , h, w] = x.shape as [number, number, number, number];
  const rows = samePadding(h, 3, 2);
  const cols = samePadding(w, 3, 2);
  const padded = np.pad(x, [[0, 0], [0, 0], [rows.before, rows.after], [cols.before, cols.after]]);
  return lax.reduceWindow(padded, combine, [3, 3], [2, 2]);
}

/** Average pooling over the window elements inside the input only (padding is not counted). */
function avgPoolSame(x: np.Array): np.Array {
  const [, , h, w] = x.shape as [number, number, number, number];
  const rows = windowCountsInside(h, 3, 2);
  const cols = windowCountsInside(w, 3, 2);
  const counts = np.array(Float32Array.from(rows.flatMap((r) => cols.map((c) => r * c))), { shape: [rows.length, cols.length] });
  return poolSame(x, (window) => np.sum(window)).div(counts);
}

function channelShuffle(x: np.Array, groups: number): np.Array {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return x.reshape([n, c / groups, groups, h, w]).transpose([0, 2, 1, 3, 4]).reshape([n, c, h, w]);
}

/** Logits of images [N, 3, R, R]; consumes `p` (conv, dense and BN affine parameters) and `x`. */
function forward(plan: ShuffleNetPlan, p: Tree, x: np.Array, bn: BatchNorm): np.Array {
  let y = nn.relu(bn(conv(x, p['first_conv.0.weight']!, plan.stemStride, 1, 1), 'first_conv.1'));
  // The stem's max-pool follows a ReLU: zero padding equals TensorFlow's -inf padding there.
  if (plan.stemMaxPool) y = poolSame(y, (window) => np.max(window));
  for (const u of plan.units) {
    const w = (layer: string) => p[`${u.prefix}.${layer}.weight`]!;
    let branch = nn.relu(bn(conv(y.ref, w('branch_main_1.0'), 1, 0, u.firstGroups), `${u.prefix}.branch_main_1.1`));
    branch = channelShuffle(branch, plan.group);
    branch = bn(conv(branch, w('branch_main_2.0'), u.stride, 1, u.mid), `${u.prefix}.branch_main_2.1`);
    branch = bn(conv(branch, w('branch_main_2.2'), 1, 0, plan.group), `${u.prefix}.branch_main_2.3`);
    y = nn.relu(u.stride === 1 ? y.add(branch) : np.concatenate([avgPoolSame(y), branch], 1));
  }
  return np.matmul(np.mean(y, [2, 3]), p['classifier.weight']!.transpose()).add(p['classifier.bias']!);
}

const affine = (p: Tree, prefix: string) => ({ gamma: perChannel(p[`${prefix}.weight`]!), beta: perChannel(p[`${prefix}.bias`]!) });

/** Inference batch norm with the running statistics (consumed from `stats`). */
const runningBatchNorm = (p: Tree, stats: Tree): BatchNorm => (x, prefix) => {
  const { gamma, beta } = affine(p, prefix);
  const mean = perChannel(stats[`${prefix}.running_mean`]!);
  const scale = gamma.div(np.sqrt(perChannel(stats[`${prefix}.running_var`]!).add(BN_EPS)));
  return x.sub(mean).mul(scale).add(beta);
};

/** Training batch norm: batch statistics; the updated running statistics (unbiased variance) go to `updated`. */
const batchStatsBatchNorm = (p: Tree, stats: Tree, updated: Tree): BatchNorm => (x, prefix) => {
  const { gamma, beta } = affine(p, prefix);
  const [n, , h, w] = x.shape as [number, number, number, number];
  const count = n * h * w;
  const mean = np.mean(x.ref, [0, 2, 3], { keepdims: true });
  const centered = x.sub(mean.ref);
  const variance = np.mean(np.square(centered.ref), [0, 2, 3], { keepdims: true });
  const running = (name: string, batch: np.Array, unbias: number) => {
    updated[name] = stats[name]!.mul(1 - BN_MOMENTUM).add(lax.stopGradient(batch).flatten().mul(BN_MOMENTUM * unbias));
  };
  running(`${prefix}.running_mean`, mean, 1);
  running(`${prefix}.running_var`, variance.ref, count / Math.max(count - 1, 1));
  return centered.mul(gamma.div(np.sqrt(variance.add(BN_EPS)))).add(beta);
};

/** Mean cross-entropy against label-smoothed one-hot targets. */
function smoothedCrossEntropy(logits: np.Array, labels: np.Array): np.Array {
  const classes = logits.shape[1]!;
  const target = nn.oneHot(labels, classes).mul(1 - LABEL_SMOOTHING).add(LABEL_SMOOTHING / classes);
  return np.sum(target.mul(nn.logSoftmax(logits, -1)), -1).mean().neg();
}

let ready: Promise<unknown> | undefined;

export async function createJaxPeer(cfg: PeerConfig, params: ReadonlyMap<string, Float32Array>): Promise<PeerModel> {
  const plan = planShuffleNet(cfg);
  await (ready ??= init('wasm'));
  defaultDevice('wasm');
  const isStat = (name: string) => /running_(mean|var)$/.test(name);
  const load = (names: string[]): Tree =>
    Object.fromEntries(names.map((name) => [name, np.array(paramData(params, plan.shapes, name), { shape: [...plan.shapes[name]!] })]));
  let weights = load(Object.keys(plan.shapes).filter((n) => !isStat(n)));
  let stats = load(Object.keys(plan.shapes).filter(isStat));
  let momenta: Tree = Object.fromEntries(Object.keys(weights).map((name) => [name, np.zeros([...plan.shapes[name]!])]));
  const imageShape = [cfg.batch, 3, plan.config.resolution, plan.config.resolution];

  const inferJit = jit((p: Tree, s: Tree, x: np.Array) => forward(plan, p, x, runningBatchNorm(p, s)));

  const lossAndStats = (p: Tree, s: Tree, x: np.Array, labels: np.Array): [np.Array, Tree] => {
    const updated: Tree = {};
    const logits = forward(plan, p, x, batchStatsBatchNorm(p, s, updated));
    return [smoothedCrossEntropy(logits, labels), updated];
  };
  const stepJit = jit((p: Tree, m: Tree, s: Tree, x: np.Array, labels: np.Array, lr: np.Array) => {
    const [[loss, newStats], grads] = valueAndGrad(lossAndStats, { hasAux: true })(tree.ref(p), s, x, labels);
    const newWeights: Tree = {};
    const newMomenta: Tree = {};
    for (const name of Object.keys(p)) {
      const weight = p[name]!;
      // Weight decay on conv and dense weights, added to the gradient as tsc-nn's optimizer does.
      const grad = weight.ndim > 1 ? grads[name]!.add(weight.ref.mul(SGD.weightDecay)) : grads[name]!;
      const accum = m[name]!.mul(SGD.momentum).add(grad);
      newWeights[name] = weight.sub(accum.ref.mul(lr.ref));
      newMomenta[name] = accum;
    }
    lr.dispose();
    return { loss, weights: newWeights, momenta: newMomenta, stats: newStats };
  });

  return {
    system: 'jax-js-wasm',
    async infer(images) {
      const logits = inferJit(tree.ref(weights), tree.ref(stats), np.array(images, { shape: imageShape }));
      return (await logits.data()) as Float32Array;
    },
    async trainStep(images, labels, lr) {
      const out = stepJit(weights, momenta, stats, np.array(images, { shape: imageShape }),
        np.array(Int32Array.from(labels), { dtype: np.int32 }), np.array(lr));
      ({ weights, momenta, stats } = out);
      return (await out.loss.data())[0]!;
    },
    async parameters() {
      const out = new Map<string, Float32Array>();
      for (const [name, a] of Object.entries({ ...weights, ...stats })) out.set(name, (await a.ref.data()) as Float32Array);
      return out;
    },
    dispose() {
      inferJit.dispose();
      stepJit.dispose();
      for (const t of [weights, momenta, stats]) tree.dispose(t);
    },
  };
}
