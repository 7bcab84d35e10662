// Reverse-mode autodiff as an IR-to-IR pass: the backward graph it appends computes the gradient of a scalar loss
// with respect to every parameter. A whole ShuffleNet unit in training mode (batch-statistics BN, running-stat
// updates, channel shuffle, depthwise conv, residual add or pooled concat, optionally a dense head with label-
// smoothed cross-entropy) matches central finite differences of the float64 reference, and the fused, compiled
// backward graph equals the unfused one in the reference and on gpu.js cpu.
// Finite differences use the shared checker (src/frontend/gradcheck.ts), skipping coordinates on ReLU/max kinks.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import * as ops from '../../src/ir/ops';
import { evaluate, evaluateOutputs } from '../../src/ir/reference';
import { checkGradients } from '../../src/frontend/gradcheck';
import { gradients } from '../../src/passes/autodiff';
import { fuseIndexRemapping, isIndexRemapping } from '../../src/passes/fuse-index-remapping';
import { fuseEpilogues } from '../../src/passes/fuse-epilogues';
import { feedsFor, gradientEquivalence, lineMatching, property, show, unitArb, unitTrainGraph, type UnitShape } from './common';

describe('autodiff on a printed example', () => {
  const build = () => trace({ params: { w: { shape: [2, 1, 3, 3], role: 'param' } }, inputs: { x: [1, 1, 4, 4], r: [1, 2, 2, 2] } },
    (p, { x, r }) => ({ loss: ops.sum(ops.mul(ops.relu(ops.conv2d(x!, p.w!)), r!), [0, 1, 2, 3]) }));

  it('appends the backward graph: seed, broadcast, relu_grad, conv2d_grad_weight, and a grad output', () => {
    const before = build();
    const text = show('forward', before, false);
    lineMatching(text, /%6 = sum\(%5\) \{axes: \[0, 1, 2, 3\], keepdims: false\} : f32\[\]/);
    const { graph: after, record } = gradients(before);
    const out = show('forward + backward', after, false);
    expect(record).toEqual({ forwardNodes: 7, backwardNodes: 8, params: 1 });
    // The forward part is unchanged.
    expect(out.split('\n').slice(0, 8)).toEqual(text.split('\n').slice(0, 8));
    lineMatching(out, /%7 = fill\(%6\) \{value: 1\} : f32\[\]/);
    lineMatching(out, /%9 = broadcast\(%8\) \{shape: \[1, 2, 2, 2\]\} : f32\[1, 2, 2, 2\]/);
    lineMatching(out, /%10 = mul\(%9, %2\) : f32\[1, 2, 2, 2\]/);
    lineMatching(out, /%12 = relu_grad\(%4, %10\) : f32\[1, 2, 2, 2\]/); // masked by relu's output %4
    lineMatching(out, /%14 = conv2d_grad_weight\(%12, %1\) \{stride: 1, padding: 0, groups: 1, weightShape: \[2, 1, 3, 3\]\} : f32\[2, 1, 3, 3\]/);
    lineMatching(out, /^ {2}grad grad:w = %14$/);
    lineMatching(out, /^ {2}output loss = %6$/);
    // Backward nodes point at the forward op they differentiate and are marked as backward work.
    expect(lineMatching(out, /%14 = conv2d_grad_weight/)).toMatch(/# test\/passes\/autodiff\.test\.ts:20:/);
    expect(after.nodes.map((n) => n.phase ?? 'forward')).toEqual([...Array(7).fill('forward'), ...Array(8).fill('backward')]);

    // d loss / d w[o, 0, ky, kx] = sum over y, x of r[o, y, x] * [conv > 0] * x[y + ky, x + kx], by hand.
    const feeds = feedsFor(before, 1);
    const got = evaluateOutputs(after, feeds)['grad:w']!;
    const conv = evaluate(before, feeds)[3]!;
    const x = feeds.x!;
    const r = feeds.r!;
    const want = new Float64Array(18);
    for (let o = 0; o < 2; o++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
      for (let y = 0; y < 2; y++) for (let xx = 0; xx < 2; xx++) {
        if (conv[o * 4 + y * 2 + xx]! > 0) want[o * 9 + ky * 3 + kx] += r[o * 4 + y * 2 + xx]! * x[(y + ky) * 4 + xx + kx]!;
      }
    }
    for (let i = 0; i < 18; i++) expect(got[i]).toBeCloseTo(want[i]!, 12);
  });

  it('parameters the loss does not read get a zero gradient; a non-scalar loss or an op without a rule is an error', () => {
    const g = trace({ params: { a: { shape: [3], role: 'param' }, unused: { shape: [2, 2], role: 'param' } }, inputs: {} },
      (p) => ({ loss: ops.sum(ops.mul(p.a!, p.a!), [0]) }));
    const { graph } = gradients(g);
    const text = show('unused parameter', graph, false);
    lineMatching(text, /= fill\(%1\) \{value: 0\} : f32\[2, 2\]/);
    const res = evaluateOutputs(graph, { a: [1, 2, 3], unused: [5, 6, 7, 8] });
    expect(Array.from(res['grad:unused']!)).toEqual([0, 0, 0, 0]);
    expect(Array.from(res['grad:a']!)).toEqual([2, 4, 6]);
    expect(graph.output('unused', 'grad').phase).toBe('backward');

    const vec = trace({ params: { a: { shape: [3], role: 'param' } }, inputs: {} }, (p) => ({ loss: ops.relu(p.a!) }));
    expect(() => gradients(vec)).toThrow(/output loss must be a scalar, it has shape \[3\]/);
    const noRule = trace({ params: { a: { shape: [3], role: 'param' } }, inputs: {} }, (p) => ({ loss: ops.reduceMax(p.a!, [0]) }));
    expect(() => gradients(noRule)).toThrow(/op reduce_max \(%1\) has no gradient rule/);
  });
});


const trainUnitArb = fc.record({ u: unitArb, head: fc.boolean() })
  // Batch statistics need more than one value per channel.
  .filter(({ u }) => u.N * (u.stride === 1 ? u.H * u.W : Math.ceil(u.H / 2) * Math.ceil(u.W / 2)) > 1);

describe('ShuffleNet unit gradients in training mode (fast-check)', () => {
  it('match central finite differences of the float64 reference for every parameter', () => {
    property(trainUnitArb, ({ u, head }) => {
      const g = unitTrainGraph(u, { head });
      const params = g.sources('param').map((p) => p.name);
      expect(params).toContain('dw.weight');
      return checkGradients(g, feedsFor(g, u.seed), u.seed, { coordinates: 3, skipKinks: true });
    }, 12, 401);
  });

  it('a fixed stride-2 unit with the classifier head, every coordinate of the depthwise and BN parameters', () => {
    const u: UnitShape = { N: 2, groups: 2, inPerGroup: 2, midPerGroup: 2, branchPerGroup: 1, stride: 2, H: 5, W: 4, firstGroup: false, seed: 9 };
    const g = unitTrainGraph(u, { head: true });
    // The running statistics are state outputs, not differentiated.
    const { graph } = gradients(g);
    expect(graph.outputs.filter((o) => o.kind === 'state').map((o) => o.name).sort()).toEqual(
      ['bn1', 'bn2', 'bn3'].flatMap((b) => [`${b}.running_mean`, `${b}.running_var`]).sort());
    expect(graph.outputs.filter((o) => o.kind === 'grad').map((o) => o.name).sort()).toEqual(g.sources('param').map((p) => p.name).sort());
    expect(checkGradients(g, feedsFor(g, 9), 9, { coordinates: 40, skipKinks: true })).toBeNull();
  });

  it('the fused backward graph equals the unfused one (reference) and runs on gpu.js cpu', () => {
    property(trainUnitArb, ({ u, head }) => {
      const g = gradients(unitTrainGraph(u, { head })).graph;
      const fused = fuseEpilogues(fuseIndexRemapping(g).graph).graph;
      // Gradients of BN parameters are outputs ending in a reshape ([1, C, 1, 1] sums to [C]); the sum is fused
      // into them, so no kernel only moves data.
      const moves = fused.nodes.filter((n) => n.expr && isIndexRemapping(n.expr));
      if (moves.length) return `kernels that only move data remain: ${moves.map((n) => n.fused?.join(' > ') ?? n.op).join('; ')}`;
      return gradientEquivalence(g, fused, feedsFor(g, u.seed, 3));
    }, 10, 402);
  });
});
