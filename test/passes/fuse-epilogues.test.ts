// Epilogue fusion: a node read once, by one consumer, outside any reduction, is computed inside that consumer
// (BN, ReLU, bias and residual adds, the concat write fuse into the convolution or pooling producing them). The
// fused graph equals the unfused one in the float64 reference and on gpu.js cpu, and nothing is recomputed.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace, type SourceSpec } from '../../src/ir/trace';
import type { Graph, Tensor } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { fuseEpilogues } from '../../src/passes/fuse-epilogues';
import { hasReduce } from '../../src/passes/inline';
import { fuseIndexRemapping } from '../../src/passes/fuse-index-remapping';
import { foldBatchNorm } from '../../src/passes/fold-batchnorm';
import { equivalence, expectEquivalent, feedsFor, lineMatching, opsOf, property, show, unitArb, unitInferGraph } from './common';

const bnSpecs = (prefix: string, c: number): Record<string, SourceSpec> => ({
  [`${prefix}.weight`]: { shape: [c], role: 'param' },
  [`${prefix}.bias`]: { shape: [c], role: 'param' },
  [`${prefix}.running_mean`]: { shape: [c], role: 'state' },
  [`${prefix}.running_var`]: { shape: [c], role: 'state' },
});
const bn = (p: Record<string, Tensor>, x: Tensor, prefix = 'bn') => ops.batchNorm(x, {
  weight: p[`${prefix}.weight`]!, bias: p[`${prefix}.bias`]!, running_mean: p[`${prefix}.running_mean`]!, running_var: p[`${prefix}.running_var`]!,
}, { training: false });

const convBnRelu = (): Graph => trace({ params: { w: { shape: [4, 3, 3, 3], role: 'param' }, ...bnSpecs('bn', 4) }, inputs: { x: [1, 3, 5, 5] } },
  (p, { x }) => ops.relu(bn(p, ops.conv2d(x!, p.w!, { padding: 1 }))));

describe('epilogue fusion on printed examples', () => {
  it('conv > BN > relu is one kernel: fused(conv2d > batch_norm_infer > relu)', () => {
    const before = convBnRelu();
    const text = show('before epilogue fusion', before, false);
    expect(opsOf(before)).toEqual(['conv2d', 'batch_norm_infer', 'relu']);
    lineMatching(text, /%8 = relu\(%7\) : f32\[1, 4, 5, 5\]/);
    const { graph: after, record } = fuseEpilogues(before);
    const out = show('after epilogue fusion', after);
    expect(record).toEqual({ inlined: 2 });
    expect(opsOf(after)).toEqual(['relu']);
    lineMatching(out, /%6 = fused\(conv2d > batch_norm_infer > relu\)\(%1, %2, %3, %4, %5, %0\) : f32\[1, 4, 5, 5\]/);
    // One expression: max(BN(sum over the window), 0).
    expect(out).toMatch(/= max\(\(\(\(\(sum\[r\d+<3, r\d+<3, r\d+<3\]/);
    expectEquivalent(before, after, feedsFor(before, 1));
  });

  it('after BN folding and shuffle fusion: fused(conv2d > reshape > add > relu) with the folded weights as inputs', () => {
    const traced = convBnRelu();
    const folded = fuseIndexRemapping(foldBatchNorm(traced).graph).graph;
    const { graph: after } = fuseEpilogues(folded);
    const out = show('folded and fused', after, false);
    expect(opsOf(after)).toEqual(['bn_fold_weight', 'bn_fold_bias', 'relu']);
    // The folded bias [4] is read broadcast over [1, 4, 5, 5]: inlining it would recompute it per element.
    lineMatching(out, /%8 = fused\(conv2d > reshape > add > relu\)\(%7, %5, %6\) : f32\[1, 4, 5, 5\]/);
    expectEquivalent(traced, after, feedsFor(traced, 2));
  });

  it('does not fuse into reductions, across two readers, into broadcasts, or away from outputs', () => {
    const before = trace({ params: { w: { shape: [4, 4, 1, 1], role: 'param' }, v: { shape: [4], role: 'param' } }, inputs: { x: [2, 4, 3, 3] } }, (p, { x }) => {
      const r = ops.relu(x!); // read inside the conv's reduction: stays a kernel
      const y = ops.conv2d(r, p.w!);
      const twice = ops.exp(y); // two readers: stays a kernel (with the conv, its only reader's producer)
      const e = ops.exp(p.v!); // [4] read broadcast over [2, 4, 3, 3]: stays a kernel
      const out = ops.add(ops.add(ops.neg(twice), ops.scale(twice, 2)), ops.reshape(e, [4, 1, 1]));
      const kept = ops.neg(out); // an output: its reader does not absorb it
      return { kept, last: ops.relu(kept) };
    });
    show('before', before, false);
    const { graph: after } = fuseEpilogues(fuseIndexRemapping(before).graph);
    const out = show('after', after, false);
    expect(opsOf(after)).toEqual(['relu', 'exp', 'exp', 'neg', 'relu']);
    lineMatching(out, /%3 = relu\(%2\) : f32\[2, 4, 3, 3\]/);
    lineMatching(out, /%4 = fused\(conv2d > exp\)\(%3, %0\) : f32\[2, 4, 3, 3\]/);
    lineMatching(out, /%5 = exp\(%1\) : f32\[4\]/);
    lineMatching(out, /%6 = fused\(affine > neg > add > reshape > add > neg\)\(%5, %4\) : f32\[2, 4, 3, 3\]/);
    lineMatching(out, /%7 = relu\(%6\) : f32\[2, 4, 3, 3\]/);
    lineMatching(out, /output kept = %6/);
    expectEquivalent(before, after, feedsFor(before, 3));
  });

  it('the concat of a stride-2 unit places the pooled shortcut and the branch; neither reduction is computed in it', () => {
    const u = { N: 1, groups: 2, inPerGroup: 1, midPerGroup: 2, branchPerGroup: 1, stride: 2 as const, H: 4, W: 4, firstGroup: false, seed: 1 };
    const traced = unitInferGraph(u);
    const g = fuseEpilogues(fuseIndexRemapping(foldBatchNorm(traced).graph).graph).graph;
    const out = show('stride-2 unit', g, false);
    // relu(concat([avg_pool(x), conv(...) + bias])): both are read under a select branch, but SIMD code evaluates
    // both branches for every element, so the pool and the conv would run for all 4 channels, not their own 2.
    lineMatching(out, /= avg_pool2d\(%\d+\) \{kernel: 3, stride: 2, padding: same\} : f32\[1, 2, 2, 2\]/);
    lineMatching(out, /= fused\(conv2d > reshape > add\)\(.*\) : f32\[1, 2, 2, 2\]/);
    lineMatching(out, /= fused\(concat > relu\)\(%\d+, %\d+\) : f32\[1, 4, 2, 2\]/);
    expectEquivalent(traced, g, feedsFor(traced, 4));
  });
});

const chainArb = fc.record({
  N: fc.integer({ min: 1, max: 3 }), groups: fc.integer({ min: 1, max: 3 }), cPerGroup: fc.integer({ min: 1, max: 2 }),
  H: fc.integer({ min: 2, max: 5 }), W: fc.integer({ min: 2, max: 5 }), stride: fc.integer({ min: 1, max: 2 }),
  bias: fc.boolean(), tail: fc.constantFrom('relu', 'residual', 'concat', 'pad', 'pool'), seed: fc.integer({ min: 1, max: 1_000_000 }),
});

describe('epilogue fusion preserves values (fast-check)', () => {
  it('conv (group, strided, biased) > BN > relu > residual add / concat / pad / pool', () => {
    property(chainArb, (c) => {
      const C = c.groups * c.cPerGroup;
      const before = trace({
        params: { w: { shape: [C, c.cPerGroup, 3, 3], role: 'param' }, b: { shape: [C], role: 'param' }, ...bnSpecs('bn', C) },
        inputs: { x: [c.N, C, c.H, c.W] },
      }, (p, { x }) => {
        const y = ops.relu(bn(p, ops.conv2d(x!, p.w!, { stride: c.stride, padding: 1, groups: c.groups, bias: c.bias ? p.b : undefined })));
        const short = c.stride === 1 ? x! : ops.avgPool2d(x!, { kernel: 3, stride: 2, padding: 'same' });
        switch (c.tail) {
          case 'relu': return y;
          case 'residual': return ops.relu(ops.add(short, y));
          case 'concat': return ops.relu(ops.concat([short, y], 1));
          case 'pad': return ops.scale(ops.pad(y, 2, 1, 2), 3);
          default: return ops.maxPool2d(y, { kernel: 2, stride: 1, padding: 0 });
        }
      });
      const after = fuseEpilogues(fuseIndexRemapping(before).graph).graph;
      // Everything after the conv is one kernel with it, except a pooling (it reads its input inside a reduction)
      // and a placement into a larger tensor (concat, pad), which computes no reduction; with stride 2 the concat's
      // shortcut is an average pool of its own.
      const expected = c.tail === 'pool' || c.tail === 'pad' ? 2 : c.tail === 'concat' ? (c.stride === 2 ? 3 : 2) : 1;
      if (opsOf(after).length !== expected) return `expected ${expected} kernels, got ${opsOf(after).join(', ')}`;
      return equivalence(before, after, feedsFor(before, c.seed));
    }, 30, 301);
  });

  it('ShuffleNet units after shuffle fusion: every BN and ReLU lives inside a conv or pooling kernel', () => {
    property(unitArb, (u) => {
      const before = fuseIndexRemapping(unitInferGraph(u)).graph;
      const after = fuseEpilogues(before).graph;
      const alone = after.nodes.filter((n) => n.expr && (n.op === 'relu' || n.op === 'batch_norm_infer' || n.op === 'add')
        && !(n.fused ?? []).some((o) => o === 'conv2d' || o === 'avg_pool2d' || o === 'concat'));
      if (alone.length) return `unfused epilogues: ${alone.map((n) => n.fused?.join(' > ') ?? n.op).join('; ')}`;
      // Three convolutions remain (fewer when a 1-channel group leaves a conv without a reduction to fuse it);
      // a stride-2 unit adds the pooled shortcut and the concat placing it, which computes no reduction.
      const most = u.stride === 2 ? 5 : 3;
      if (opsOf(after).length > most) return `expected at most ${most} kernels, got ${opsOf(after).join(', ')}`;
      const concat = after.nodes.find((n) => n.fused?.includes('concat'));
      if (concat && hasReduce(concat.expr!)) return `the concat kernel computes a reduction: ${concat.fused!.join(' > ')}`;
      return equivalence(before, after, feedsFor(before, u.seed));
    }, 20, 302);
  });
});
