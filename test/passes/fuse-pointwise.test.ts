// Pointwise fusion: a cheap pointwise node is recomputed inside its readers, reductions included, when no reader
// evaluates any of its elements twice; with several readers, only when all take it and it reads one tensor of its
// size. Training BatchNorm is the case it exists for: the centred activation x - mean and its square leave memory.
// Fused graphs equal the unfused ones in the float64 reference and on gpu.js cpu.
import { describe, it, expect } from 'vitest';
import { trace } from '../../src/ir/trace';
import { isSource, type Graph } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { fusePointwise } from '../../src/passes/fuse-pointwise';
import { fuseEpilogues } from '../../src/passes/fuse-epilogues';
import { fuseIndexRemapping } from '../../src/passes/fuse-index-remapping';
import { gradients } from '../../src/passes/autodiff';
import { equivalence, expectEquivalent, feedsFor, gradientEquivalence, lineMatching, property, show, unitArb, unitTrainGraph } from './common';

const kernels = (g: Graph): number => g.nodes.filter((n) => !isSource(n)).length;

const trainingBn = (): Graph => trace({
  params: { 'bn.weight': { shape: [3], role: 'param' }, 'bn.bias': { shape: [3], role: 'param' } },
  inputs: { x: [2, 3, 4, 4] },
}, (p, { x }) => {
  const mu = ops.mean(x!, [0, 2, 3]);
  const centered = ops.sub(x!, ops.reshape(mu, [3, 1, 1]));
  const variance = ops.mean(ops.mul(centered, centered), [0, 2, 3]);
  const scale = ops.mul(ops.rsqrt(ops.affine(variance, 1, 1e-5)), p['bn.weight']!);
  return ops.relu(ops.add(ops.mul(centered, ops.reshape(scale, [3, 1, 1])), ops.reshape(p['bn.bias']!, [3, 1, 1])));
});

describe('pointwise fusion on printed examples', () => {
  it('training BN: the variance reads (x - mean)² from x, the apply recomputes x - mean, and neither is a kernel', () => {
    const before = fuseEpilogues(fuseIndexRemapping(trainingBn()).graph).graph;
    show('before pointwise fusion', before);
    const { graph: after, record } = fusePointwise(before);
    const out = show('after pointwise fusion', after);
    expect(record.inlined).toBeGreaterThanOrEqual(3);
    // Kernels left: the mean, the variance with the per-channel scale (an epilogue), and the apply.
    expect(kernels(after)).toBe(3);
    lineMatching(out, /sum\[r\d+<2, r\d+<4, r\d+<4\]\(\(\(%2\[r\d+, i0, r\d+, r\d+\] - %3\[i0\]\) \* \(%2\[r\d+, i0, r\d+, r\d+\] - %3\[i0\]\)\)\)/);
    lineMatching(out, /= max\(\(\(\(%\d+\[i0, i1, i2, i3\] - %\d+\[i1\]\) \* %\d+\[i1\]\) \+ %\d+\[i1\]\), 0\)/);
    expectEquivalent(before, after, feedsFor(before, 1));
  });

  it('recomputes a * b in its 2 readers (2 x 2 inputs read, against 2 + 1 + 2)', () => {
    const before = trace({ params: {}, inputs: { a: [2, 8], b: [2, 8] } }, (_p, { a, b }) => {
      const both = ops.mul(a!, b!);
      return { s: ops.sum(both, [1]), t: ops.scale(both, 3) };
    });
    const { graph: after, record } = fusePointwise(before);
    const out = show('after', after);
    expect(record.inlined).toBe(2);
    expect(kernels(after)).toBe(2);
    lineMatching(out, /= sum\[r\d+<8\]\(\(%0\[i0, r\d+\] \* %1\[i0, r\d+\]\)\)/);
    expectEquivalent(before, after, feedsFor(before, 3));
  });

  it('keeps a node whose reader would recompute it (a convolution window), and all its other readers with it', () => {
    const before = trace({ params: { w: { shape: [2, 2, 3, 3], role: 'param' } }, inputs: { x: [1, 2, 5, 5] } }, (p, { x }) => {
      const y = ops.relu(ops.neg(x!));
      return { conv: ops.conv2d(y, p.w!, { padding: 1 }), twice: ops.scale(y, 2) };
    });
    const { graph: after } = fusePointwise(fuseEpilogues(before).graph);
    const out = show('after', after, false);
    // relu(neg(x)) is read 9 times per pixel by the conv: it stays, and so the scale reads it instead of x.
    lineMatching(out, /= fused\(neg > relu\)\(%\d+\) : f32\[1, 2, 5, 5\]/);
    lineMatching(out, /= affine\(%\d+\) \{scale: 2, shift: 0\} : f32\[1, 2, 5, 5\]/);
    expectEquivalent(before, after, feedsFor(before, 2));
  });

  it('keeps a node whose recomputation would move more bytes (3 readers of a * b), and one with too many ops', () => {
    const before = trace({ params: {}, inputs: { a: [2, 8], b: [2, 8] } }, (_p, { a, b }) => {
      const both = ops.mul(a!, b!); // 3 readers x 2 inputs = 6 reads, against 2 reads + 1 write + 3 reads
      const long = ops.exp(ops.neg(ops.exp(ops.neg(ops.exp(ops.neg(ops.exp(ops.neg(a!))))))));
      return { s: ops.sum(both, [1]), t: ops.scale(both, 3), w: ops.neg(both), u: ops.sum(long, [1]), v: ops.scale(long, 2) };
    });
    const epilogues = fuseEpilogues(before).graph;
    show('after epilogue fusion (the exp chain is one node of 8 ops)', epilogues, false);
    const { graph: after, record } = fusePointwise(epilogues);
    expect(record.inlined).toBe(0);
    expect(kernels(after)).toBe(kernels(epilogues));
  });
});

describe('pointwise fusion preserves values and gradients (fast-check)', () => {
  it('ShuffleNet training units: fewer kernels, the same outputs and gradients', () => {
    property(unitArb, (u) => {
      const traced = unitTrainGraph(u, { head: true, classes: 3 });
      const before = fuseEpilogues(fuseIndexRemapping(gradients(traced).graph).graph).graph;
      const after = fusePointwise(before).graph;
      if (!(kernels(after) < kernels(before))) return `expected fewer kernels, got ${kernels(before)} -> ${kernels(after)}`;
      return gradientEquivalence(before, after, feedsFor(before, u.seed, 3));
    }, 10, 401);
  });

  it('a BN without ReLU (the last of a unit): the same result as the unfused graph', () => {
    const before = trace({ params: {}, inputs: { x: [3, 2, 3, 5] } }, (_p, { x }) => {
      const centered = ops.sub(x!, ops.reshape(ops.mean(x!, [0, 2, 3]), [2, 1, 1]));
      return ops.mul(centered, ops.reshape(ops.rsqrt(ops.affine(ops.mean(ops.mul(centered, centered), [0, 2, 3]), 1, 1e-5)), [2, 1, 1]));
    });
    expect(equivalence(before, fusePointwise(fuseEpilogues(before).graph).graph, feedsFor(before, 5))).toBeNull();
  });
});
