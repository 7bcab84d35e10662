// The contract between the benchmark and a peer system's ShuffleNetV1: same weights in, same numbers out.

export interface PeerConfig { size: string; group: number; stem: 'cifar' | 'imagenet'; classes: number; resolution: number; batch: number; mode: 'infer' | 'train' }

export interface PeerModel {
  readonly system: string; // e.g. 'tfjs-wasm', 'tfjs-cpu', 'jax-js-wasm'
  /** images: NCHW float32 [batch,3,res,res]; returns logits [batch, classes] (inference: BN with running statistics). */
  infer(images: Float32Array): Promise<Float32Array>;
  /** One training step: forward with batch-statistics BN, label-smoothing (0.1) cross-entropy, backward, Momentum 0.9 SGD with weight decay on weights of rank > 1; returns the loss before the update. Undefined when the system cannot train this model (say why in `cannotTrain`). */
  trainStep?(images: Float32Array, labels: Float32Array, lr: number): Promise<number>;
  readonly cannotTrain?: string;
  /** The current parameters and BN running statistics under tsc-nn's names and layouts (OIHW), to check a step. */
  parameters(): Promise<Map<string, Float32Array>>;
  /** The peak resident memory (MB) of the peer's own process, for a peer that computes outside the benchmark's. */
  peakRssMb?(): Promise<number>;
  dispose(): void;
}

/** Thrown while creating a peer that cannot run on this machine (the message says why): reported, not a failure. */
export class PeerUnavailable extends Error {}
