// Shuffle fusion (inline index remapping): reshape, transpose, the channel shuffle, concat, slice, pad and
// broadcast disappear into the kernels that read them, which then read the permuted index directly; the result
// equals the unoptimised graph in the float64 reference and on gpu.js cpu.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import type { Tensor } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { compute, Placeholder, select } from '../../src/ir/te';
import { channelShuffle } from '../../src/models/shufflenet';
import { fuseIndexRemapping, isIndexRemapping } from '../../src/passes/fuse-index-remapping';
import { equivalence, expectEquivalent, feedsFor, lineMatching, opsOf, property, show, unitArb, unitInferGraph } from './common';

const REMAP_OPS = ['reshape', 'transpose', 'concat', 'slice', 'pad', 'broadcast'];

describe('shuffle fusion on a printed example', () => {
  // 1x1 group conv (2 groups, 6 channels), channel shuffle with 3 groups, 3x3 depthwise conv.
  const build = () => trace({
    params: { w1: { shape: [6, 2, 1, 1], role: 'param' }, dw: { shape: [6, 1, 3, 3], role: 'param' } },
    inputs: { x: [2, 4, 5, 5] },
  }, (p, { x }) => ops.conv2d(channelShuffle(ops.conv2d(x!, p.w1!, { groups: 2 }), 3), p.dw!, { padding: 1, groups: 6 }));

  it('removes the reshape > transpose > reshape and the depthwise conv reads the shuffled channel', () => {
    const before = build();
    const text = show('before shuffle fusion', before);
    expect(lineMatching(text, /= reshape\(%3\)/)).toContain('{shape: [2, 2, 3, 5, 5]} : f32[2, 2, 3, 5, 5]');
    expect(lineMatching(text, /= transpose\(%4\)/)).toContain('{perm: [0, 2, 1, 3, 4]} : f32[2, 3, 2, 5, 5]');
    expect(lineMatching(text, /%6 = reshape\(%5\)/)).toContain('f32[2, 6, 5, 5]');
    expect(lineMatching(text, /%7 = conv2d\(%6, %1\)/)).toContain('groups: 6');

    const { graph: after, record } = fuseIndexRemapping(before);
    const out = show('after shuffle fusion', after);
    expect(opsOf(after)).toEqual(['conv2d', 'conv2d']);
    expect(out).not.toMatch(/= (reshape|transpose)\(/);
    // The depthwise conv now reads the group conv's output directly: output channel c = a * 2 + b of the
    // shuffle is input channel b * 3 + a, i.e. (c % 2) * 3 + c // 2.
    expect(lineMatching(out, /%4 = fused\(reshape > transpose > reshape > conv2d\)\(%1, %3\)/)).toContain('{stride: 1, padding: 1, groups: 6} : f32[2, 6, 5, 5]');
    const body = out.split('\n')[out.split('\n').findIndex((l) => l.includes('%4 = fused')) + 1]!;
    expect(body).toContain('%3[i0, (((i1 % 2) * 3) + (i1 // 2)), ((i2 + r');
    expect(record).toMatchObject({ inlinedReads: 3, removedKernels: { reshape: 2, transpose: 1 } });
    expect(after.nodes.filter((n) => n.expr).every((n) => !isIndexRemapping(n.expr!))).toBe(true);

    expectEquivalent(before, after, feedsFor(before, 1));
  });

  it('keeps an index remapping that is a graph output, and inlines a shared shuffle into every reader', () => {
    const before = trace({ params: {}, inputs: { x: [1, 6, 2, 2] } }, (_p, { x }) => {
      const s = channelShuffle(x!, 2);
      const t = channelShuffle(ops.neg(x!), 3);
      return { shuffled: s, a: ops.relu(s), b: ops.exp(t), c: ops.scale(t, 2) };
    });
    show('before', before, false);
    const { graph: after, record } = fuseIndexRemapping(before);
    const text = show('after', after, false);
    // `shuffled` is an output, so it stays a kernel (its reshape > transpose > reshape in one) and relu reads it;
    // the shuffle `t` is inlined into both of its readers.
    expect(opsOf(after)).toEqual(['reshape', 'neg', 'relu', 'exp', 'affine']);
    expect(lineMatching(text, /%1 = fused\(reshape > transpose > reshape\)\(%0\)/)).toContain('f32[1, 6, 2, 2]');
    expect(lineMatching(text, /%3 = relu\(%1\)/)).toBeDefined();
    expect(lineMatching(text, /= fused\(reshape > transpose > reshape > exp\)\(%2\)/)).toBeDefined();
    expect(lineMatching(text, /= fused\(reshape > transpose > reshape > affine\)\(%2\)/)).toBeDefined();
    expect(record.removedKernels).toEqual({ reshape: 3, transpose: 2 });
    expectEquivalent(before, after, feedsFor(before, 2));
  });

  it('classifies expressions: reads, constants and guarded choices are remappings; arithmetic is not', () => {
    const g = trace({ params: {}, inputs: { x: [2, 3, 4, 4], v: [3] } }, (_p, { x, v }) => ({
      a: ops.transpose(x!, [0, 2, 3, 1]),
      b: ops.pad(x!, 2, 1, 1),
      c: ops.concat([x!, x!], 1),
      d: ops.slice(x!, 3, 1, 2),
      e: ops.broadcastTo(ops.reshape(v!, [3, 1, 1]), [2, 3, 4, 4]),
      f: ops.relu(x!),
      g: ops.conv2d(x!, ops.reshape(v!, [1, 3, 1, 1])),
      h: ops.scale(x!, 2),
    }));
    const kind = (name: string) => isIndexRemapping(g.output(name).expr!);
    expect(['a', 'b', 'c', 'd', 'e'].map(kind)).toEqual([true, true, true, true, true]);
    expect(['f', 'g', 'h'].map(kind)).toEqual([false, false, false]);
    // A select whose condition reads data is a computation, not a remapping.
    const x = new Placeholder(0, [3]);
    expect(isIndexRemapping(compute([3], (i) => select(x.at(i).gt(0), x.at(i), 0)).body)).toBe(false);
    expect(isIndexRemapping(compute([3], (i) => select(i.lt(1), x.at(i.add(1)), 0)).body)).toBe(true);
  });
});

// Random chains of index-remapping ops between two computations, on drawn shapes.
type Step =
  | { op: 'shuffle'; g: number }
  | { op: 'transpose'; keys: number[] }
  | { op: 'pad'; axis: number; before: number; after: number }
  | { op: 'slice'; axis: number; start: number; size: number }
  | { op: 'concat'; axis: number }
  | { op: 'flatten' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('shuffle' as const), g: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('transpose' as const), keys: fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 4, maxLength: 4 }) }),
  fc.record({ op: fc.constant('pad' as const), axis: fc.integer({ min: 0, max: 3 }), before: fc.integer({ min: 0, max: 2 }), after: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ op: fc.constant('slice' as const), axis: fc.integer({ min: 0, max: 3 }), start: fc.integer({ min: 0, max: 3 }), size: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('concat' as const), axis: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ op: fc.constant('flatten' as const) }),
);

function applyStep(t: Tensor, s: Step): Tensor {
  const shape = t.shape;
  switch (s.op) {
    case 'shuffle': {
      const g = shape[1]! % s.g === 0 ? s.g : 1;
      return g > 1 ? channelShuffle(t, g) : t;
    }
    case 'transpose': return ops.transpose(t, [0, 1, 2, 3].sort((a, b) => s.keys[a]! - s.keys[b]! || a - b));
    case 'pad': return ops.pad(t, s.axis, s.before, s.after);
    case 'slice': {
      const n = shape[s.axis]!;
      const start = Math.min(s.start, n - 1);
      return ops.slice(t, s.axis, start, Math.min(s.size, n - start));
    }
    case 'concat': return ops.concat([t, ops.neg(t)], s.axis);
    // Flatten H and W and split them back: two reshapes that cancel.
    case 'flatten': return ops.reshape(ops.reshape(t, [shape[0]!, shape[1]!, shape[2]! * shape[3]!]), [...shape]);
  }
}

const chainArb = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.constantFrom(2, 3, 4, 6), H: fc.integer({ min: 1, max: 4 }), W: fc.integer({ min: 1, max: 4 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 4 }), reduce: fc.boolean(), seed: fc.integer({ min: 1, max: 1_000_000 }),
});

describe('shuffle fusion preserves values (fast-check)', () => {
  it('random chains of reshape / transpose / shuffle / pad / slice / concat between computations', () => {
    property(chainArb, (c) => {
      const before = trace({ params: {}, inputs: { x: [c.N, c.C, c.H, c.W] } }, (_p, { x }) => {
        let t = ops.relu(x!);
        for (const s of c.steps) t = applyStep(t, s);
        // The chain is read elementwise, or inside a reduction (a sum over two axes).
        return c.reduce ? ops.sum(t, [1, 3]) : ops.exp(ops.scale(t, 0.5));
      });
      const { graph: after } = fuseIndexRemapping(before);
      const left = after.nodes.filter((n) => n.expr && REMAP_OPS.includes(n.op));
      if (left.length) return `index-remapping kernels remain: ${left.map((n) => n.op).join(', ')}`;
      if (after.nodes.some((n) => n.expr && isIndexRemapping(n.expr))) return 'a kernel that only moves data remains';
      return equivalence(before, after, feedsFor(before, c.seed));
    }, 25, 101);
  });

  it('ShuffleNet units (inference): no reshape, transpose or concat kernel remains', () => {
    property(unitArb, (u) => {
      const before = unitInferGraph(u);
      const { graph: after, record } = fuseIndexRemapping(before);
      const left = after.nodes.filter((n) => n.expr && REMAP_OPS.includes(n.op));
      if (left.length) return `index-remapping kernels remain: ${left.map((n) => n.op).join(', ')}`;
      if (u.groups > 1 && !(record.removedKernels.transpose === 1)) return `expected the shuffle's transpose removed: ${JSON.stringify(record)}`;
      return equivalence(before, after, feedsFor(before, u.seed));
    }, 15, 102);
  });
});
