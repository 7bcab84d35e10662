// What every executor does at the edges of a run: check what it is fed, and hand the outputs back.
import { outputKey, sizeOf, type Graph } from '../ir/graph';
import type { OutputTargets } from './types';

/** Feeds checked against the graph's sources: every one present, with as many values as its shape holds. */
export function checkedFeeds(graph: Graph, feeds: Readonly<Record<string, Float32Array>>): { node: number; value: Float32Array }[] {
  return graph.sources().map((n) => {
    const value = feeds[n.name!];
    if (!value) throw new Error(`no value fed for ${n.op} ${n.name}`);
    if (value.length !== sizeOf(n.shape)) throw new Error(`${n.name}: fed ${value.length} values, shape [${n.shape.join(', ')}] needs ${sizeOf(n.shape)}`);
    return { node: n.id, value };
  });
}

/**
 * The graph outputs by key: copied into `into` where it names the output (a training step writes updated
 * parameters back into the arrays it fed, with no allocation per step), else `owned` as it is or a copy of `view`.
 */
export function collectOutputs(graph: Graph, value: (node: number) => { view: Float32Array; owned: boolean }, into: OutputTargets = {}): Record<string, Float32Array> {
  return Object.fromEntries(graph.outputs.map((o) => {
    const key = outputKey(o);
    const { view, owned } = value(o.node);
    const target = into[key];
    if (target) {
      if (target.length !== view.length) throw new Error(`${key}: output target holds ${target.length} values, the output has ${view.length}`);
      target.set(view);
      return [key, target];
    }
    return [key, owned ? view : view.slice()];
  }));
}
