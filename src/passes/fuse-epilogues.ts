// Epilogue fusion: a node read by exactly one consumer, once per consumer element and outside any reduction,
// is computed inside that consumer (BN apply, ReLU, residual add and the concat write fuse into the convolution
// or pooling that produces them). Nothing is recomputed, and the intermediate never touches memory. A consumer
// larger than its producer is allowed only when the read sits in a select branch (concat or pad placing the
// producer's values), since a broadcast read would recompute the producer per consumer element, and only for a
// producer without a reduction: SIMD code evaluates both branches of a select for every element, so a stride-2
// unit's average pool inlined into its concat was computed for all the concat's channels (10x its own work in
// ShuffleNet 0.5x's first stage).
import { sizeOf, type Graph } from '../ir/graph';
import { countReads, hasReduce, inlineWhere, readsInsideReduce, readsOnlyUnderSelect } from './inline';

export function fuseEpilogues(g: Graph): { graph: Graph; record: { readonly inlined: number } } {
  const { graph, inlined } = inlineWhere(g, (_g, producer, consumer, k, users) =>
    users[producer.id]!.length === 1
    && countReads(consumer.expr!, k) === 1
    && !readsInsideReduce(consumer.expr!, k)
    && (sizeOf(consumer.shape) <= sizeOf(producer.shape) || (readsOnlyUnderSelect(consumer.expr!, k) && !hasReduce(producer.expr!))));
  return { graph, record: { inlined } };
}
