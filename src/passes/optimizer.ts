// The optimizer as IR: Momentum SGD with weight decay (the seed's MindSpore Momentum: accum = momentum * accum +
// grad; param -= lr * accum), so forward, backward and update compile into one training-step program.
// Weight decay adds wd * param to the gradients of convolution and dense weights (rank > 1), not to BN
// parameters or biases. The learning rate is a scalar input, set each step by the schedule.
import { Graph, Tensor, type Node } from '../ir/graph';
import { source } from '../ir/trace';
import { add, mul, scale, sub } from '../ir/ops';

export interface MomentumOptions { readonly momentum: number; readonly weightDecay: number }
export const SEED_MOMENTUM: MomentumOptions = { momentum: 0.9, weightDecay: 4e-5 };

/** Name of the momentum buffer of a parameter (a state source and a checkpoint entry). */
export const momentumName = (param: string): string => `momentum.${param}`;

export function momentumSgd(g: Graph, opts: MomentumOptions = SEED_MOMENTUM): { graph: Graph; record: { readonly params: number } } {
  const out = new Graph();
  g.nodes.forEach((n) => out.add(n));
  // Gradients feed the update directly; they stop being outputs, so fusion may keep them out of memory.
  g.outputs.filter((o) => o.kind !== 'grad').forEach((o) => out.setOutput(o.name, o.node, o.kind));
  const first = out.nodes.length;
  const lr = source(out, 'lr', [], 'input');
  const grads = g.outputs.filter((o) => o.kind === 'grad');
  for (const o of grads) {
    const param = new Tensor(out, g.sources('param').find((p) => p.name === o.name)!.id);
    const accum = source(out, momentumName(o.name), param.shape, 'state');
    const grad = new Tensor(out, o.node);
    const decayed = param.rank > 1 && opts.weightDecay !== 0 ? add(grad, scale(param, opts.weightDecay)) : grad;
    const nextAccum = add(scale(accum, opts.momentum), decayed);
    out.setOutput(o.name, sub(param, mul(lr, nextAccum)).id, 'update');
    out.setOutput(momentumName(o.name), nextAccum.id, 'update');
  }
  for (let i = first; i < out.nodes.length; i++) out.nodes[i] = { ...out.nodes[i]!, phase: 'optimizer' } as Node;
  return { graph: out, record: { params: grads.length } };
}
