// Running compiled programs with a model's tensors: parameters, BN running statistics and momentum buffers live
// in one name -> Float32Array map; a training step feeds them with a batch and writes back the updated values.
import { outputKey, type Graph } from '../ir/graph';
import { createExecutor } from '../backends/registry';
import type { Backend, Executor } from '../backends/types';

export type TensorMap = Map<string, Float32Array>;

export interface StepResult { readonly loss: number; readonly logits: Float32Array }

/** One compiled training step: forward, backward and the optimizer update. */
export class TrainStep {
  private readonly executor: Executor;
  /** The step's own copies of the tensors it was given (plus zeroed momentum), updated in place by every run. */
  readonly tensors: TensorMap;
  constructor(readonly graph: Graph, backend: Backend, initial: TensorMap) {
    this.executor = createExecutor(graph, backend);
    this.tensors = new Map([...initial].map(([name, v]) => [name, v.slice()]));
    for (const s of graph.sources()) {
      if (s.op !== 'input' && !this.tensors.has(s.name!)) this.tensors.set(s.name!, new Float32Array(s.shape.reduce((a, b) => a * b, 1)));
    }
  }

  run(image: Float32Array, label: Float32Array, lr: number): StepResult {
    const feeds: Record<string, Float32Array> = { image, label, lr: new Float32Array([lr]) };
    for (const [k, v] of this.tensors) feeds[k] = v;
    // Updates overwrite parameters and momentum, state outputs the BN running statistics, in the arrays fed.
    const into: Record<string, Float32Array> = {};
    for (const o of this.graph.outputs) if (o.kind === 'update' || o.kind === 'state') into[outputKey(o)] = this.tensors.get(o.name)!;
    const out = this.executor.run(feeds, into);
    return { loss: out.loss![0]!, logits: out.logits! };
  }

  /** Stop the backend's threads (the tensors stay readable). */
  close(): void {
    this.executor.close();
  }
}

/** A compiled inference program (BN folded): images in, logits out. Parameters are fed as they are stored. */
export class Predictor {
  private readonly executor: Executor;
  readonly batch: number;
  readonly classes: number;
  constructor(readonly graph: Graph, backend: Backend, readonly tensors: TensorMap) {
    this.executor = createExecutor(graph, backend);
    const logits = graph.output('logits');
    [this.batch, this.classes] = logits.shape as [number, number];
  }

  /** Logits for up to `batch` images; a short batch is zero-padded and the padding's logits dropped. */
  logits(images: Float32Array, count: number): Float32Array {
    const perImage = images.length / count;
    const x = count === this.batch ? images : new Float32Array(this.batch * perImage);
    if (x !== images) x.set(images);
    const feeds: Record<string, Float32Array> = { image: x };
    for (const [k, v] of this.tensors) feeds[k] = v;
    return this.executor.run(feeds).logits!.subarray(0, count * this.classes);
  }

  close(): void {
    this.executor.close();
  }
}

/** Top-k hits of logits [n, classes] against labels. */
export function topKHits(logits: Float32Array, labels: ArrayLike<number>, classes: number, k: number): number {
  let hits = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    const target = row[labels[i]!]!;
    let better = 0;
    for (let c = 0; c < classes; c++) if (row[c]! > target || (row[c] === target && c < labels[i]!)) better++;
    if (better < k) hits++;
  }
  return hits;
}

/** Mean softmax cross-entropy (no smoothing) of logits [n, classes]. */
export function crossEntropy(logits: Float32Array, labels: ArrayLike<number>, classes: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    total += Math.log(sum) + max - row[labels[i]!]!;
  }
  return total / labels.length;
}
