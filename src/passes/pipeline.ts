// The pass pipeline, in one explicit list per mode. Each pass maps a graph to a graph plus a record of what it
// changed; the pipeline adds kernel counts before and after, for the manifest and the compile summary.
import { isSource, type Graph } from '../ir/graph';
import { verify } from '../ir/verify';
import { foldBatchNorm } from './fold-batchnorm';
import { fuseIndexRemapping } from './fuse-index-remapping';
import { fuseEpilogues } from './fuse-epilogues';
import { fusePointwise } from './fuse-pointwise';
import { gradients } from './autodiff';
import { momentumSgd, type MomentumOptions, SEED_MOMENTUM } from './optimizer';
import { planMemory, type MemoryPlan } from './memory-plan';
import { scheduleUpdatesEarly } from './schedule';

export interface PassRecord {
  readonly pass: string;
  readonly kernelsBefore: number;
  readonly kernelsAfter: number;
  readonly changed: Readonly<Record<string, unknown>>;
}

export interface CompiledProgram {
  /** The traced graph, before any pass. */
  readonly traced: Graph;
  readonly graph: Graph;
  readonly passes: readonly PassRecord[];
  readonly plan: MemoryPlan;
}

type Pass = { readonly name: string; run(g: Graph): { graph: Graph; record: object } };

export const countKernels = (g: Graph): number => g.nodes.filter((n) => !isSource(n)).length;

export function passesFor(mode: 'train' | 'infer', optimizer: MomentumOptions = SEED_MOMENTUM): Pass[] {
  const fusion: Pass[] = [
    { name: 'shuffle-fusion (inline index remapping)', run: fuseIndexRemapping },
    { name: 'epilogue-fusion', run: fuseEpilogues },
    { name: 'pointwise-fusion', run: fusePointwise },
  ];
  if (mode === 'infer') return [{ name: 'batchnorm-folding', run: foldBatchNorm }, ...fusion];
  return [
    { name: 'autodiff', run: (g) => gradients(g) },
    // The settings are in the name: the program cache keys on pass names.
    { name: `optimizer (momentum SGD ${optimizer.momentum}, weight decay ${optimizer.weightDecay})`, run: (g) => momentumSgd(g, optimizer) },
    ...fusion,
    { name: 'schedule (updates early)', run: scheduleUpdatesEarly },
  ];
}

export function runPasses(traced: Graph, passes: readonly Pass[]): CompiledProgram {
  let graph = traced;
  const records: PassRecord[] = [];
  for (const p of passes) {
    const kernelsBefore = countKernels(graph);
    const { graph: next, record } = p.run(graph);
    verify(next);
    records.push({ pass: p.name, kernelsBefore, kernelsAfter: countKernels(next), changed: record as Record<string, unknown> });
    graph = next;
  }
  return { traced, graph, passes: records, plan: planMemory(graph) };
}
