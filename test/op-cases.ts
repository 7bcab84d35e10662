// The op cases the property tests draw from: each builds one op (or a short composite) on drawn shapes.
import fc from 'fast-check';
import type { Tensor } from '../src/ir/graph';
import * as ops from '../src/ir/ops';

/** Input shapes and the op applied to them; `positive` inputs get data in (0.1, 2), `labels` get class indices. */
export interface Built {
  inputs: Record<string, number[]>;
  fn: (x: Record<string, Tensor>) => Tensor;
  positive?: string[];
  labels?: { name: string; classes: number };
  /** Inputs that are constants of the op (BN running statistics): no gradient flows to them. */
  constant?: string[];
}

export interface OpCase<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  build(c: T): Built;
}

type Drawn<A> = A extends fc.Arbitrary<infer T> ? T : never;

const dim = (lo: number, hi: number) => fc.integer({ min: lo, max: hi });
const batch = dim(1, 4);
const seed = fc.integer({ min: 1, max: 1_000_000 });

export const convArb = fc.record({
  N: batch, groups: dim(1, 3), cPerGroup: dim(1, 3), oPerGroup: dim(1, 3), H: dim(3, 9), W: dim(3, 9),
  k: fc.constantFrom(1, 3), stride: dim(1, 2), padding: dim(0, 2), bias: fc.boolean(), seed,
}).filter((c) => c.k <= c.H + 2 * c.padding && c.k <= c.W + 2 * c.padding);
const convShapes = (c: Drawn<typeof convArb>) => {
  const C = c.groups * c.cPerGroup;
  const O = c.groups * c.oPerGroup;
  const out = (n: number) => Math.floor((n + 2 * c.padding - c.k) / c.stride) + 1;
  return { x: [c.N, C, c.H, c.W], w: [O, c.cPerGroup, c.k, c.k], b: [O], y: [c.N, O, out(c.H), out(c.W)] };
};
const convAttrs = (c: Drawn<typeof convArb>) => ({ stride: c.stride, padding: c.padding, groups: c.groups });

const poolArb = fc.record({
  N: batch, C: dim(1, 4), H: dim(2, 9), W: dim(2, 9), kernel: dim(1, 3), stride: dim(1, 2),
  padding: fc.oneof(fc.constant('same' as const), dim(0, 1)), seed,
}).filter((c) => c.padding === 'same' || (c.padding < c.kernel && c.kernel <= c.H + 2 * c.padding && c.kernel <= c.W + 2 * c.padding));

const shapeArb = fc.array(dim(1, 5), { minLength: 1, maxLength: 4 });
/** Two shapes that broadcast: the second drops leading axes and sets some axes to 1. */
const broadcastArb = fc.record({ shape: shapeArb, drop: dim(0, 3), ones: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), swap: fc.boolean(), seed })
  .map(({ shape, drop, ones, swap, seed: s }) => {
    const b = shape.slice(Math.min(drop, shape.length - 1)).map((d, i) => (ones[i] ? 1 : d));
    return { a: swap ? b : shape, b: swap ? shape : b, seed: s };
  });

export const cases: OpCase<any>[] = [
  {
    name: 'conv2d',
    arb: convArb,
    build: (c) => {
      const s = convShapes(c);
      return { inputs: { x: s.x, w: s.w, b: s.b }, fn: (t) => ops.conv2d(t.x!, t.w!, { ...convAttrs(c), bias: c.bias ? t.b : undefined }) };
    },
  },
  {
    name: 'conv2d_grad_input',
    arb: convArb,
    build: (c) => {
      const s = convShapes(c);
      return { inputs: { g: s.y, w: s.w }, fn: (t) => ops.conv2dGradInput(t.g!, t.w!, s.x, convAttrs(c)) };
    },
  },
  {
    name: 'conv2d_grad_weight',
    arb: convArb,
    build: (c) => {
      const s = convShapes(c);
      return { inputs: { g: s.y, x: s.x }, fn: (t) => ops.conv2dGradWeight(t.g!, t.x!, s.w, convAttrs(c)) };
    },
  },
  {
    name: 'batch_norm (training, with running-stat update)',
    arb: fc.record({ N: batch, C: dim(1, 4), H: dim(1, 5), W: dim(1, 5), seed }).filter((c) => c.N * c.H * c.W > 1),
    build: (c) => ({
      inputs: { x: [c.N, c.C, c.H, c.W], gamma: [c.C], beta: [c.C] },
      fn: (t) => {
        const g = t.x!.graph;
        const rm = new (t.x!.constructor as typeof Tensor)(g, g.add({ op: 'state', attrs: {}, inputs: [], shape: [c.C], name: 'rm' }).id);
        const rv = new (t.x!.constructor as typeof Tensor)(g, g.add({ op: 'state', attrs: {}, inputs: [], shape: [c.C], name: 'rv' }).id);
        return ops.batchNorm(t.x!, { weight: t.gamma!, bias: t.beta!, running_mean: rm, running_var: rv }, { training: true });
      },
    }),
  },
  {
    name: 'batch_norm (inference)',
    arb: fc.record({ N: batch, C: dim(1, 4), H: dim(1, 5), W: dim(1, 5), seed }),
    build: (c) => ({
      inputs: { x: [c.N, c.C, c.H, c.W], gamma: [c.C], beta: [c.C], rm: [c.C], rv: [c.C] },
      positive: ['rv'],
      constant: ['rm', 'rv'],
      fn: (t) => ops.batchNorm(t.x!, { weight: t.gamma!, bias: t.beta!, running_mean: t.rm!, running_var: t.rv! }, { training: false }),
    }),
  },
  { name: 'relu', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape }, fn: (t) => ops.relu(t.x!) }) },
  { name: 'neg', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape }, fn: (t) => ops.neg(t.x!) }) },
  { name: 'exp', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape }, fn: (t) => ops.exp(t.x!) }) },
  { name: 'log', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape }, positive: ['x'], fn: (t) => ops.log(t.x!) }) },
  { name: 'rsqrt', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape }, positive: ['x'], fn: (t) => ops.rsqrt(t.x!) }) },
  {
    name: 'affine',
    arb: fc.record({ shape: shapeArb, s: fc.integer({ min: -24, max: 24 }).map((v) => v / 8), b: fc.integer({ min: -24, max: 24 }).map((v) => v / 8), seed }),
    build: (c) => ({ inputs: { x: c.shape }, fn: (t) => ops.affine(t.x!, c.s, c.b) }),
  },
  { name: 'relu_grad', arb: fc.record({ shape: shapeArb, seed }), build: (c) => ({ inputs: { x: c.shape, g: c.shape }, fn: (t) => ops.reluGrad(t.x!, t.g!) }) },
  ...(['add', 'sub', 'mul', 'div'] as const).map((op): OpCase<any> => ({
    name: `${op} (broadcasting)`,
    arb: broadcastArb,
    build: (c) => ({ inputs: { a: c.a, b: c.b }, positive: op === 'div' ? ['b'] : [], fn: (t) => ops[op](t.a!, t.b!) }),
  })),
  {
    name: 'sum / mean / reduce_max over axes',
    arb: fc.record({ shape: shapeArb, axesMask: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), keepdims: fc.boolean(), which: fc.constantFrom('sum', 'mean', 'reduceMax'), seed })
      .filter((c) => c.shape.some((_, i) => c.axesMask[i])),
    build: (c) => {
      const axes = c.shape.map((_: number, i: number) => i).filter((i: number) => c.axesMask[i]);
      return { inputs: { x: c.shape }, fn: (t) => (ops as any)[c.which](t.x!, axes, c.keepdims) };
    },
  },
  {
    name: 'reshape',
    arb: fc.record({ shape: shapeArb, perm: fc.integer({ min: 0, max: 1000 }), seed }),
    build: (c) => {
      // Regroup the same elements into another factorisation of the size.
      const size = c.shape.reduce((a: number, b: number) => a * b, 1);
      const divisors = Array.from({ length: size }, (_, i) => i + 1).filter((d) => size % d === 0);
      const d = divisors[c.perm % divisors.length]!;
      return { inputs: { x: c.shape }, fn: (t) => ops.reshape(t.x!, size / d === 1 ? [d] : [d, size / d]) };
    },
  },
  {
    name: 'transpose',
    arb: fc.record({ shape: shapeArb, keys: fc.array(fc.double({ noNaN: true }), { minLength: 4, maxLength: 4 }), seed }),
    build: (c) => {
      const perm = c.shape.map((_: number, i: number) => i).sort((a: number, b: number) => c.keys[a] - c.keys[b]);
      return { inputs: { x: c.shape }, fn: (t) => ops.transpose(t.x!, perm) };
    },
  },
  {
    name: 'channel shuffle (reshape > transpose > reshape)',
    arb: fc.record({ N: batch, g: dim(1, 4), cpg: dim(1, 4), H: dim(1, 4), W: dim(1, 4), seed }),
    build: (c) => ({
      inputs: { x: [c.N, c.g * c.cpg, c.H, c.W] },
      fn: (t) => ops.reshape(ops.transpose(ops.reshape(t.x!, [c.N, c.g, c.cpg, c.H, c.W]), [0, 2, 1, 3, 4]), [c.N, c.g * c.cpg, c.H, c.W]),
    }),
  },
  {
    name: 'concat on any axis',
    arb: fc.record({ shape: shapeArb, axis: dim(0, 3), sizes: fc.array(dim(1, 4), { minLength: 1, maxLength: 3 }), seed }),
    build: (c) => {
      const axis = c.axis % c.shape.length;
      const inputs: Record<string, number[]> = {};
      c.sizes.forEach((s: number, i: number) => { const sh = [...c.shape]; sh[axis] = s; inputs[`x${i}`] = sh; });
      return { inputs, fn: (t) => ops.concat(c.sizes.map((_: number, i: number) => t[`x${i}`]!), axis) };
    },
  },
  {
    name: 'slice / pad',
    arb: fc.record({ shape: shapeArb, axis: dim(0, 3), a: dim(0, 3), b: dim(0, 3), pad: fc.boolean(), seed }),
    build: (c) => {
      const axis = c.axis % c.shape.length;
      const n = c.shape[axis];
      if (c.pad) return { inputs: { x: c.shape }, fn: (t) => ops.pad(t.x!, axis, c.a, c.b) };
      const start = Math.min(c.a, n - 1);
      return { inputs: { x: c.shape }, fn: (t) => ops.slice(t.x!, axis, start, Math.max(1, Math.min(c.b, n - start))) };
    },
  },
  {
    name: 'broadcast_to',
    arb: broadcastArb,
    build: (c) => {
      const target = c.a.length >= c.b.length ? c.a : c.b;
      const small = c.a.length >= c.b.length ? c.b : c.a;
      const out = target.map((d: number, i: number) => Math.max(d, small[small.length - target.length + i] ?? 1));
      return { inputs: { x: small.map((d: number, i: number) => (d === out[out.length - small.length + i] ? d : 1)) }, fn: (t) => ops.broadcastTo(t.x!, out) };
    },
  },
  {
    name: 'avg_pool2d (same or explicit padding)',
    arb: poolArb,
    build: (c) => ({ inputs: { x: [c.N, c.C, c.H, c.W] }, fn: (t) => ops.avgPool2d(t.x!, { kernel: c.kernel, stride: c.stride, padding: c.padding }) }),
  },
  {
    name: 'max_pool2d (same or explicit padding)',
    arb: poolArb,
    build: (c) => ({ inputs: { x: [c.N, c.C, c.H, c.W] }, fn: (t) => ops.maxPool2d(t.x!, { kernel: c.kernel, stride: c.stride, padding: c.padding }) }),
  },
  {
    name: 'global_avg_pool',
    arb: fc.record({ N: batch, C: dim(1, 5), H: dim(1, 6), W: dim(1, 6), seed }),
    build: (c) => ({ inputs: { x: [c.N, c.C, c.H, c.W] }, fn: (t) => ops.globalAvgPool(t.x!) }),
  },
  {
    name: 'matmul (transposes) / dense',
    arb: fc.record({ M: dim(1, 5), K: dim(1, 6), N: dim(1, 5), transA: fc.boolean(), transB: fc.boolean(), dense: fc.boolean(), seed }),
    build: (c): Built => c.dense
      ? { inputs: { x: [c.M, c.K], w: [c.N, c.K], b: [c.N] }, fn: (t) => ops.dense(t.x!, t.w!, t.b!) }
      : {
        inputs: { a: c.transA ? [c.K, c.M] : [c.M, c.K], b: c.transB ? [c.N, c.K] : [c.K, c.N] },
        fn: (t) => ops.matmul(t.a!, t.b!, { transA: c.transA, transB: c.transB }),
      },
  },
  {
    name: 'softmax cross-entropy with label smoothing',
    arb: fc.record({ N: batch, K: dim(2, 10), smoothing: fc.constantFrom(0, 0.1, 0.3), seed }),
    build: (c) => ({
      inputs: { logits: [c.N, c.K], labels: [c.N] },
      labels: { name: 'labels', classes: c.K },
      fn: (t) => ops.softmaxCrossEntropy(t.logits!, t.labels!, c.smoothing),
    }),
  },
];

