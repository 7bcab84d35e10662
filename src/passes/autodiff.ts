// Reverse-mode automatic differentiation as an IR-to-IR transform (JAX's VJPs over a traced graph): walk the
// graph backwards from a scalar loss, apply each op's vector-Jacobian rule (written with ops, so it appends IR),
// and sum cotangents where a value fans out. The backward graph is then optimised and compiled like the forward.
import { Graph, Tensor, isSource, type Node } from '../ir/graph';
import { lookupOp } from '../ir/op';
import { add, fill } from '../ir/ops';

export interface GradRecord { readonly forwardNodes: number; readonly backwardNodes: number; readonly params: number }

/** Append the gradient of output `loss` with respect to every `param` source; each becomes a `grad` output. */
export function gradients(g: Graph, loss = 'loss'): { graph: Graph; record: GradRecord } {
  const out = new Graph();
  g.nodes.forEach((n) => out.add(n));
  g.outputs.forEach((o) => out.setOutput(o.name, o.node, o.kind));
  const lossNode = out.output(loss);
  if (lossNode.shape.length !== 0) throw new Error(`gradients: output ${loss} must be a scalar, it has shape [${lossNode.shape.join(', ')}]`);

  // Only nodes that depend on a parameter carry gradients.
  const needs = new Set<number>();
  for (const n of out.nodes) if (n.op === 'param' || n.inputs.some((i) => needs.has(i))) needs.add(n.id);

  const cotangent = new Map<number, Tensor>();
  const forwardCount = out.nodes.length;
  // The seed cotangent d loss / d loss = 1 is the first backward node.
  const seed = fill(new Tensor(out, lossNode.id), 1);
  out.nodes[seed.id] = { ...out.nodes[seed.id]!, loc: lossNode.loc, phase: 'backward' };
  cotangent.set(lossNode.id, seed);
  for (let id = lossNode.id; id >= 0; id--) {
    const node = out.node(id);
    const g_ = cotangent.get(id);
    if (!g_ || isSource(node) || !needs.has(id)) continue;
    const def = lookupOp(node.op);
    if (!def?.vjp) throw new Error(`gradients: op ${node.op} (%${id}) has no gradient rule`);
    const first = out.nodes.length;
    const inputs = node.inputs.map((i) => new Tensor(out, i));
    const grads = def.vjp(g_, inputs, new Tensor(out, id), node.attrs);
    grads.forEach((gi, k) => {
      const src = node.inputs[k]!;
      if (!gi || !needs.has(src)) return;
      const prev = cotangent.get(src);
      cotangent.set(src, prev ? add(prev, gi) : gi);
    });
    // Backward nodes point at the forward op they differentiate.
    for (let i = first; i < out.nodes.length; i++) out.nodes[i] = { ...out.nodes[i]!, loc: node.loc, phase: 'backward' } as Node;
  }
  const params = out.sources('param');
  for (const p of params) {
    let gp = cotangent.get(p.id);
    if (!gp) {
      gp = fill(new Tensor(out, p.id), 0);
      out.nodes[gp.id] = { ...out.nodes[gp.id]!, phase: 'backward' };
    }
    out.setOutput(p.name!, gp.id, 'grad');
  }
  return { graph: out, record: { forwardNodes: forwardCount, backwardNodes: out.nodes.length - forwardCount, params: params.length } };
}
