// The inliner: substitute a producer's tensor expression into the reads of its consumer (TVM's compute_inline,
// tinygrad's view merging). Fusion passes differ only in which producers they choose to inline.
import { mapExpr, visitExpr, type Expr } from '../ir/expr';
import { Graph, isSource, reorder, type Node } from '../ir/graph';
import { freshReduceVar } from '../ir/te';
import { simplify } from '../ir/simplify';

export const hasReduce = (e: Expr): boolean => { let r = false; visitExpr(e, (x) => { if (x.k === 'reduce') r = true; }); return r; };

/** Does `e` read input `k` inside a reduction (where an inlined producer would be recomputed per step)? */
export function readsInsideReduce(e: Expr, k: number): boolean {
  let inside = false;
  visitExpr(e, (x) => {
    if (x.k === 'reduce') visitExpr(x.body, (y) => { if (y.k === 'read' && y.input === k) inside = true; });
  });
  return inside;
}

/** Are all reads of input `k` inside a branch of a select (a concat or pad placing the producer's values)? */
export function readsOnlyUnderSelect(e: Expr, k: number): boolean {
  const under = (x: Expr, guarded: boolean): boolean => {
    switch (x.k) {
      case 'read': return x.input === k ? guarded : x.index.every((i) => under(i, guarded));
      case 'select': return under(x.cond, guarded) && under(x.a, true) && under(x.b, true);
      case 'bin': return under(x.a, guarded) && under(x.b, guarded);
      case 'un': return under(x.a, guarded);
      case 'reduce': return under(x.body, guarded);
      default: return true;
    }
  };
  return under(e, false);
}

export function countReads(e: Expr, k: number): number {
  let n = 0;
  visitExpr(e, (x) => { if (x.k === 'read' && x.input === k) n++; });
  return n;
}

/** Give every reduction in `e` fresh variables, so two inlined copies never share loop variables. */
function renameReduceVars(e: Expr): Expr {
  const renamed = new Map<number, number>();
  visitExpr(e, (x) => { if (x.k === 'reduce') x.vars.forEach((v) => renamed.set(v.id, freshReduceVar())); });
  if (renamed.size === 0) return e;
  return mapExpr(e, (x) => {
    if (x.k === 'rvar') return { k: 'rvar', id: renamed.get(x.id) ?? x.id };
    if (x.k === 'reduce') return { ...x, vars: x.vars.map((v) => ({ id: renamed.get(v.id) ?? v.id, extent: v.extent })) };
    return x;
  });
}

/**
 * Inline input `k` of `consumer` (a node of `g`). Returns the consumer's new inputs and expression: the producer's
 * inputs join the consumer's (deduplicated), and each read of `k` becomes the producer's expression at that index.
 */
export function inlineInput(g: Graph, consumer: Pick<Node, 'inputs' | 'expr'>, k: number): { inputs: number[]; expr: Expr } {
  const producer = g.node(consumer.inputs[k]!);
  const inputs = [...consumer.inputs];
  const slotOf = producer.inputs.map((id) => {
    const at = inputs.indexOf(id);
    if (at >= 0) return at;
    inputs.push(id);
    return inputs.length - 1;
  });
  const substitute = (index: readonly Expr[]): Expr => mapExpr(renameReduceVars(producer.expr!), (x) => {
    if (x.k === 'axis') return index[x.i]!;
    if (x.k === 'read') return { ...x, input: slotOf[x.input]! };
    return x;
  });
  // Reads are replaced top-down so that the producer's own reads (now renumbered) are never substituted again.
  const walk = (e: Expr): Expr => {
    switch (e.k) {
      case 'read': return e.input === k ? substitute(e.index.map(walk)) : { ...e, index: e.index.map(walk) };
      case 'bin': return { ...e, a: walk(e.a), b: walk(e.b) };
      case 'un': return { ...e, a: walk(e.a) };
      case 'select': return { ...e, cond: walk(e.cond), a: walk(e.a), b: walk(e.b) };
      case 'reduce': return { ...e, body: walk(e.body) };
      default: return e;
    }
  };
  const expr = walk(consumer.expr!);
  // Input k itself is no longer read: drop it and shift the later slots down.
  const remaining = inputs.filter((_, i) => i !== k);
  const shifted = mapExpr(expr, (x) => (x.k === 'read' && x.input > k ? { ...x, input: x.input - 1 } : x));
  return { inputs: remaining, expr: shifted };
}

/** Simplify the index arithmetic substitution leaves behind (x * 1, 0 + x, always-true bounds checks). */
function tidy(e: Expr, shape: readonly number[]): Expr {
  return simplify(e, shape);
}

/** Remove nodes nobody reads (except sources and outputs) and renumber: array order stays topological. */
export function deadCodeElimination(g: Graph): Graph {
  const live = new Set<number>(g.outputs.map((o) => o.node));
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (live.has(n.id) || isSource(n)) { live.add(n.id); n.inputs.forEach((x) => live.add(x)); }
  }
  return reorder(g, g.nodes.filter((n) => live.has(n.id)).map((n) => n.id));
}

export type InlinePolicy = (g: Graph, producer: Node, consumer: Node, k: number, users: readonly number[][]) => boolean;

/**
 * Inline, in topological order, every producer the policy accepts into each consumer; a producer whose every
 * reader inlined it is then dead. Returns the new graph and how many reads were inlined.
 */
export function inlineWhere(g: Graph, policy: InlinePolicy): { graph: Graph; inlined: number } {
  const work = new Graph();
  g.nodes.forEach((n) => work.add(n));
  g.outputs.forEach((o) => work.setOutput(o.name, o.node, o.kind));
  const outputs = new Set(g.outputs.map((o) => o.node));
  let inlined = 0;
  const users = work.users();
  for (const consumer of work.nodes) {
    if (isSource(consumer)) continue;
    let current: Node = consumer;
    for (let changed = true; changed;) {
      changed = false;
      for (let k = 0; k < current.inputs.length; k++) {
        const producer = work.node(current.inputs[k]!);
        if (isSource(producer) || outputs.has(producer.id) || !policy(work, producer, current, k, users)) continue;
        const { inputs, expr: raw } = inlineInput(work, current, k);
        const expr = tidy(raw, current.shape);
        const fused = [...(producer.fused ?? [producer.op]), ...(current.fused ?? [current.op])];
        // Collapse only consecutive repeats (add > add): a global dedup would drop the consumer's own op when it
        // also occurs earlier (mul > affine > reshape > affine became mul > affine > reshape), misnaming the
        // kernel after an op it does not end with.
        current = { ...current, inputs, expr, fused: fused.filter((op, i) => op !== fused[i - 1]) };
        work.nodes[current.id] = current;
        // Users lists stay valid for the policy: the consumer now reads the producer's inputs too.
        for (const i of inputs) if (!users[i]!.includes(current.id)) users[i]!.push(current.id);
        users[producer.id] = users[producer.id]!.filter((u) => u !== current.id);
        inlined++;
        changed = true;
        break;
      }
    }
  }
  return { graph: deadCodeElimination(work), inlined };
}
