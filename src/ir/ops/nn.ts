// Neural-network layers composed from the primitive ops: batch normalization and the label-smoothing loss.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, select } from '../te';
import { add, affine, log, mul, neg, rsqrt, scale, sub, exp, stopGradient } from './elementwise';
import { reduceMax, sum } from './reduce';
import { mean } from './mean';
import { reshape } from './shape';

export interface BatchNormParams {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly running_mean: Tensor;
  readonly running_var: Tensor;
}
export interface BatchNormOptions {
  readonly training: boolean;
  readonly momentum?: number;
  readonly eps?: number;
}

const perChannel = (t: Tensor): Tensor => reshape(t, [t.shape[0]!, 1, 1]);

// Inference BN is one primitive, so BN folding can find it after a convolution.
const batchNormInferOp = defineOp<{ eps: number }>({
  name: 'batch_norm_infer',
  compute: ([x, gamma, beta, rm, rv], { eps }) => {
    check(x!.rank === 4, `input must be NCHW, got [${x!.shape.join(', ')}]`);
    const C = x!.shape[1]!;
    for (const p of [gamma!, beta!, rm!, rv!]) check(p.rank === 1 && p.shape[0] === C, `parameters must have shape [${C}], got [${p.shape.join(', ')}]`);
    return compute(x!.shape, (n, c, h, w) =>
      x!.at(n, c, h, w).sub(rm!.at(c)).div(rv!.at(c).add(eps).sqrt()).mul(gamma!.at(c)).add(beta!.at(c)));
  },
  // Running statistics are constants here; x, gamma and beta get gradients (fine-tuning with frozen statistics).
  vjp: (g, [x, gamma, , rm, rv], _out, { eps }) => {
    const invStd = rsqrt(affine(rv!, 1, eps));
    const normalized = mul(sub(x!, perChannel(rm!)), perChannel(invStd));
    return [mul(g, perChannel(mul(invStd, gamma!))), sum(mul(g, normalized), [0, 2, 3]), sum(g, [0, 2, 3]), null, null];
  },
});

/**
 * Batch normalization over (N, H, W) per channel. Training: batch statistics, and the running statistics are
 * updated (momentum 0.1, unbiased variance, as PyTorch) as state outputs of the trace. Inference: running statistics.
 */
export function batchNorm(x: Tensor, p: BatchNormParams, opts: BatchNormOptions): Tensor {
  const eps = opts.eps ?? 1e-5;
  if (!opts.training) return batchNormInferOp([x, p.weight, p.bias, p.running_mean, p.running_var], { eps });
  const m = opts.momentum ?? 0.1;
  const count = x.shape[0]! * x.shape[2]! * x.shape[3]!;
  const mu = mean(x, [0, 2, 3]);
  const centered = sub(x, perChannel(mu));
  const variance = mean(mul(centered, centered), [0, 2, 3]);
  const y = add(mul(centered, perChannel(mul(rsqrt(affine(variance, 1, eps)), p.weight))), perChannel(p.bias));
  const graph = x.graph;
  for (const [state, batchStat, unbias] of [[p.running_mean, mu, 1], [p.running_var, variance, count / Math.max(count - 1, 1)]] as const) {
    const name = state.node.name;
    if (state.node.op !== 'state' || !name) throw new Error('batchNorm running statistics must be state sources of the trace');
    graph.setOutput(name, add(scale(state, 1 - m), scale(stopGradient(batchStat), m * unbias)).id, 'state');
  }
  return y;
}

const oneHotOp = defineOp<{ classes: number; on: number; off: number }>({
  name: 'one_hot',
  compute: ([labels], { classes, on, off }) => {
    check(labels!.rank === 1, `labels must be rank 1, got [${labels!.shape.join(', ')}]`);
    return compute([labels!.shape[0]!, classes], (n, k) => select(labels!.at(n).eq(k), on, off));
  },
  vjp: () => [null],
});

/**
 * Mean softmax cross-entropy with label smoothing: targets are (1 - s) on the label plus s / K everywhere.
 * `labels` holds class indices as numbers. Returns a scalar (shape []).
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, smoothing = 0): Tensor {
  const K = logits.shape[1]!;
  const shifted = sub(logits, stopGradient(reduceMax(logits, [1], true)));
  const logProb = sub(shifted, log(sum(exp(shifted), [1], true)));
  const target = oneHotOp([labels], { classes: K, on: 1 - smoothing + smoothing / K, off: smoothing / K });
  return neg(mean(sum(mul(target, logProb), [1]), [0]));
}
