// The inliner every fusion pass is built on: substituting a producer's expression into its consumer's reads
// (inputs merged, reduction variables renamed apart, index arithmetic tidied), and dead-code elimination. Any set
// of inlining decisions, even ones no fusion pass would make (into reductions, into several readers), preserves
// the graph's values in the reference and on gpu.js cpu.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import { Graph, isSource, type Tensor } from '../../src/ir/graph';
import { visitExpr } from '../../src/ir/expr';
import * as ops from '../../src/ir/ops';
import { countReads, deadCodeElimination, inlineInput, inlineWhere, readsInsideReduce, readsOnlyUnderSelect } from '../../src/passes/inline';
import { equivalence, expectEquivalent, feedsFor, lineMatching, opsOf, property, show, unitArb, unitInferGraph } from './common';

describe('the inliner on printed examples', () => {
  it('substitutes the producer at the read index and merges the producer inputs into the consumer', () => {
    const before = trace({ params: {}, inputs: { x: [2, 3], y: [3] } }, (_p, { x, y }) =>
      ops.sum(ops.mul(ops.exp(ops.transpose(x!, [1, 0])), ops.reshape(y!, [3, 1])), [1]));
    const text = show('before inlining', before);
    lineMatching(text, /%2 = transpose\(%0\) \{perm: \[1, 0\]\} : f32\[3, 2\]/);
    const { graph: after, inlined } = inlineWhere(before, (_g, producer) => producer.op !== 'mul');
    const out = show('after inlining every producer except the mul', after);
    expect(inlined).toBe(3);
    expect(opsOf(after)).toEqual(['mul', 'sum']);
    // exp(transpose(x)) at [i0, i1] is exp(x[i1, i0]); reshape(y) at [i0, i1] is y[i0] (i1 < 1 simplified away).
    lineMatching(out, /%2 = fused\(reshape > transpose > exp > mul\)\(%0, %1\) : f32\[3, 2\]/);
    expect(out).toContain('      = (exp(%0[i1, i0]) * %1[i0])');
    expectEquivalent(before, after, feedsFor(before, 1));
  });

  it('inlining a reduction into two reads gives each copy its own reduction variables', () => {
    const before = trace({ params: {}, inputs: { x: [3, 4] } }, (_p, { x }) => {
      const s = ops.sum(x!, [1]);
      return ops.mul(s, ops.exp(s));
    });
    const { graph: once } = inlineWhere(before, (_g, producer) => producer.op === 'exp');
    const consumer = once.nodes[once.nodes.length - 1]!;
    expect(countReads(consumer.expr!, consumer.inputs.indexOf(once.nodes.find((n) => n.op === 'sum')!.id))).toBe(2);
    const { graph: after } = inlineWhere(once, () => true);
    const text = show('a sum inlined twice', after);
    const vars: number[] = [];
    visitExpr(after.nodes[after.nodes.length - 1]!.expr!, (e) => { if (e.k === 'reduce') vars.push(...e.vars.map((v) => v.id)); });
    expect(vars).toHaveLength(2);
    expect(new Set(vars).size).toBe(2);
    lineMatching(text, /= \(sum\[r(\d+)<4\]\(%0\[i0, r\1\]\) \* exp\(sum\[r(?!\1)\d+<4\]/);
    expectEquivalent(before, after, feedsFor(before, 2));
  });

  it('inlineInput: a producer input the consumer already reads keeps one slot', () => {
    const g = trace({ params: {}, inputs: { x: [4], y: [4] } }, (_p, { x, y }) => ops.add(x!, ops.mul(y!, x!)));
    const consumer = g.nodes[g.nodes.length - 1]!; // add(x, mul)
    const { inputs, expr } = inlineInput(g, consumer, 1);
    expect(inputs).toEqual([0, 1]); // x, then y from the producer; x is not added twice
    const reads: number[] = [];
    visitExpr(expr, (e) => { if (e.k === 'read') reads.push(e.input); });
    expect(reads.sort()).toEqual([0, 0, 1]);
  });

  it('dead-code elimination keeps sources and outputs and renumbers in order', () => {
    const g = trace({ params: { unused: { shape: [2], role: 'param' } }, inputs: { x: [2] } }, (_p, { x }) => {
      ops.exp(x!); // dead
      const y = ops.neg(x!);
      ops.relu(y); // dead
      return ops.scale(y, 2);
    });
    const out = deadCodeElimination(g);
    const text = show('after DCE', out, false);
    expect(out.nodes.map((n) => n.op)).toEqual(['param', 'input', 'neg', 'affine']);
    lineMatching(text, /%3 = affine\(%2\)/);
    lineMatching(text, /output out = %3/);
    expectEquivalent(g, out, feedsFor(g, 3));
  });

  it('read classification: inside a reduction, only under a select, read counts', () => {
    const g = trace({ params: {}, inputs: { x: [1, 2, 3, 3], w: [2, 2, 1, 1] } }, (_p, { x, w }) => ({
      conv: ops.conv2d(x!, w!),
      cat: ops.concat([x!, ops.neg(x!)], 1),
      sq: ops.mul(x!, x!),
    }));
    const conv = g.output('conv');
    const cat = g.output('cat');
    const sq = g.output('sq');
    expect(readsInsideReduce(conv.expr!, 0)).toBe(true);
    expect(readsOnlyUnderSelect(cat.expr!, 0)).toBe(true);
    expect(readsOnlyUnderSelect(cat.expr!, 1)).toBe(true);
    expect(readsOnlyUnderSelect(sq.expr!, 0)).toBe(false);
    // mul(x, x) reads x through two input slots, once each (so x has two users).
    expect(sq.inputs).toEqual([sq.inputs[0], sq.inputs[0]]);
    expect([countReads(sq.expr!, 0), countReads(sq.expr!, 1)]).toEqual([1, 1]);
    expect(readsInsideReduce(sq.expr!, 0)).toBe(false);
  });
});

/** A deterministic pseudo-random policy: inline producer p into consumer c when hash(p, c, seed) says so. */
const coinPolicy = (seed: number, p: number) => (_g: Graph, producer: { id: number }, consumer: { id: number }) => {
  let h = (seed * 2654435761) ^ (producer.id * 40503) ^ (consumer.id * 97);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h ^= h >>> 12;
  return ((h >>> 0) % 1000) / 1000 < p;
};

const dagArb = fc.record({
  steps: fc.array(fc.record({ op: fc.integer({ min: 0, max: 6 }), a: fc.nat(), b: fc.nat() }), { minLength: 2, maxLength: 10 }),
  p: fc.constantFrom(0.3, 0.7, 1),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

function buildDag(steps: readonly { op: number; a: number; b: number }[]): Graph {
  return trace({ params: {}, inputs: { x: [2, 3, 3, 3], w: [3, 1, 3, 3] } }, (_p, { x, w }) => {
    const vals: Tensor[] = [x!];
    for (const s of steps) {
      const a = vals[s.a % vals.length]!;
      const b = vals[s.b % vals.length]!;
      switch (s.op) {
        case 0: vals.push(ops.relu(a)); break;
        case 1: vals.push(ops.add(a, b)); break;
        case 2: vals.push(ops.conv2d(a, w!, { padding: 1, groups: 3 })); break; // depthwise: reads a inside a reduction
        case 3: vals.push(ops.broadcastTo(ops.mean(a, [0, 2, 3], true), [2, 3, 3, 3])); break;
        case 4: vals.push(ops.slice(ops.pad(a, 2, 1, 0), 2, 0, 3)); break;
        case 5: vals.push(ops.mul(a, a)); break;
        default: vals.push(ops.maxPool2d(a, { kernel: 3, stride: 1, padding: 1 })); break;
      }
    }
    return { out: vals[vals.length - 1]!, mid: vals[Math.floor(vals.length / 2)]! };
  });
}

describe('any inlining preserves values (fast-check)', () => {
  it('random DAGs with reductions, broadcasts and pads, random inlining decisions', () => {
    property(dagArb, ({ steps, p, seed }) => {
      const before = buildDag(steps);
      const { graph: after } = inlineWhere(before, coinPolicy(seed, p));
      // Outputs and sources are never inlined away.
      if (after.outputs.length !== before.outputs.length) return 'outputs changed';
      if (after.nodes.filter(isSource).length !== before.nodes.filter(isSource).length) return 'sources changed';
      return equivalence(before, after, feedsFor(before, seed));
    }, 30, 801);
  });

  it('ShuffleNet units, random inlining decisions', () => {
    property(fc.record({ u: unitArb.filter((u) => u.N * u.H * u.W <= 32), p: fc.constantFrom(0.3, 0.6) }), ({ u, p }) => {
      const before = unitInferGraph(u);
      const { graph: after } = inlineWhere(before, coinPolicy(u.seed, p));
      return equivalence(before, after, feedsFor(before, u.seed));
    }, 12, 802);
  });
});
