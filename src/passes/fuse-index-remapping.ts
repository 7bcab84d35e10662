// Shuffle fusion: index-remapping ops (reshape, transpose, the channel shuffle, slice, pad, broadcast, the
// concat's placement) are inlined into every kernel that reads them, so their permutation becomes part of the
// reader's indexing and no kernel is left that only moves data.
import { isIndexExpr, type Expr } from '../ir/expr';
import { isSource, type Graph } from '../ir/graph';
import { deadCodeElimination, inlineWhere } from './inline';

/** An expression that only selects which input element to return: reads, constants and index-guarded choices. */
export function isIndexRemapping(e: Expr): boolean {
  switch (e.k) {
    case 'read': return e.index.every(isIndexExpr);
    case 'const': return true;
    case 'select': return isIndexExpr(e.cond) && isIndexRemapping(e.a) && isIndexRemapping(e.b);
    default: return false;
  }
}

export interface RemapFusionRecord {
  readonly inlinedReads: number;
  /** Index-remapping kernels that no longer exist, by op. */
  readonly removedKernels: Record<string, number>;
  /** Kernels nothing read (e.g. the gradient of the input image), removed first. */
  readonly deadKernels: number;
}

export function fuseIndexRemapping(g: Graph): { graph: Graph; record: RemapFusionRecord } {
  const live = deadCodeElimination(g);
  const deadKernels = countKernels(g) - countKernels(live);
  const before = countOps(live);
  const { graph, inlined } = inlineWhere(live, (_g, producer) => isIndexRemapping(producer.expr!));
  const after = countOps(graph);
  const removedKernels: Record<string, number> = {};
  for (const [op, n] of Object.entries(before)) if ((after[op] ?? 0) < n) removedKernels[op] = n - (after[op] ?? 0);
  return { graph, record: { inlinedReads: inlined, removedKernels, deadKernels } };
}

/** Kernels by the op they compute last (a fused kernel counts as its final op). */
function countOps(g: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of g.nodes) {
    if (!n.expr) continue;
    const op = n.fused ? n.fused[n.fused.length - 1]! : n.op;
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

const countKernels = (g: Graph): number => g.nodes.filter((n) => !isSource(n)).length;
