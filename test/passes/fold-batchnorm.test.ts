// BatchNorm folding: inference BN after a convolution becomes a convolution on folded weights plus a folded bias
// (computed in the graph from the parameters). Plain, group and depthwise convolutions, with and without a conv
// bias, and BN folding followed by shuffle fusion and epilogue fusion on a ShuffleNet unit, all equal the
// unoptimised graph in the float64 reference and on gpu.js cpu.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace, type SourceSpec } from '../../src/ir/trace';
import type { Tensor } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { foldBatchNorm } from '../../src/passes/fold-batchnorm';
import { passesFor, runPasses } from '../../src/passes/pipeline';
import { isIndexRemapping } from '../../src/passes/fuse-index-remapping';
import { equivalence, expectEquivalent, feedsFor, lineMatching, opsOf, property, show, unitArb, unitInferGraph } from './common';

const bnSpecs = (prefix: string, c: number): Record<string, SourceSpec> => ({
  [`${prefix}.weight`]: { shape: [c], role: 'param' },
  [`${prefix}.bias`]: { shape: [c], role: 'param' },
  [`${prefix}.running_mean`]: { shape: [c], role: 'state' },
  [`${prefix}.running_var`]: { shape: [c], role: 'state' },
});
const bnInfer = (p: Record<string, Tensor>, x: Tensor, prefix = 'bn') => ops.batchNorm(x, {
  weight: p[`${prefix}.weight`]!, bias: p[`${prefix}.bias`]!, running_mean: p[`${prefix}.running_mean`]!, running_var: p[`${prefix}.running_var`]!,
}, { training: false });

describe('BN folding on printed examples', () => {
  it('conv > BN > relu becomes conv(x, bn_fold_weight) + bn_fold_bias > relu', () => {
    const before = trace({ params: { w: { shape: [4, 2, 3, 3], role: 'param' }, ...bnSpecs('bn', 4) }, inputs: { x: [2, 2, 5, 5] } },
      (p, { x }) => ops.relu(bnInfer(p, ops.conv2d(x!, p.w!, { padding: 1 }))));
    const text = show('before BN folding', before);
    lineMatching(text, /%6 = conv2d\(%5, %0\) \{stride: 1, padding: 1, groups: 1\} : f32\[2, 4, 5, 5\]/);
    lineMatching(text, /%7 = batch_norm_infer\(%6, %1, %2, %3, %4\) \{eps: 0.00001\} : f32\[2, 4, 5, 5\]/);

    const { graph: after, record } = foldBatchNorm(before);
    const out = show('after BN folding', after);
    expect(record).toEqual({ folded: 1 });
    expect(out).not.toContain('batch_norm_infer');
    // W' = W * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps), from the parameters.
    lineMatching(out, /%6 = bn_fold_weight\(%0, %1, %4\) \{eps: 0.00001\} : f32\[4, 2, 3, 3\]/);
    lineMatching(out, /%7 = bn_fold_bias\(%1, %2, %3, %4\) \{eps: 0.00001\} : f32\[4\]/);
    lineMatching(out, /%8 = conv2d\(%5, %6\) \{stride: 1, padding: 1, groups: 1\} : f32\[2, 4, 5, 5\]/);
    lineMatching(out, /%9 = reshape\(%7\) \{shape: \[4, 1, 1\]\} : f32\[4, 1, 1\]/);
    lineMatching(out, /%10 = add\(%8, %9\) : f32\[2, 4, 5, 5\]/);
    lineMatching(out, /%11 = relu\(%10\)/);
    // The new nodes point at the BN call in the model source; the relu keeps its own location.
    expect(lineMatching(out, /%8 = conv2d/)).toContain('# test/passes/fold-batchnorm.test.ts:21:');
    expect(lineMatching(out, /%11 = relu/)).toContain('# test/passes/fold-batchnorm.test.ts:28:');
    expect(out).toContain('      = ((%0[i0, i1, i2, i3] * %1[i0]) / sqrt((%4[i0] + 0.00001)))');
    expect(out).toContain('      = (%2[i0] + (((0 - %3[i0]) * %1[i0]) / sqrt((%4[i0] + 0.00001))))');
    expectEquivalent(before, after, feedsFor(before, 1));
  });

  it('a conv with bias folds the bias too: bn_fold_bias reads it', () => {
    const before = trace({ params: { w: { shape: [6, 1, 3, 3], role: 'param' }, b: { shape: [6], role: 'param' }, ...bnSpecs('bn', 6) }, inputs: { x: [1, 3, 4, 4] } },
      (p, { x }) => bnInfer(p, ops.conv2d(x!, p.w!, { stride: 2, padding: 1, groups: 3, bias: p.b })));
    const text = show('before', before, false);
    lineMatching(text, /%9 = add\(%7, %8\) : f32\[1, 6, 2, 2\]/);
    const { graph: after, record } = foldBatchNorm(before);
    const out = show('after', after);
    expect(record.folded).toBe(1);
    expect(opsOf(after)).toEqual(['bn_fold_weight', 'bn_fold_bias', 'conv2d', 'reshape', 'add']);
    // beta + (b - mean) * gamma / sqrt(var + eps): the fold bias reads gamma, beta, mean, var and the conv bias.
    lineMatching(out, /= bn_fold_bias\(%2, %3, %4, %5, %1\) \{eps: 0.00001\} : f32\[6\]/);
    lineMatching(out, /= conv2d\(%6, %7\) \{stride: 2, padding: 1, groups: 3\}/);
    expectEquivalent(before, after, feedsFor(before, 2));
  });

  it('leaves BN alone where folding would change the result or duplicate work', () => {
    const before = trace({
      params: { w: { shape: [4, 4, 1, 1], role: 'param' }, v: { shape: [4], role: 'param' }, ...bnSpecs('a', 4), ...bnSpecs('b', 4), ...bnSpecs('c', 4), ...bnSpecs('d', 4) },
      inputs: { x: [1, 4, 3, 4] },
    }, (p, { x }) => {
      const y = ops.conv2d(x!, p.w!);
      return {
        // The conv is read twice: folding would need a second conv.
        shared: ops.add(bnInfer(p, y, 'a'), y),
        // BN after a non-conv.
        relu: bnInfer(p, ops.relu(x!), 'b'),
        // A [4] vector broadcast along W (W == C == 4), not a channel bias.
        alongW: bnInfer(p, ops.add(ops.conv2d(x!, p.w!), ops.reshape(p.v!, [1, 1, 4])), 'c'),
        // A channel bias as [1, C, 1, 1] folds.
        channel: bnInfer(p, ops.add(ops.conv2d(x!, p.w!), ops.reshape(p.v!, [1, 4, 1, 1])), 'd'),
      };
    });
    const { graph: after, record } = foldBatchNorm(before);
    show('after', after, false);
    expect(record.folded).toBe(1);
    expect(opsOf(after).filter((o) => o === 'batch_norm_infer')).toHaveLength(3);
    expectEquivalent(before, after, feedsFor(before, 3));
  });
});

const kindArb = fc.constantFrom('plain' as const, 'group' as const, 'depthwise' as const);
const foldArb = fc.record({
  kind: kindArb,
  N: fc.integer({ min: 1, max: 3 }),
  groups: fc.integer({ min: 2, max: 3 }),
  cPerGroup: fc.integer({ min: 1, max: 3 }),
  oPerGroup: fc.integer({ min: 1, max: 3 }),
  H: fc.integer({ min: 3, max: 6 }),
  W: fc.integer({ min: 3, max: 6 }),
  k: fc.constantFrom(1, 3),
  stride: fc.integer({ min: 1, max: 2 }),
  padding: fc.integer({ min: 0, max: 1 }),
  bias: fc.boolean(),
  relu: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

describe('BN folding preserves values (fast-check)', () => {
  it('plain, group and depthwise convs, with and without conv bias', () => {
    property(foldArb, (c) => {
      // Depthwise: groups = C, one input channel per group (and 1-3 outputs per channel).
      const groups = c.kind === 'plain' ? 1 : c.kind === 'depthwise' ? c.groups * c.cPerGroup : c.groups;
      const C = c.groups * c.cPerGroup;
      const O = c.kind === 'depthwise' ? C * c.oPerGroup : groups * c.oPerGroup;
      const before = trace({
        params: { w: { shape: [O, C / groups, c.k, c.k], role: 'param' }, b: { shape: [O], role: 'param' }, ...bnSpecs('bn', O) },
        inputs: { x: [c.N, C, c.H, c.W] },
      }, (p, { x }) => {
        const y = bnInfer(p, ops.conv2d(x!, p.w!, { stride: c.stride, padding: c.padding, groups, bias: c.bias ? p.b : undefined }));
        return c.relu ? ops.relu(y) : y;
      });
      const { graph: after, record } = foldBatchNorm(before);
      if (record.folded !== 1 || after.nodes.some((n) => n.op === 'batch_norm_infer')) return `not folded: ${JSON.stringify(record)}`;
      if (!after.nodes.some((n) => n.op === 'bn_fold_weight') || !after.nodes.some((n) => n.op === 'bn_fold_bias')) return 'no bn_fold_weight / bn_fold_bias';
      return equivalence(before, after, feedsFor(before, c.seed));
    }, 30, 201);
  });

  it('a ShuffleNet unit: BN folding, then shuffle fusion and epilogue fusion (the infer pipeline)', () => {
    property(unitArb, (u) => {
      const traced = unitInferGraph(u);
      const program = runPasses(traced, passesFor('infer'));
      const g = program.graph;
      if (program.passes[0]!.changed.folded !== 3) return `folded ${JSON.stringify(program.passes[0]!.changed)}`;
      const bad = g.nodes.filter((n) => n.expr && (['batch_norm_infer', 'reshape', 'transpose', 'concat'].includes(n.op) || n.fused?.includes('batch_norm_infer') || isIndexRemapping(n.expr)));
      if (bad.length) return `left: ${bad.map((n) => n.op).join(', ')}`;
      if (g.nodes.filter((n) => n.op === 'bn_fold_weight').length !== 3) return 'expected 3 bn_fold_weight';
      return equivalence(traced, g, feedsFor(traced, u.seed));
    }, 20, 202);
  });

  it('the optimised unit, printed: three folded convs, no BN and no shuffle kernel', () => {
    const u = { N: 2, groups: 3, inPerGroup: 2, midPerGroup: 2, branchPerGroup: 1, stride: 1 as const, H: 4, W: 4, firstGroup: false, seed: 5 };
    const traced = unitInferGraph(u);
    const before = show('traced unit', traced, false);
    expect(before.match(/= batch_norm_infer\(/g)).toHaveLength(3);
    expect(before.match(/= (reshape|transpose)\(/g)!.length).toBeGreaterThanOrEqual(3);
    const g = runPasses(traced, passesFor('infer')).graph;
    const after = show('optimised unit', g);
    expect(after).not.toMatch(/batch_norm_infer|= (reshape|transpose)\(/);
    expect(after.match(/= bn_fold_weight\(/g)).toHaveLength(3);
    // The depthwise conv reads the first conv's output at the shuffled channel: 6 channels in 3 groups of 2,
    // output channel c = a * 2 + b reads channel b * 3 + a.
    lineMatching(after, /= fused\(conv2d > reshape > add > relu\)/);
    lineMatching(after, /= fused\(reshape > transpose > reshape > conv2d > reshape > add\)/);
    lineMatching(after, /= fused\(conv2d > reshape > add > relu\)\(.*\) : f32\[2, 6, 4, 4\]/);
    expectEquivalent(traced, g, feedsFor(traced, 6));
  });
});
