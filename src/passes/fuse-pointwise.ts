// Pointwise fusion: a cheap pointwise node (no reduction, a few arithmetic ops) is computed inside the kernels that
// read it, reductions included, as long as no kernel evaluates any of its elements more than once. On a CPU such a
// node costs its memory traffic, not its arithmetic: training BatchNorm's centred activation x - mean is recomputed
// where it is read, and the statistics read (x - mean)² straight from the convolution's output, instead of a kernel
// writing x - mean and another (x - mean)² for the next to read back (Inductor's prologue fusion).
//
// A node with several readers is recomputed in each only when every reader takes it (otherwise it stays in memory
// and recomputing it would only keep its inputs alive longer) and that moves fewer bytes: R readers each reading
// its F inputs of its own size, against it reading them, writing itself and being read R times (R F < F + 1 + R;
// per-channel inputs are negligible). Training BN's input gradient dy * s + c * (x - mean), read by its mean and
// by the subtraction of that mean, is recomputed from dy and x by both (2 x 2 < 2 + 1 + 2).
import { exprToString, visitExpr, type Expr } from '../ir/expr';
import { sizeOf, type Graph, type Node } from '../ir/graph';
import { hasReduce, inlineWhere } from './inline';

/**
 * Distinct arithmetic ops a recomputed node may have (x - mean is 1; BN's input gradient dy * s + 2 c (x - mean)
 * is 5): a memory pass costs far more than a few ops per element, but a long chain recomputed per reader would not.
 */
const MAX_RECOMPUTED_OPS = 6;

const readsNothing = (x: Expr): boolean => { let r = true; visitExpr(x, (y) => { if (y.k === 'read') r = false; }); return r; };

/** Arithmetic (not index) ops of `e`, each distinct subexpression once (kernels compute a repeated one once). */
function arithmeticOps(e: Expr): number {
  const distinct = new Set<string>();
  visitExpr(e, (x) => { if ((x.k === 'bin' || x.k === 'un') && !readsNothing(x)) distinct.add(exprToString(x)); });
  return distinct.size;
}

/**
 * How many times `consumer` evaluates its reads of input `k`: per distinct read (identical reads are computed
 * once), its output size times the extents of the reductions around it.
 */
function evaluationsOfInput(consumer: Node, k: number): number {
  const seen = new Set<string>();
  let total = 0;
  const walk = (e: Expr, iterations: number): void => {
    switch (e.k) {
      case 'read':
        if (e.input === k) {
          const key = exprToString(e);
          if (!seen.has(key)) { seen.add(key); total += iterations; }
        }
        e.index.forEach((i) => walk(i, iterations));
        return;
      case 'reduce': walk(e.body, iterations * e.vars.reduce((p, v) => p * v.extent, 1)); return;
      case 'bin': walk(e.a, iterations); walk(e.b, iterations); return;
      case 'un': walk(e.a, iterations); return;
      case 'select': walk(e.cond, iterations); walk(e.a, iterations); walk(e.b, iterations); return;
      default: return;
    }
  };
  walk(consumer.expr!, sizeOf(consumer.shape));
  return total;
}

const isCheapPointwise = (n: Node): boolean =>
  !hasReduce(n.expr!) && arithmeticOps(n.expr!) <= MAX_RECOMPUTED_OPS;

/** Inputs of `n` as large as `n` itself (the rest are per-channel parameters and statistics). */
const fullSizeInputs = (g: Graph, n: Node): number => n.inputs.filter((i) => sizeOf(g.node(i).shape) >= sizeOf(n.shape)).length;

export function fusePointwise(g: Graph): { graph: Graph; record: { readonly inlined: number } } {
  const { graph, inlined } = inlineWhere(g, (work, producer, consumer, k, users) => {
    if (!isCheapPointwise(producer)) return false;
    const readers = users[producer.id]!;
    const takes = (reader: Node): boolean => reader.inputs.every((input, slot) => input !== producer.id || evaluationsOfInput(reader, slot) <= sizeOf(producer.shape));
    if (!takes(consumer)) return false;
    const full = fullSizeInputs(work, producer);
    return readers.length === 1 || (readers.length * full < full + 1 + readers.length && readers.every((u) => takes(work.node(u))));
  });
  return { graph, record: { inlined } };
}
