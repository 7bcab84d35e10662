// BatchNorm folding for inference (TVM SimplifyInference + FoldScaleAxis, PyTorch fuse_conv_bn_weights):
// conv -> BN becomes one conv with W' = W * s and b' = beta + (b - mean) * s, s = gamma / sqrt(var + eps).
// The folded weights are computed from the parameters inside the graph, so a checkpoint loads unchanged.
import { Graph, Tensor, type Node } from '../ir/graph';
import { defineOp } from '../ir/op';
import { compute, lit } from '../ir/te';
import { add, conv2d, reshape, type ConvAttrs } from '../ir/ops';
import { deadCodeElimination } from './inline';

const foldWeightOp = defineOp<{ eps: number }>({
  name: 'bn_fold_weight',
  compute: ([w, gamma, variance], { eps }) => compute(w!.shape, (o, c, ky, kx) =>
    w!.at(o, c, ky, kx).mul(gamma!.at(o)).div(variance!.at(o).add(eps).sqrt())),
});

// b' = beta + (b - mean) * s, with b = 0 for a convolution without bias.
const foldBiasOp = defineOp<{ eps: number }>({
  name: 'bn_fold_bias',
  compute: ([gamma, beta, mean, variance, bias], { eps }) => compute(gamma!.shape, (o) =>
    beta!.at(o).add((bias ? bias.at(o) : lit(0)).sub(mean!.at(o)).mul(gamma!.at(o)).div(variance!.at(o).add(eps).sqrt()))),
});

/** The convolution (and its bias, when the model added one) that feeds a BN, if nothing else reads it. */
function convFeeding(g: Graph, bn: Node, users: readonly number[][]): { conv: Node; bias?: number } | undefined {
  const src = g.node(bn.inputs[0]!);
  if (users[src.id]!.length !== 1) return undefined;
  if (src.op === 'conv2d') return { conv: src };
  if (src.op !== 'add') return undefined;
  const [a, b] = src.inputs.map((i) => g.node(i));
  if (a!.op !== 'conv2d' || users[a!.id]!.length !== 1 || b!.op !== 'reshape' || users[b!.id]!.length !== 1) return undefined;
  const bias = g.node(b!.inputs[0]!);
  // The reshaped bias must vary along the channel axis only ([C, 1, 1] or [1, C, 1, 1]): a [C] vector laid out
  // along another axis (say [1, 1, C] when W == C) is not a per-channel bias and cannot fold into the conv.
  const C = a!.shape[1]!;
  const off = a!.shape.length - b!.shape.length;
  const perChannel = (off === 0 || off === 1) && b!.shape.every((d, i) => d === (i + off === 1 ? C : 1));
  return perChannel && bias.shape.length === 1 && bias.shape[0] === C ? { conv: a!, bias: bias.id } : undefined;
}

/** Rebuild `g`, replacing each BN-after-conv (the conv read by nothing else) with a conv on folded weights. */
export function foldBatchNorm(g: Graph): { graph: Graph; record: { readonly folded: number } } {
  const users = g.users();
  const out = new Graph();
  const map = new Map<number, number>();
  let folded = 0;
  const t = (oldId: number): Tensor => new Tensor(out, map.get(oldId)!);
  for (const n of g.nodes) {
    const feed = n.op === 'batch_norm_infer' ? convFeeding(g, n, users) : undefined;
    if (feed) {
      const { conv, bias } = feed;
      const [, w] = conv.inputs;
      const [, gamma, beta, mean, variance] = n.inputs;
      const eps = n.attrs.eps as number;
      const first = out.nodes.length;
      const w2 = foldWeightOp([t(w!), t(gamma!), t(variance!)], { eps });
      const b2 = foldBiasOp([t(gamma!), t(beta!), t(mean!), t(variance!), ...(bias === undefined ? [] : [t(bias)])], { eps });
      const y = add(conv2d(t(conv.inputs[0]!), w2, conv.attrs as unknown as ConvAttrs), reshape(b2, [b2.shape[0]!, 1, 1]));
      // The new nodes stand for the BN in the model source.
      for (let i = first; i < out.nodes.length; i++) out.nodes[i] = { ...out.nodes[i]!, loc: n.loc };
      map.set(n.id, y.id);
      folded++;
      continue;
    }
    const { id: _id, dtype: _dt, ...rest } = n as Node;
    map.set(n.id, out.add({ ...rest, inputs: n.inputs.map((i) => map.get(i)!) }).id);
  }
  for (const o of g.outputs) out.setOutput(o.name, map.get(o.node)!, o.kind);
  return { graph: deadCodeElimination(out), record: { folded } };
}
