// The one check every executor makes of what it is fed.
import { sizeOf, type Graph } from '../ir/graph';

/** Feeds checked against the graph's sources: every one present, with as many values as its shape holds. */
export function checkedFeeds(graph: Graph, feeds: Readonly<Record<string, Float32Array>>): { node: number; value: Float32Array }[] {
  return graph.sources().map((n) => {
    const value = feeds[n.name!];
    if (!value) throw new Error(`no value fed for ${n.op} ${n.name}`);
    if (value.length !== sizeOf(n.shape)) throw new Error(`${n.name}: fed ${value.length} values, shape [${n.shape.join(', ')}] needs ${sizeOf(n.shape)}`);
    return { node: n.id, value };
  });
}
