// Scheduling: every optimizer update runs as soon as its inputs exist, as frameworks apply a layer's update during
// the backward pass. The update of a convolution's weights holds its weight gradient, which reads the layer's input
// activation and its output gradient: run at the end of the step, it would keep both alive for every layer at once.
// Updates write new tensors (never the parameters they read), so moving them changes no value.
import { isSource, reorder, type Graph, type Node } from '../ir/graph';

export function scheduleUpdatesEarly(g: Graph): { graph: Graph; record: { readonly moved: number } } {
  const early = (n: Node): boolean => n.phase === 'optimizer';
  const users = g.users();
  const order: number[] = [];
  const emitted = new Set<number>();
  const emit = (id: number): void => {
    order.push(id);
    emitted.add(id);
    for (const u of users[id]!) {
      if (!emitted.has(u) && early(g.node(u)) && g.node(u).inputs.every((i) => emitted.has(i))) emit(u);
    }
  };
  // Sources first: the optimizer's own (learning rate, momentum buffers) are created after the backward pass.
  for (const n of g.nodes) if (isSource(n)) emit(n.id);
  for (const n of g.nodes) if (!early(n) && !emitted.has(n.id)) emit(n.id);
  // Updates that read no computed tensor (none today) keep their place at the end.
  for (const n of g.nodes) if (!emitted.has(n.id)) emit(n.id);

  const moved = order.filter((id, at) => early(g.node(id)) && !isSource(g.node(id)) && at !== id).length;
  return { graph: reorder(g, order), record: { moved } };
}
