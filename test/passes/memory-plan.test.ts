// Memory planning: every kernel output gets a buffer, and buffers are reused once their value is dead. Checked
// against liveness computed here independently (two simultaneously live values never share a buffer, outputs are
// never reused), by running graphs out of the planned buffers (a clobbered value would change the outputs), and
// on the compiled ShuffleNet programs.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import { isSource, outputKey, sizeOf, type Graph, type Tensor } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { evaluateNode, evaluateOutputs } from '../../src/ir/reference';
import { planMemory, type MemoryPlan } from '../../src/passes/memory-plan';
import { passesFor, runPasses } from '../../src/passes/pipeline';
import { buildGraph } from '../../src/frontend/build';
import { shufflenet } from '../../src/models/shufflenet';
import { feedsFor, lineMatching, property, unitArb, unitInferGraph, unitTrainGraph } from './common';
import { printGraph } from '../../src/ir/print';

/** The printed graph with each kernel's buffer appended, as the execution plan lays it out. */
function showPlan(title: string, g: Graph, plan: MemoryPlan): string {
  const lines = printGraph(g).split('\n').map((l) => {
    const m = /^ {2}%(\d+) = /.exec(l);
    if (!m || plan.bufferOf[Number(m[1])] === undefined) return l;
    const b = plan.bufferOf[Number(m[1])]!;
    return `${l.replace(/ {2}#.*$/, '')}  -> buffer ${b} (${plan.bufferBytes[b]} bytes)`;
  });
  const text = `${lines.join('\n')}\npeak ${plan.peakBytes} bytes, one buffer per intermediate ${plan.naiveBytes} bytes, sources ${plan.sourceBytes} bytes`;
  console.log(`--- ${title}\n${text}`);
  return text;
}

/**
 * Independent checks of a plan: liveness intervals [definition, last reader] (outputs: to the end) of values that
 * share a buffer never overlap, buffers are big enough, outputs are never reused, and the byte totals add up.
 */
function checkPlan(g: Graph, plan: MemoryPlan): string | null {
  const BYTES = 4;
  const last = new Map<number, number>();
  for (const n of g.nodes) last.set(n.id, n.id);
  for (const n of g.nodes) for (const i of n.inputs) last.set(i, Math.max(last.get(i)!, n.id));
  for (const o of g.outputs) last.set(o.node, Infinity);
  const byBuffer = new Map<number, number[]>();
  let naive = 0;
  let sources = 0;
  for (const n of g.nodes) {
    const bytes = sizeOf(n.shape) * BYTES;
    const b = plan.bufferOf[n.id];
    if (isSource(n)) {
      sources += bytes;
      if (b !== undefined) return `source %${n.id} has buffer ${b}`;
      continue;
    }
    naive += bytes;
    if (b === undefined) return `kernel %${n.id} has no buffer`;
    if (!(plan.bufferBytes[b]! >= bytes)) return `%${n.id} needs ${bytes} bytes, buffer ${b} has ${plan.bufferBytes[b]}`;
    byBuffer.set(b, [...(byBuffer.get(b) ?? []), n.id]);
  }
  for (const [b, ids] of byBuffer) {
    for (let k = 1; k < ids.length; k++) {
      const [a, c] = [ids[k - 1]!, ids[k]!];
      // c writes its buffer while it runs, so a's last reader must have run before c: last(a) < c.
      if (!(last.get(a)! < c)) return `buffer ${b}: %${c} overwrites %${a}, which is live until ${last.get(a) === Infinity ? 'the end (an output)' : `%${last.get(a)}`}`;
    }
  }
  const outputBuffers = new Set(g.outputs.filter((o) => !isSource(g.node(o.node))).map((o) => plan.bufferOf[o.node]!));
  for (const b of outputBuffers) {
    const ids = byBuffer.get(b)!;
    const outs = ids.filter((id) => g.outputs.some((o) => o.node === id));
    if (outs.length !== 1 || ids[ids.length - 1] !== outs[0]) return `buffer ${b} of output %${outs[0]} is reused by %${ids[ids.length - 1]}`;
  }
  if (plan.naiveBytes !== naive) return `naiveBytes ${plan.naiveBytes}, expected ${naive}`;
  if (plan.sourceBytes !== sources) return `sourceBytes ${plan.sourceBytes}, expected ${sources}`;
  if (plan.peakBytes !== plan.bufferBytes.reduce((a, x) => a + x, 0)) return 'peakBytes is not the sum of the buffers';
  if (!(plan.peakBytes <= plan.naiveBytes)) return `peak ${plan.peakBytes} > naive ${plan.naiveBytes}`;
  if (new Set(Object.values(plan.bufferOf)).size !== plan.bufferBytes.length) return 'a buffer is never used';
  return null;
}

/** Evaluate the graph in float64 with every kernel writing into its planned buffer; returns the outputs. */
function runInBuffers(g: Graph, plan: MemoryPlan, feeds: Readonly<Record<string, ArrayLike<number>>>): Record<string, Float64Array> {
  const buffers = plan.bufferBytes.map((b) => new Float64Array(b / 4).fill(NaN));
  const view = (id: number): Float64Array => {
    const n = g.node(id);
    return isSource(n) ? Float64Array.from(feeds[n.name!]!) : buffers[plan.bufferOf[id]!]!.subarray(0, sizeOf(n.shape));
  };
  for (const n of g.nodes) {
    if (isSource(n)) continue;
    const value = evaluateNode(n, n.inputs.map(view), n.inputs.map((i) => g.node(i).shape));
    buffers[plan.bufferOf[n.id]!]!.set(value);
  }
  return Object.fromEntries(g.outputs.map((o) => [outputKey(o), Float64Array.from(view(o.node))]));
}

function planAndRun(g: Graph, seed: number): string | null {
  const plan = planMemory(g);
  const bad = checkPlan(g, plan);
  if (bad) return bad;
  const feeds = feedsFor(g, seed, 3);
  const want = evaluateOutputs(g, feeds);
  const got = runInBuffers(g, plan, feeds);
  for (const [k, v] of Object.entries(want)) {
    if (!v.every((x, i) => Object.is(x, got[k]![i]))) return `running out of the planned buffers changes output ${k}`;
  }
  return null;
}

describe('memory plan on a printed example', () => {
  it('a chain ping-pongs between two buffers; a value read later keeps its buffer until then', () => {
    const g = trace({ params: {}, inputs: { x: [4, 8] } }, (_p, { x }) => {
      const a = ops.relu(x!);
      const b = ops.exp(a);
      const c = ops.neg(b);
      const d = ops.scale(c, 2);
      const e = ops.add(d, a); // a is read again here: it stays live across b, c and d
      return { out: ops.sum(e, [1]), mid: c };
    });
    const plan = planMemory(g);
    const text = showPlan('chain', g, plan);
    lineMatching(text, /%1 = relu\(%0\) : f32\[4, 8\]  -> buffer 0 \(128 bytes\)/);
    lineMatching(text, /%2 = exp\(%1\) : f32\[4, 8\]  -> buffer 1 \(128 bytes\)/);
    // c is an output: its buffer is never handed out again.
    lineMatching(text, /%3 = neg\(%2\) : f32\[4, 8\]  -> buffer 2 \(128 bytes\)/);
    // b died at c: d reuses its buffer.
    lineMatching(text, /%4 = affine\(%3\) \{scale: 2, shift: 0\} : f32\[4, 8\]  -> buffer 1 \(128 bytes\)/);
    // a and d both die at e, which needs a buffer while they are read: a new one.
    lineMatching(text, /%5 = add\(%4, %1\) : f32\[4, 8\]  -> buffer 3 \(128 bytes\)/);
    // The sum output (16 bytes) fits in a freed 128-byte buffer (best fit among 0 and 1).
    lineMatching(text, /%6 = sum\(%5\) \{axes: \[1\], keepdims: false\} : f32\[4\]  -> buffer [01] \(128 bytes\)/);
    lineMatching(text, /peak 512 bytes, one buffer per intermediate 656 bytes, sources 128 bytes/);
    expect(checkPlan(g, plan)).toBeNull();
    expect(planAndRun(g, 1)).toBeNull();
  });

  it('best fit: a small value takes the smallest free buffer that holds it', () => {
    const g = trace({ params: {}, inputs: { x: [64], y: [16] } }, (_p, { x, y }) => {
      const big = ops.relu(x!); // 256 bytes
      const small = ops.relu(y!); // 64 bytes
      const both = ops.concat([big, small], 0); // 320 bytes; big and small die here
      const e = ops.exp(y!); // 64 bytes: the 64-byte buffer, not the 256-byte one
      return { t: ops.add(ops.slice(both, 0, 0, 16), e) };
    });
    const plan = planMemory(g);
    const text = showPlan('best fit', g, plan);
    lineMatching(text, /%2 = relu\(%0\) : f32\[64\]  -> buffer 0 \(256 bytes\)/);
    lineMatching(text, /%3 = relu\(%1\) : f32\[16\]  -> buffer 1 \(64 bytes\)/);
    lineMatching(text, /%4 = concat\(%2, %3\) \{axis: 0\} : f32\[80\]  -> buffer 2 \(320 bytes\)/);
    lineMatching(text, /%5 = exp\(%1\) : f32\[16\]  -> buffer 1 \(64 bytes\)/);
    lineMatching(text, /%6 = slice\(%4\) \{axis: 0, start: 0, size: 16\} : f32\[16\]  -> buffer 0 \(256 bytes\)/);
    expect(checkPlan(g, plan)).toBeNull();
    expect(planAndRun(g, 2)).toBeNull();
  });
});

// Random DAGs: each step applies a unary, binary, reduction or concat op to earlier values; some values are outputs,
// some are read by nobody (dead: their buffers are never reused, which is safe).
const dagArb = fc.record({
  steps: fc.array(fc.record({ op: fc.integer({ min: 0, max: 5 }), a: fc.nat(), b: fc.nat(), out: fc.integer({ min: 0, max: 4 }) }), { minLength: 2, maxLength: 14 }),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

function buildDag(steps: readonly { op: number; a: number; b: number; out: number }[]): Graph {
  return trace({ params: {}, inputs: { x: [3, 4], y: [3, 4] } }, (_p, { x, y }) => {
    const vals: Tensor[] = [x!, y!];
    const outs: Record<string, Tensor> = {};
    steps.forEach((s, i) => {
      const a = vals[s.a % vals.length]!;
      const b = vals[s.b % vals.length]!;
      let t: Tensor;
      switch (s.op) {
        case 0: t = ops.relu(a); break;
        case 1: t = ops.neg(a); break;
        case 2: t = ops.add(a, b.rank === 2 && a.rank === 2 && a.shape[0] === b.shape[0] && a.shape[1] === b.shape[1] ? b : a); break;
        case 3: t = a.rank === 2 ? ops.sum(a, [1], true) : ops.scale(a, 0.5); break;
        case 4: t = a.rank === 2 ? ops.concat([a, a], 1) : ops.exp(a); break;
        default: t = a.rank === 2 && a.shape[1]! > 1 ? ops.slice(a, 1, 1, a.shape[1]! - 1) : ops.mul(a, a);
      }
      vals.push(t);
      if (s.out === 0) outs[`o${i}`] = t;
    });
    if (Object.keys(outs).length === 0) outs.last = vals[vals.length - 1]!;
    return outs;
  });
}

describe('memory plans are safe (fast-check)', () => {
  it('random DAGs: planned buffers never hold two live values, and running from them gives the outputs', () => {
    property(dagArb, ({ steps, seed }) => planAndRun(buildDag(steps), seed), 60, 601);
  });

  it('ShuffleNet units through the infer and train pipelines', () => {
    property(fc.record({ u: unitArb, train: fc.boolean() }), ({ u, train }) => {
      const traced = train ? unitTrainGraph(u, { head: true }) : unitInferGraph(u);
      const program = runPasses(traced, passesFor(train ? 'train' : 'infer'));
      // The pipeline's plan is the plan of its final graph.
      expect(program.plan).toEqual(planMemory(program.graph));
      return planAndRun(program.graph, u.seed);
    }, 12, 602);
  });

  it('compiled ShuffleNet 0.5x g3 (cifar stem): inference and training step', () => {
    const cfg = shufflenet.configure!({ size: '0.5x', group: 3 });
    for (const mode of ['infer', 'train'] as const) {
      const program = runPasses(buildGraph(shufflenet, cfg, { batch: 2, mode }), passesFor(mode));
      const { plan, graph } = program;
      expect(checkPlan(graph, plan)).toBeNull();
      console.log(`${mode}: ${graph.nodes.filter((n) => n.expr).length} kernels, ${plan.bufferBytes.length} buffers, peak ${(plan.peakBytes / 2 ** 20).toFixed(2)} MiB, naive ${(plan.naiveBytes / 2 ** 20).toFixed(2)} MiB`);
      // Reuse matters: the plan needs a fraction of one-buffer-per-intermediate.
      expect(plan.peakBytes).toBeLessThan(plan.naiveBytes / 2);
    }
  });
});
