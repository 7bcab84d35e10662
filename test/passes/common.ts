// Shared pieces of the pass tests: a ShuffleNet-like unit on drawn shapes, random feeds (positive BN variances,
// class labels), and the two equivalence checks every pass must pass: the float64 reference of the graph after
// the pass equals the reference of the graph before it, and the compiled graph on gpu.js cpu equals its reference.
import { expect } from 'vitest';
import fc from 'fast-check';
import { sizeOf, type Graph, type Tensor } from '../../src/ir/graph';
import { trace, type SourceSpec } from '../../src/ir/trace';
import { evaluateOutputs } from '../../src/ir/reference';
import { verify } from '../../src/ir/verify';
import { printGraph } from '../../src/ir/print';
import * as ops from '../../src/ir/ops';
import { channelShuffle } from '../../src/models/shufflenet';
import { compareWithReference, relL2, uniform } from '../helpers';
import { createBackend, createExecutor } from '../../src/backends/registry';

export { printGraph };

/** Print a graph (with expressions) to the test log, and return the text for assertions. */
export function show(title: string, g: Graph, exprs = true): string {
  const text = printGraph(g, { exprs });
  console.log(`--- ${title}\n${text}`);
  return text;
}

/** One line of a printed graph that matches `re` (the test fails, showing the text, if none does). */
export function lineMatching(text: string, re: RegExp): string {
  const line = text.split('\n').find((l) => re.test(l));
  expect(line, `no line matching ${re} in\n${text}`).toBeDefined();
  return line!;
}

export const FLOAT64_TOL = 1e-9;

/**
 * Feeds for every source: uniform in [-1, 1), BN running variances and scales positive (BN inference needs
 * var + eps > 0), labels as class indices, the learning rate a small positive scalar.
 */
export function feedsFor(g: Graph, seed: number, classes = 1): Record<string, Float32Array> {
  const feeds: Record<string, Float32Array> = {};
  g.sources().forEach((n, i) => {
    const name = n.name!;
    const size = sizeOf(n.shape);
    const s = seed * 977 + i;
    if (/running_var$/.test(name)) feeds[name] = uniform(size, s, 0.2, 2);
    else if (/\bbn\d*\.weight$|\.gamma$/.test(name)) feeds[name] = uniform(size, s, 0.5, 1.5);
    else if (name === 'label' || name === 'labels') feeds[name] = Float32Array.from({ length: size }, (_, j) => (seed + 5 * j) % classes);
    else if (name === 'lr') feeds[name] = new Float32Array([0.05 + (seed % 7) / 20]);
    else feeds[name] = uniform(size, s);
  });
  return feeds;
}

/** Relative L2 of every output of `after` against the same output of `before`, both in float64. */
export function referenceErrors(before: Graph, after: Graph, feeds: Readonly<Record<string, Float32Array>>): Record<string, number> {
  const a = evaluateOutputs(before, feeds);
  const b = evaluateOutputs(after, feeds);
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  return Object.fromEntries(Object.keys(a).map((k) => [k, relL2(a[k]!, b[k]!)]));
}

/**
 * The two equivalence checks: `after` (a pass's result) equals `before` in the float64 reference (relative L2
 * below 1e-9 for every output), and `after` compiled for gpu.js cpu equals its own reference. Returns a readable
 * failure or null, for use inside fast-check properties.
 */
export function equivalence(before: Graph, after: Graph, feeds: Readonly<Record<string, Float32Array>>, backendTol = 1e-5): string | null {
  verify(after);
  const errors = referenceErrors(before, after, feeds);
  for (const [k, e] of Object.entries(errors)) if (!(e < FLOAT64_TOL)) return `reference ${k}: relative L2 ${e.toExponential(2)} between the graphs before and after`;
  return compareWithReference(after, feeds, 'cpu', backendTol);
}

export function expectEquivalent(before: Graph, after: Graph, feeds: Readonly<Record<string, Float32Array>>, backendTol = 1e-5): void {
  const failure = equivalence(before, after, feeds, backendTol);
  expect(failure).toBeNull();
}

const l2 = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! ** 2; return Math.sqrt(s); };

/**
 * Like `equivalence`, for graphs with gradient outputs (`grad:*`, or momentum updates `update:momentum.*`). A
 * gradient that (nearly) cancels analytically, such as that of a conv weight feeding a batch-statistics BN along
 * the weight itself, is judged on the scale of the whole gradient: its error must be below `tol` times
 * max(|its gradient|, 1e-2 |all gradients|), since what is left of it is float32 rounding of the large terms.
 */
export function gradientEquivalence(before: Graph, after: Graph, feeds: Readonly<Record<string, Float32Array>>, tol = 1e-4): string | null {
  verify(after);
  const errors = referenceErrors(before, after, feeds);
  for (const [k, e] of Object.entries(errors)) if (!(e < FLOAT64_TOL)) return `reference ${k}: relative L2 ${e.toExponential(2)} between the graphs before and after`;
  const ref = evaluateOutputs(after, feeds);
  const executor = createExecutor(after, createBackend('cpu'), { poison: true });
  let got: Record<string, Float32Array>;
  try { got = executor.run(feeds); } finally { executor.close(); }
  const isGrad = (k: string) => k.startsWith('grad:') || k.startsWith('update:momentum.');
  const global = l2(Object.entries(ref).filter(([k]) => isGrad(k)).map(([, v]) => l2(v)));
  for (const [k, r] of Object.entries(ref)) {
    const o = got[k]!;
    if (o.some((v) => Number.isNaN(v))) return `cpu ${k}: NaN`;
    const err = l2(Array.from(r, (v, i) => v - o[i]!));
    const scale = isGrad(k) ? Math.max(l2(r), 1e-2 * global) : l2(r);
    if (!(err <= tol * scale)) return `cpu ${k}: error ${err.toExponential(2)} > ${tol} x ${scale.toExponential(2)} (|ref| ${l2(r).toExponential(2)}, all gradients ${global.toExponential(2)})`;
  }
  return null;
}

/** Run a property with readable counterexamples; failures throw with the drawn values. */
export function property<T>(arb: fc.Arbitrary<T>, check: (v: T) => string | null, numRuns: number, seed: number): void {
  fc.assert(fc.property(arb, (v) => {
    const failure = check(v);
    if (failure) throw new Error(failure);
  }), { numRuns, seed });
}

// ---------------------------------------------------------------------------------------------------------------
// A ShuffleNet unit on small drawn shapes: 1x1 group conv, BN, ReLU, channel shuffle, 3x3 depthwise conv (stride 1
// or 2), BN, 1x1 group conv, BN, then a residual add (stride 1) or the average-pooled shortcut concatenated in
// front (stride 2), and ReLU, as src/models/shufflenet.ts builds it.

export interface UnitShape {
  readonly N: number;
  readonly groups: number;
  /** Input channels per group (input channels = groups * inPerGroup). */
  readonly inPerGroup: number;
  /** Bottleneck channels per group. */
  readonly midPerGroup: number;
  /** Stride-2 units: output channels of the branch per group (concatenated after the shortcut). */
  readonly branchPerGroup: number;
  readonly stride: 1 | 2;
  readonly H: number;
  readonly W: number;
  /** The first unit of the network convolves its input with groups 1. */
  readonly firstGroup: boolean;
  readonly seed: number;
}

export const unitArb: fc.Arbitrary<UnitShape> = fc.record({
  N: fc.integer({ min: 1, max: 3 }),
  groups: fc.integer({ min: 1, max: 3 }),
  inPerGroup: fc.integer({ min: 1, max: 2 }),
  midPerGroup: fc.integer({ min: 1, max: 2 }),
  branchPerGroup: fc.integer({ min: 1, max: 2 }),
  stride: fc.constantFrom(1 as const, 2 as const),
  H: fc.integer({ min: 2, max: 5 }),
  W: fc.integer({ min: 2, max: 5 }),
  firstGroup: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

const bnSpecs = (prefix: string, c: number): Record<string, SourceSpec> => ({
  [`${prefix}.weight`]: { shape: [c], role: 'param' },
  [`${prefix}.bias`]: { shape: [c], role: 'param' },
  [`${prefix}.running_mean`]: { shape: [c], role: 'state' },
  [`${prefix}.running_var`]: { shape: [c], role: 'state' },
});

export function unitChannels(u: UnitShape) {
  const inp = u.groups * u.inPerGroup;
  const mid = u.groups * u.midPerGroup;
  const branchOut = u.stride === 1 ? inp : u.groups * u.branchPerGroup;
  return { inp, mid, branchOut, oup: u.stride === 1 ? inp : inp + branchOut };
}

export function unitParams(u: UnitShape): Record<string, SourceSpec> {
  const { inp, mid, branchOut } = unitChannels(u);
  const g1 = u.firstGroup ? 1 : u.groups;
  return {
    'conv1.weight': { shape: [mid, inp / g1, 1, 1], role: 'param' },
    ...bnSpecs('bn1', mid),
    'dw.weight': { shape: [mid, 1, 3, 3], role: 'param' },
    ...bnSpecs('bn2', mid),
    'conv2.weight': { shape: [branchOut, mid / u.groups, 1, 1], role: 'param' },
    ...bnSpecs('bn3', branchOut),
  };
}

export function unitForward(p: Record<string, Tensor>, x: Tensor, u: UnitShape, training: boolean): Tensor {
  const { mid } = unitChannels(u);
  const bn = (t: Tensor, prefix: string) => ops.batchNorm(t, {
    weight: p[`${prefix}.weight`]!, bias: p[`${prefix}.bias`]!, running_mean: p[`${prefix}.running_mean`]!, running_var: p[`${prefix}.running_var`]!,
  }, { training });
  const shortcut = u.stride === 1 ? x : ops.avgPool2d(x, { kernel: 3, stride: 2, padding: 'same' });
  let b = ops.relu(bn(ops.conv2d(x, p['conv1.weight']!, { groups: u.firstGroup ? 1 : u.groups }), 'bn1'));
  if (u.groups > 1) b = channelShuffle(b, u.groups);
  b = bn(ops.conv2d(b, p['dw.weight']!, { stride: u.stride, padding: 1, groups: mid }), 'bn2');
  b = bn(ops.conv2d(b, p['conv2.weight']!, { groups: u.groups }), 'bn3');
  return ops.relu(u.stride === 1 ? ops.add(shortcut, b) : ops.concat([shortcut, b], 1));
}

/** Trace one unit in inference mode (BN on running statistics): output `out`. */
export function unitInferGraph(u: UnitShape): Graph {
  const { inp } = unitChannels(u);
  return trace({ params: unitParams(u), inputs: { x: [u.N, inp, u.H, u.W] } }, (p, { x }) => unitForward(p, x!, u, false));
}

/**
 * Trace one unit in training mode (BN on batch statistics, running statistics as state outputs) with a scalar
 * loss: a fixed random projection of the unit's output, plus (optionally) a dense head with label-smoothed
 * softmax cross-entropy on its pooled features.
 */
export function unitTrainGraph(u: UnitShape, opts: { head?: boolean; classes?: number } = {}): Graph {
  const { inp, oup } = unitChannels(u);
  const classes = opts.classes ?? 3;
  const outH = u.stride === 1 ? u.H : Math.ceil(u.H / 2);
  const outW = u.stride === 1 ? u.W : Math.ceil(u.W / 2);
  const params: Record<string, SourceSpec> = {
    ...unitParams(u),
    ...(opts.head ? { 'fc.weight': { shape: [classes, oup], role: 'param' }, 'fc.bias': { shape: [classes], role: 'param' } } : {}),
  };
  const inputs = { x: [u.N, inp, u.H, u.W], r: [u.N, oup, outH, outW], ...(opts.head ? { label: [u.N] } : {}) };
  return trace({ params, inputs }, (p, t) => {
    const y = unitForward(p, t.x!, u, true);
    let loss = ops.sum(ops.mul(y, t.r!), [0, 1, 2, 3]);
    if (opts.head) loss = ops.add(loss, ops.softmaxCrossEntropy(ops.dense(ops.globalAvgPool(y), p['fc.weight']!, p['fc.bias']!), t.label!, 0.1));
    return { out: y, loss };
  });
}

/** The op of every kernel (compute node), in execution order. */
export const opsOf = (g: Graph): string[] => g.nodes.filter((n) => n.expr).map((n) => n.op);
