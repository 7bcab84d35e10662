// The IR itself: tracing records typed nodes with source locations, the printer is readable, the verifier
// rejects ill-formed graphs naming the node, and shape errors are caught while tracing.
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import { Graph } from '../src/ir/graph';
import { printGraph } from '../src/ir/print';
import { verify } from '../src/ir/verify';
import { simplify } from '../src/ir/simplify';
import { exprToString } from '../src/ir/expr';
import { compute } from '../src/ir/te';
import * as ops from '../src/ir/ops';
import { OpError } from '../src/ir/errors';

const shuffleGraph = () => trace({ params: {}, inputs: { x: [2, 6, 4, 4] } }, (_p, { x }) =>
  ops.reshape(ops.transpose(ops.reshape(x!, [2, 3, 2, 4, 4]), [0, 2, 1, 3, 4]), [2, 6, 4, 4]));

describe('tracing and printing', () => {
  it('records typed nodes that point at this file', () => {
    const g = shuffleGraph();
    expect(g.nodes.map((n) => n.op)).toEqual(['input', 'reshape', 'transpose', 'reshape']);
    expect(g.nodes[2]!.shape).toEqual([2, 2, 3, 4, 4]);
    expect(g.nodes[1]!.loc?.file).toMatch(/ir\.test\.ts$/);
    expect(g.nodes[1]!.loc?.line).toBe(15);
  });

  it('prints one readable line per node, with expressions on request', () => {
    const text = printGraph(shuffleGraph(), { exprs: true });
    expect(text).toContain('%2 = transpose(%1) {perm: [0, 2, 1, 3, 4]} : f32[2, 2, 3, 4, 4]');
    expect(text).toMatch(/%1 = reshape\(%0\) \{shape: \[2, 3, 2, 4, 4\]\} : f32\[2, 3, 2, 4, 4\]  # test\/ir\.test\.ts:15:\d+/);
    // The split channel axis reads c = i1 * 2 + i2: reshape only regroups the axes it changes.
    expect(text).toContain('= %0[i0, ((i1 * 2) + i2), i3, i4]');
    expect(text).toContain('output out = %3');
  });
});

describe('verifier', () => {
  it('accepts traced graphs', () => {
    expect(() => verify(shuffleGraph())).not.toThrow();
  });

  it('rejects a read with the wrong number of indices, naming the node', () => {
    const g = shuffleGraph();
    const bad = new Graph();
    g.nodes.forEach((n) => bad.add(n));
    bad.add({ op: 'broken', attrs: {}, inputs: [0], shape: [2], expr: { k: 'read', input: 0, index: [{ k: 'axis', i: 0 }] } });
    expect(() => verify(bad)).toThrow(/%4 broken \(<unknown>\): read of %0 with 1 indices, rank is 4/);
  });

  it('rejects unbound reduction variables, bad inputs and duplicate source names', () => {
    const g = new Graph();
    g.add({ op: 'input', attrs: {}, inputs: [], shape: [3], name: 'x' });
    g.add({ op: 'f', attrs: {}, inputs: [0], shape: [3], expr: { k: 'read', input: 0, index: [{ k: 'rvar', id: 99 }] } });
    expect(() => verify(g)).toThrow(/%1 f .*unbound reduction variable r99/);
    const h = new Graph();
    h.add({ op: 'input', attrs: {}, inputs: [], shape: [3], name: 'x' });
    h.add({ op: 'input', attrs: {}, inputs: [], shape: [3], name: 'x' });
    expect(() => verify(h)).toThrow(/%1 input .*duplicate source name x/);
    const k = new Graph();
    k.add({ op: 'f', attrs: {}, inputs: [5], shape: [3], expr: { k: 'const', v: 0 } });
    expect(() => verify(k)).toThrow(/%0 f .*input %5 is not an earlier node/);
  });
});

describe('shape errors while tracing', () => {
  const expectOpError = (f: () => unknown, re: RegExp) => {
    let err: unknown;
    try { f(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OpError);
    expect((err as Error).message).toMatch(re);
  };
  it('channel mismatch, bad groups, negative sizes, oversized kernels', () => {
    trace({ params: {}, inputs: { x: [1, 4, 5, 5], w: [8, 3, 3, 3], v: [8, 2, 7, 7], u: [6, 1, 3, 3] } }, (_p, t) => {
      expectOpError(() => ops.conv2d(t.x!, t.w!), /conv2d at test\/ir\.test\.ts:\d+:\d+: channel mismatch: input has 4 channels, so with groups=1 the weight needs 4 input channels, but it has 3/);
      expectOpError(() => ops.conv2d(t.x!, t.w!, { groups: 3 }), /groups=3 does not divide the 4 input channels/);
      expectOpError(() => ops.conv2d(t.x!, t.u!, { groups: 4 }), /groups=4 does not divide the 6 output channels/);
      expectOpError(() => ops.conv2d(t.x!, t.v!, { groups: 2 }), /kernel 7x7 is larger than the padded input 5x5/);
      expectOpError(() => ops.conv2d(t.x!, t.w!, { padding: -1 }), /padding must be a non-negative integer, got -1/);
      expectOpError(() => ops.reshape(t.x!, [3, -1]), /cannot reshape \[1, 4, 5, 5\] to \[3, -1\]/);
      expectOpError(() => ops.add(t.x!, t.w!), /shapes \[1, 4, 5, 5\] and \[8, 3, 3, 3\] do not broadcast/);
      return t.x!;
    });
  });
});

describe('simplify', () => {
  it('removes bounds checks that always hold and mods of small values', () => {
    const te = compute([4, 3], (i, j) => i.mul(3).add(j).mod(12).add(j.mod(3)).mul(i.ge(0).and(j.lt(3))));
    expect(exprToString(simplify(te.body, [4, 3]))).toBe('(((i0 * 3) + i1) + i1)');
  });
});
