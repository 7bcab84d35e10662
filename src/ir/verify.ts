// The IR verifier: rejects ill-formed graphs with a message naming the node and where the model created it.
import { visitExpr } from './expr';
import { isSource, type Graph, type Node } from './graph';
import { formatLoc } from './location';

export class VerifyError extends Error {
  override name = 'VerifyError';
}

export function verify(g: Graph): void {
  const names = new Set<string>();
  g.nodes.forEach((n, pos) => {
    const fail = (msg: string): never => { throw new VerifyError(`%${n.id} ${n.op} (${formatLoc(n.loc)}): ${msg}`); };
    if (n.id !== pos) fail(`id ${n.id} at position ${pos}`);
    if (!n.shape.every((d) => Number.isInteger(d) && d > 0)) fail(`bad shape [${n.shape.join(', ')}]`);
    if (isSource(n)) {
      if (!n.name) fail('source without a name');
      if (names.has(n.name!)) fail(`duplicate source name ${n.name}`);
      names.add(n.name!);
      if (n.inputs.length) fail('source with inputs');
      return;
    }
    n.inputs.forEach((i) => { if (!(i >= 0 && i < pos)) fail(`input %${i} is not an earlier node`); });
    verifyExpr(g, n, fail);
  });
  for (const o of g.outputs) {
    if (!(o.node >= 0 && o.node < g.nodes.length)) throw new VerifyError(`output ${o.name} refers to missing node %${o.node}`);
  }
}

function verifyExpr(g: Graph, n: Node, fail: (msg: string) => never): void {
  const bound = new Set<number>();
  // Collect every reduction variable's binder first: a variable is legal when some enclosing reduce binds it.
  visitExpr(n.expr!, (e) => { if (e.k === 'reduce') e.vars.forEach((v) => { if (!(v.extent >= 1)) fail(`reduction extent ${v.extent}`); bound.add(v.id); }); });
  visitExpr(n.expr!, (e) => {
    if (e.k === 'axis' && !(e.i >= 0 && e.i < n.shape.length)) fail(`expression uses axis ${e.i} of a rank-${n.shape.length} output`);
    if (e.k === 'rvar' && !bound.has(e.id)) fail(`expression uses unbound reduction variable r${e.id}`);
    if (e.k === 'read') {
      const src = n.inputs[e.input];
      if (src === undefined) fail(`expression reads input ${e.input} but the node has ${n.inputs.length} inputs`);
      const rank = g.node(src!).shape.length;
      if (e.index.length !== rank) fail(`read of %${src} with ${e.index.length} indices, rank is ${rank}`);
    }
  });
}
