// The pass pipeline: one explicit list of passes per mode; each record's kernel counts agree with countKernels of
// the graphs the passes produce (recomputed here pass by pass), the counts change exactly as each pass says, the
// final graph is verified and planned, and the result equals the traced graph in the reference and on gpu.js cpu.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Graph, isSource } from '../../src/ir/graph';
import { VerifyError } from '../../src/ir/verify';
import { countKernels, passesFor, runPasses, type CompiledProgram } from '../../src/passes/pipeline';
import { planMemory } from '../../src/passes/memory-plan';
import { gradients } from '../../src/passes/autodiff';
import { momentumSgd } from '../../src/passes/optimizer';
import { buildGraph } from '../../src/frontend/build';
import { shufflenet } from '../../src/models/shufflenet';
import { equivalence, feedsFor, gradientEquivalence, lineMatching, property, show, unitArb, unitInferGraph, unitTrainGraph } from './common';

const INFER = ['batchnorm-folding', 'shuffle-fusion (inline index remapping)', 'epilogue-fusion', 'pointwise-fusion'];
const TRAIN = ['autodiff', 'optimizer (momentum SGD 0.9, weight decay 0.00004)', 'shuffle-fusion (inline index remapping)', 'epilogue-fusion', 'pointwise-fusion', 'schedule (updates early)'];

const table = (p: CompiledProgram): string => [
  `traced: ${countKernels(p.traced)} kernels`,
  ...p.passes.map((r) => `${r.pass.padEnd(42)} kernels ${String(r.kernelsBefore).padStart(5)} -> ${String(r.kernelsAfter).padStart(5)}  ${JSON.stringify(r.changed)}`),
].join('\n');

/** Recompute every record by running the passes one at a time; check how each pass changes the kernel count. */
function checkRecords(traced: Graph, mode: 'train' | 'infer', program: CompiledProgram): string | null {
  const passes = passesFor(mode);
  const names = program.passes.map((r) => r.pass);
  const want = mode === 'infer' ? INFER : TRAIN;
  if (JSON.stringify(names) !== JSON.stringify(want)) return `passes ${names.join(', ')}`;
  let g = traced;
  for (let i = 0; i < passes.length; i++) {
    const r = program.passes[i]!;
    const { graph: next, record } = passes[i]!.run(g);
    if (r.kernelsBefore !== countKernels(g) || r.kernelsAfter !== countKernels(next)) {
      return `${r.pass}: record says ${r.kernelsBefore} -> ${r.kernelsAfter}, countKernels says ${countKernels(g)} -> ${countKernels(next)}`;
    }
    if (i > 0 && r.kernelsBefore !== program.passes[i - 1]!.kernelsAfter) return `${r.pass} starts from ${r.kernelsBefore}, the pass before ended at ${program.passes[i - 1]!.kernelsAfter}`;
    if (JSON.stringify(r.changed) !== JSON.stringify(record)) return `${r.pass}: changed ${JSON.stringify(r.changed)}, the pass reports ${JSON.stringify(record)}`;
    const delta = r.kernelsAfter - r.kernelsBefore;
    const c = r.changed as Record<string, any>;
    switch (r.pass) {
      case 'batchnorm-folding':
        // conv + BN (2 kernels) become bn_fold_weight, bn_fold_bias, conv, reshape, add (5): +3 per fold.
        if (delta !== 3 * c.folded) return `folding ${c.folded} BNs changed the kernel count by ${delta}`;
        break;
      case 'autodiff':
        if (delta !== c.backwardNodes) return `autodiff added ${c.backwardNodes} nodes but ${delta} kernels`;
        break;
      case 'optimizer (momentum SGD 0.9, weight decay 0.00004)': {
        // Per parameter: scale(accum), add, mul(lr, .), sub; weights (rank > 1) also scale(param) and add.
        const params = traced.sources('param');
        const expected = params.reduce((s, p) => s + (p.shape.length > 1 ? 6 : 4), 0);
        if (delta !== expected) return `the optimizer added ${delta} kernels, expected ${expected}`;
        break;
      }
      case 'schedule (updates early)':
        // Reordering only.
        if (delta !== 0) return `scheduling changed the kernel count by ${delta}`;
        break;
      case 'epilogue-fusion':
        // A producer is inlined only into its one reader, so each inlining removes one kernel.
        if (-delta !== c.inlined) return `epilogue fusion inlined ${c.inlined} producers but removed ${-delta} kernels`;
        break;
      case 'pointwise-fusion':
        // A producer recomputed in n readers is n inlinings and (at most) one kernel less.
        if (delta > 0 || -delta > c.inlined) return `pointwise fusion inlined ${c.inlined} reads but removed ${-delta} kernels`;
        break;
      default:
        if (delta > 0) return `${r.pass} added kernels`;
    }
    g = next;
  }
  if (countKernels(program.graph) !== program.passes[program.passes.length - 1]!.kernelsAfter) return 'final graph count differs';
  if (JSON.stringify(program.plan) !== JSON.stringify(planMemory(program.graph))) return 'the plan is not the final graph\'s';
  return null;
}

describe('the pipeline on a printed example', () => {
  it('infer: a ShuffleNet unit, traced and compiled, with kernel counts per pass', () => {
    const u = { N: 1, groups: 2, inPerGroup: 2, midPerGroup: 1, branchPerGroup: 1, stride: 2 as const, H: 4, W: 4, firstGroup: false, seed: 1 };
    const traced = unitInferGraph(u);
    const before = show('traced', traced, false);
    expect(before.match(/^ {2}%\d+ = (?!param|state|input)/gm)).toHaveLength(countKernels(traced));
    const program = runPasses(traced, passesFor('infer'));
    const after = show('compiled', program.graph, false);
    console.log(table(program));
    expect(program.traced).toBe(traced);
    expect(program.passes.map((r) => r.pass)).toEqual(INFER);
    expect(program.passes.map((r) => [r.kernelsBefore, r.kernelsAfter])).toEqual([[13, 22], [22, 15], [15, 10], [10, 10]]);
    expect(program.passes[0]!.changed).toEqual({ folded: 3 });
    expect(countKernels(program.graph)).toBe(10);
    expect(after.match(/^ {2}%\d+ = (?!param|state|input)/gm)).toHaveLength(10);
    // The pooled shortcut is a kernel of its own: the concat evaluates both its branches for every element.
    lineMatching(after, /= avg_pool2d\(%\d+\)/);
    lineMatching(after, /= fused\(conv2d > reshape > add > concat > relu\)/);
    expect(checkRecords(traced, 'infer', program)).toBeNull();
    expect(equivalence(traced, program.graph, feedsFor(traced, 1))).toBeNull();
  });

  it('train: autodiff and the optimizer add kernels, fusion removes them', () => {
    const u = { N: 2, groups: 2, inPerGroup: 1, midPerGroup: 1, branchPerGroup: 1, stride: 1 as const, H: 3, W: 3, firstGroup: false, seed: 2 };
    const traced = unitTrainGraph(u, { head: true });
    const program = runPasses(traced, passesFor('train'));
    console.log(table(program));
    expect(program.passes.map((r) => r.pass)).toEqual(TRAIN);
    const [ad, opt, shuffle, epi, pointwise, schedule] = program.passes;
    expect(ad!.kernelsAfter).toBeGreaterThan(ad!.kernelsBefore);
    expect(opt!.changed).toEqual({ params: traced.sources('param').length });
    expect(shuffle!.kernelsAfter).toBeLessThan(shuffle!.kernelsBefore);
    expect(epi!.kernelsAfter).toBeLessThan(epi!.kernelsBefore);
    expect(pointwise!.kernelsAfter).toBeLessThan(pointwise!.kernelsBefore);
    expect(schedule!.kernelsAfter).toBe(pointwise!.kernelsAfter);
    expect(checkRecords(traced, 'train', program)).toBeNull();
    const phases = program.graph.nodes.filter((n) => !isSource(n)).map((n) => n.phase ?? 'forward');
    expect(new Set(phases)).toEqual(new Set(['forward', 'backward', 'optimizer']));
    const unfused = momentumSgd(gradients(traced).graph).graph;
    expect(gradientEquivalence(unfused, program.graph, feedsFor(unfused, 2, 3))).toBeNull();
  });

  it('every pass result is verified: a pass that breaks the IR is reported', () => {
    const traced = unitInferGraph({ N: 1, groups: 1, inPerGroup: 1, midPerGroup: 1, branchPerGroup: 1, stride: 1, H: 2, W: 2, firstGroup: false, seed: 1 });
    const broken = {
      name: 'broken',
      run: (g: Graph) => {
        const out = new Graph();
        g.nodes.forEach((n) => out.add(n));
        out.add({ op: 'bad', attrs: {}, inputs: [0], shape: [1], expr: { k: 'read', input: 0, index: [{ k: 'const', v: 0 }] } });
        return { graph: out, record: {} };
      },
    };
    expect(() => runPasses(traced, [...passesFor('infer'), broken])).toThrow(VerifyError);
    expect(() => runPasses(traced, [broken])).toThrow(/bad .*read of %0 with 1 indices, rank is 4/);
  });
});

describe('pipeline records agree with countKernels (fast-check)', () => {
  it('ShuffleNet units in both modes; the compiled program equals the traced graph', () => {
    property(fc.record({ u: unitArb, train: fc.boolean() }), ({ u, train }) => {
      const mode = train ? 'train' : 'infer';
      const traced = train ? unitTrainGraph(u, { head: true }) : unitInferGraph(u);
      const program = runPasses(traced, passesFor(mode));
      const bad = checkRecords(traced, mode, program);
      if (bad) return bad;
      if (!train) return equivalence(traced, program.graph, feedsFor(traced, u.seed));
      const unfused = momentumSgd(gradients(traced).graph).graph;
      return gradientEquivalence(unfused, program.graph, feedsFor(unfused, u.seed, 3));
    }, 16, 701);
  });

  it('compiled ShuffleNet 0.5x g8 (cifar stem), both modes, kernel counts only', () => {
    const cfg = shufflenet.configure!({ size: '0.5x', group: 8 });
    for (const mode of ['infer', 'train'] as const) {
      const traced = buildGraph(shufflenet, cfg, { batch: 1, mode });
      const program = runPasses(traced, passesFor(mode));
      console.log(`shufflenet 0.5x g8 ${mode}\n${table(program)}`);
      expect(checkRecords(traced, mode, program)).toBeNull();
      if (mode === 'infer') expect(program.passes[0]!.changed).toEqual({ folded: traced.nodes.filter((n) => n.op === 'batch_norm_infer').length });
      expect(countKernels(program.graph)).toBeLessThan(countKernels(mode === 'infer' ? traced : gradients(traced).graph));
    }
  });
});
