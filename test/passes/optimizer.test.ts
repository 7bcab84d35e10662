// The optimizer as IR: one step of momentum SGD with weight decay (m' = 0.9 m + g + 4e-5 p for conv and dense
// weights, m' = 0.9 m + g for the rest; p' = p - lr m') appended to the backward graph. The IR step equals a
// hand-written JavaScript update that uses the gradients of the float64 reference, and the fused training step
// compiled for gpu.js cpu equals the reference of the unfused one.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import { sizeOf, type Graph } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { evaluateOutputs } from '../../src/ir/reference';
import { gradients } from '../../src/passes/autodiff';
import { momentumSgd, momentumName, SEED_MOMENTUM, type MomentumOptions } from '../../src/passes/optimizer';
import { passesFor, runPasses } from '../../src/passes/pipeline';
import { relL2 } from '../helpers';
import { feedsFor, gradientEquivalence, lineMatching, property, show, unitArb, unitTrainGraph } from './common';

/** The update by hand, from the reference gradients: returns p' and m' by parameter name. */
function handWrittenStep(g: Graph, feeds: Record<string, Float32Array>, opts: MomentumOptions) {
  const grads = evaluateOutputs(gradients(g).graph, feeds);
  const lr = feeds.lr![0]!;
  const out: Record<string, { p: Float64Array; m: Float64Array }> = {};
  for (const param of g.sources('param')) {
    const name = param.name!;
    const p = feeds[name]!;
    const m = feeds[momentumName(name)]!;
    const gr = grads[`grad:${name}`]!;
    const decay = param.shape.length > 1 ? opts.weightDecay : 0;
    const m2 = new Float64Array(p.length);
    const p2 = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      m2[i] = opts.momentum * m[i]! + gr[i]! + decay * p[i]!;
      p2[i] = p[i]! - lr * m2[i]!;
    }
    out[name] = { p: p2, m: m2 };
  }
  return out;
}

/** Feeds for a training step: the forward graph's, plus random momentum buffers and a learning rate. */
function stepFeeds(step: Graph, seed: number): Record<string, Float32Array> {
  return feedsFor(step, seed, 3);
}

function compareStep(g: Graph, opts: MomentumOptions, seed: number): string | null {
  const step = momentumSgd(gradients(g).graph, opts).graph;
  const feeds = stepFeeds(step, seed);
  const ir = evaluateOutputs(step, feeds);
  const want = handWrittenStep(g, feeds, opts);
  for (const [name, { p, m }] of Object.entries(want)) {
    const ep = relL2(p, ir[`update:${name}`]!);
    const em = relL2(m, ir[`update:${momentumName(name)}`]!);
    if (!(ep < 1e-12 && em < 1e-12)) return `${name}: relative L2 ${ep.toExponential(2)} (param), ${em.toExponential(2)} (momentum)`;
  }
  return null;
}

describe('momentum SGD on a printed example', () => {
  const build = () => trace({ params: { w: { shape: [2, 3], role: 'param' }, b: { shape: [2], role: 'param' } }, inputs: { x: [3] } },
    (p, { x }) => ({ loss: ops.sum(ops.mul(ops.add(ops.matmul(p.w!, ops.reshape(x!, [3, 1])), ops.reshape(p.b!, [2, 1])), ops.reshape(p.b!, [2, 1])), [0, 1]) }));

  it('adds lr and momentum sources, and update outputs in place of the gradients', () => {
    const withGrads = gradients(build()).graph;
    const before = show('forward + backward', withGrads, false);
    lineMatching(before, /^ {2}grad grad:w = %\d+$/);
    lineMatching(before, /^ {2}grad grad:b = %\d+$/);
    const { graph: after, record } = momentumSgd(withGrads);
    const text = show('with momentum SGD', after, false);
    expect(record).toEqual({ params: 2 });
    expect(text).not.toMatch(/^ {2}grad /m);
    const n = withGrads.nodes.length;
    lineMatching(text, new RegExp(`^ {2}%${n} = input lr : f32\\[\\]`));
    lineMatching(text, new RegExp(`^ {2}%${n + 1} = state momentum\\.w : f32\\[2, 3\\]`));
    // Weight decay on the rank-2 weight only: w gets affine(w) {scale: 0.00004}; b does not.
    lineMatching(text, /= affine\(%0\) \{scale: 0.00004, shift: 0\} : f32\[2, 3\]/);
    expect(text).not.toMatch(/= affine\(%1\) \{scale: 0.00004/);
    lineMatching(text, new RegExp(`= affine\\(%${n + 1}\\) \\{scale: 0.9, shift: 0\\} : f32\\[2, 3\\]`));
    lineMatching(text, /^ {2}update update:w = %\d+$/);
    lineMatching(text, /^ {2}update update:momentum\.w = %\d+$/);
    lineMatching(text, /^ {2}update update:b = %\d+$/);
    lineMatching(text, /^ {2}update update:momentum\.b = %\d+$/);
    lineMatching(text, /^ {2}output loss = %\d+$/);
    expect(after.nodes.slice(n).every((x) => x.phase === 'optimizer')).toBe(true);
    expect(after.nodes.slice(0, n).map((x) => x.phase)).toEqual(withGrads.nodes.map((x) => x.phase));

    // By hand: loss = sum((w x + b) * b), so dL/dw[i, j] = b[i] x[j] and dL/db = w x + 2 b.
    const feeds = { w: [1, 2, 3, 4, 5, 6], b: [0.5, -1], x: [1, 0, -2], lr: [0.1], 'momentum.w': [1, 1, 1, 1, 1, 1], 'momentum.b': [2, -2] };
    const res = evaluateOutputs(after, feeds);
    const gw = [0.5, 0, -1, -1, 0, 2];
    const mw = gw.map((g, i) => 0.9 + g + 4e-5 * feeds.w[i]!);
    const gb = [1 - 6 + 1, 4 - 12 - 2];
    const mb = gb.map((g, i) => 0.9 * feeds['momentum.b'][i]! + g);
    mw.forEach((m, i) => expect(res['update:momentum.w']![i]).toBeCloseTo(m, 12));
    mw.forEach((m, i) => expect(res['update:w']![i]).toBeCloseTo(feeds.w[i]! - 0.1 * m, 12));
    mb.forEach((m, i) => expect(res['update:momentum.b']![i]).toBeCloseTo(m, 12));
    mb.forEach((m, i) => expect(res['update:b']![i]).toBeCloseTo(feeds.b[i]! - 0.1 * m, 12));
  });

  it('state outputs (BN running statistics) and forward outputs pass through unchanged', () => {
    const u = { N: 2, groups: 2, inPerGroup: 1, midPerGroup: 1, branchPerGroup: 1, stride: 1 as const, H: 3, W: 3, firstGroup: false, seed: 3 };
    const g = gradients(unitTrainGraph(u)).graph;
    const step = momentumSgd(g).graph;
    const keep = (gr: Graph) => gr.outputs.filter((o) => o.kind === 'state' || o.kind === 'output').map((o) => `${o.kind}:${o.name}=%${o.node}`);
    expect(keep(step)).toEqual(keep(g));
    expect(step.outputs.filter((o) => o.kind === 'update')).toHaveLength(2 * g.sources('param').length);
    // Momentum buffers are state sources named after their parameter, shaped like it.
    for (const p of g.sources('param')) expect(step.sources('state').find((s) => s.name === momentumName(p.name!))!.shape).toEqual(p.shape);
  });
});

describe('one momentum SGD step equals the hand-written update (fast-check)', () => {
  it('ShuffleNet units in training mode, seed hyperparameters (momentum 0.9, weight decay 4e-5)', () => {
    property(fc.record({ u: unitArb, head: fc.boolean() }).filter(({ u }) => u.N * u.H * u.W > 4), ({ u, head }) =>
      compareStep(unitTrainGraph(u, { head }), SEED_MOMENTUM, u.seed), 10, 501);
  });

  it('other hyperparameters: momentum 0.5 without weight decay, momentum 0 with decay 0.1', () => {
    const u = { N: 2, groups: 3, inPerGroup: 1, midPerGroup: 1, branchPerGroup: 2, stride: 2 as const, H: 4, W: 4, firstGroup: true, seed: 8 };
    expect(compareStep(unitTrainGraph(u, { head: true }), { momentum: 0.5, weightDecay: 0 }, 8)).toBeNull();
    expect(compareStep(unitTrainGraph(u, { head: true }), { momentum: 0, weightDecay: 0.1 }, 9)).toBeNull();
    const step = momentumSgd(gradients(unitTrainGraph(u)).graph, { momentum: 0.5, weightDecay: 0 }).graph;
    expect(step.nodes.some((n) => n.op === 'affine' && n.attrs.scale === 0.5)).toBe(true);
    expect(step.nodes.some((n) => n.op === 'affine' && n.phase === 'optimizer' && n.attrs.scale !== 0.5)).toBe(false);
  });

  it('the fused training step (train pipeline) on gpu.js cpu equals the reference of the unfused step', () => {
    property(fc.record({ u: unitArb, head: fc.boolean() }).filter(({ u }) => u.N * u.H * u.W > 4), ({ u, head }) => {
      const traced = unitTrainGraph(u, { head });
      const unfused = momentumSgd(gradients(traced).graph).graph;
      const program = runPasses(traced, passesFor('train'));
      // The gradients are no longer outputs, so fusion keeps them out of memory: each gradient is computed inside
      // the kernel of its momentum update (conv2d_grad_weight > ... > add).
      const grads = gradients(traced).graph;
      for (const p of traced.sources('param')) {
        const gradOp = grads.output(p.name!, 'grad').op;
        const fused = program.graph.output(momentumName(p.name!), 'update').fused ?? [];
        if (!fused.includes(gradOp) || fused[fused.length - 1] !== 'add') return `${p.name}: update kernel ${fused.join(' > ')} does not compute its ${gradOp} gradient`;
      }
      const feeds = stepFeeds(unfused, u.seed);
      expect(Object.keys(feeds)).toContain('lr');
      expect(sizeOf(unfused.sources('input').find((n) => n.name === 'lr')!.shape)).toBe(1);
      return gradientEquivalence(unfused, program.graph, feeds);
    }, 8, 502);
  });
});
