// Memory planning: every kernel output gets a range of one arena, shared only by values that are never alive at
// once. Checked against liveness computed here independently (two simultaneously live values never share a byte,
// outputs are never overwritten), by running graphs out of the planned arena (a clobbered value would change the
// outputs), and on the compiled ShuffleNet programs.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../../src/ir/trace';
import { isSource, outputKey, sizeOf, type Graph, type Node, type Tensor } from '../../src/ir/graph';
import * as ops from '../../src/ir/ops';
import { evaluateNode, evaluateOutputs } from '../../src/ir/reference';
import { planMemory, type MemoryPlan } from '../../src/passes/memory-plan';
import { passesFor, runPasses } from '../../src/passes/pipeline';
import { buildGraph } from '../../src/frontend/build';
import { shufflenet } from '../../src/models/shufflenet';
import { feedsFor, lineMatching, property, unitArb, unitInferGraph, unitTrainGraph } from './common';
import { printGraph } from '../../src/ir/print';

/** The printed graph with each kernel's arena offset appended, as the execution plan lays it out. */
function showPlan(title: string, g: Graph, plan: MemoryPlan): string {
  const lines = printGraph(g).split('\n').map((l) => {
    const m = /^ {2}%(\d+) = /.exec(l);
    if (!m || plan.offsetOf[Number(m[1])] === undefined) return l;
    return `${l.replace(/ {2}#.*$/, '')}  -> at ${plan.offsetOf[Number(m[1])]}`;
  });
  const text = `${lines.join('\n')}\narena ${plan.peakBytes} bytes, most alive ${plan.liveBytes} bytes, one range per intermediate ${plan.naiveBytes} bytes, sources ${plan.sourceBytes} bytes`;
  console.log(`--- ${title}\n${text}`);
  return text;
}

/**
 * Independent checks of a plan: values whose liveness intervals [definition, last reader] (outputs: to the end)
 * overlap never share a byte, offsets are cache-line aligned and inside the arena, and the byte totals add up.
 */
function checkPlan(g: Graph, plan: MemoryPlan): string | null {
  // Every range starts on a 64-byte cache line (one AVX-512 vector).
  const aligned = (n: Node): number => Math.ceil((sizeOf(n.shape) * 4) / 64) * 64;
  const last = new Map<number, number>();
  for (const n of g.nodes) last.set(n.id, n.id);
  for (const n of g.nodes) for (const i of n.inputs) last.set(i, Math.max(last.get(i)!, n.id));
  for (const o of g.outputs) last.set(o.node, Infinity);
  const kernels = g.nodes.filter((n) => !isSource(n));
  for (const n of g.nodes) {
    const at = plan.offsetOf[n.id];
    if (isSource(n)) { if (at !== undefined) return `source %${n.id} is in the arena`; continue; }
    if (at === undefined) return `kernel %${n.id} has no place`;
    if (at % 64 !== 0) return `%${n.id} at ${at} is not 64-byte aligned`;
    if (at + sizeOf(n.shape) * 4 > plan.peakBytes) return `%${n.id} ends past the arena`;
  }
  for (const a of kernels) {
    for (const b of kernels) {
      if (b.id <= a.id || last.get(a.id)! < b.id) continue; // a is dead before b is written
      const [x, y] = [plan.offsetOf[a.id]!, plan.offsetOf[b.id]!];
      if (x < y + sizeOf(b.shape) * 4 && y < x + sizeOf(a.shape) * 4) return `%${b.id} overwrites %${a.id}, which is live until ${last.get(a.id) === Infinity ? 'the end (an output)' : `%${last.get(a.id)}`}`;
    }
  }
  const live = Math.max(0, ...kernels.map((k) => kernels.filter((n) => n.id <= k.id && k.id <= last.get(n.id)!).reduce((s, n) => s + aligned(n), 0)));
  if (plan.liveBytes !== live) return `liveBytes ${plan.liveBytes}, expected ${live}`;
  if (!(plan.peakBytes >= live)) return `arena ${plan.peakBytes} smaller than what is alive at once (${live})`;
  const naive = kernels.reduce((s, n) => s + aligned(n), 0);
  if (plan.naiveBytes !== naive) return `naiveBytes ${plan.naiveBytes}, expected ${naive}`;
  const sources = g.nodes.filter(isSource).reduce((s, n) => s + sizeOf(n.shape) * 4, 0);
  if (plan.sourceBytes !== sources) return `sourceBytes ${plan.sourceBytes}, expected ${sources}`;
  return null;
}

/** Evaluate the graph in float64 with every kernel writing into its planned place of one arena; returns the outputs. */
function runInBuffers(g: Graph, plan: MemoryPlan, feeds: Readonly<Record<string, ArrayLike<number>>>): Record<string, Float64Array> {
  const arena = new Float64Array(plan.peakBytes / 4).fill(NaN);
  const view = (id: number): Float64Array => {
    const n = g.node(id);
    return isSource(n) ? Float64Array.from(feeds[n.name!]!) : arena.subarray(plan.offsetOf[id]! / 4, plan.offsetOf[id]! / 4 + sizeOf(n.shape));
  };
  for (const n of g.nodes) {
    if (isSource(n)) continue;
    // Computed from the inputs first, then written: as a kernel whose output may not alias its inputs.
    const value = evaluateNode(n, n.inputs.map((i) => Float64Array.from(view(i))), n.inputs.map((i) => g.node(i).shape));
    view(n.id).set(value);
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
    if (!v.every((x, i) => Object.is(x, got[k]![i]))) return `running out of the planned arena changes output ${k}`;
  }
  return null;
}

describe('memory plan on a printed example', () => {
  it('largest first, each at the lowest offset free for its lifetime; a value read later keeps its bytes until then', () => {
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
    lineMatching(text, /%1 = relu\(%0\) : f32\[4, 8\]  -> at 0$/);
    lineMatching(text, /%2 = exp\(%1\) : f32\[4, 8\]  -> at 128$/);
    // c is an output: its bytes are never handed out again.
    lineMatching(text, /%3 = neg\(%2\) : f32\[4, 8\]  -> at 256$/);
    // b died at c: d takes its bytes.
    lineMatching(text, /%4 = affine\(%3\) \{scale: 2, shift: 0\} : f32\[4, 8\]  -> at 128$/);
    // a and d are both read by e, so e needs new bytes.
    lineMatching(text, /%5 = add\(%4, %1\) : f32\[4, 8\]  -> at 384$/);
    // The 16-byte sum fits where a was.
    lineMatching(text, /%6 = sum\(%5\) \{axes: \[1\], keepdims: false\} : f32\[4\]  -> at 0$/);
    lineMatching(text, /arena 512 bytes, most alive 512 bytes, one range per intermediate 704 bytes, sources 128 bytes/);
    expect(checkPlan(g, plan)).toBeNull();
    expect(planAndRun(g, 1)).toBeNull();
  });

  it('two small values alive together share the range of a dead large one', () => {
    const g = trace({ params: {}, inputs: { x: [64], y: [16] } }, (_p, { x, y }) => {
      const big = ops.relu(x!); // 256 bytes
      const t = ops.slice(big, 0, 0, 16); // 64 bytes; big dies here
      const u = ops.exp(y!); // 64 bytes
      return { v: ops.add(t, u) };
    });
    const plan = planMemory(g);
    const text = showPlan('packing', g, plan);
    lineMatching(text, /%2 = relu\(%0\) : f32\[64\]  -> at 0$/);
    lineMatching(text, /%3 = slice\(%2\) \{axis: 0, start: 0, size: 16\} : f32\[16\]  -> at 256$/);
    lineMatching(text, /%4 = exp\(%1\) : f32\[16\]  -> at 0$/);
    lineMatching(text, /%5 = add\(%3, %4\) : f32\[16\]  -> at 64$/);
    lineMatching(text, /arena 320 bytes, most alive 320 bytes/);
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
      console.log(`${mode}: ${graph.nodes.filter((n) => n.expr).length} kernels, arena ${(plan.peakBytes / 2 ** 20).toFixed(2)} MiB, most alive ${(plan.liveBytes / 2 ** 20).toFixed(2)} MiB, naive ${(plan.naiveBytes / 2 ** 20).toFixed(2)} MiB`);
      // Reuse matters, and the packing wastes little: within 5% of the bytes alive at the worst moment.
      expect(plan.peakBytes).toBeLessThan(plan.naiveBytes / 2);
      expect(plan.peakBytes).toBeLessThanOrEqual(1.05 * plan.liveBytes);
    }
  });
});
