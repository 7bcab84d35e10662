// tsc-nn's ShuffleNetV1 (src/models/shufflenet.ts) as a layer plan that the peers build in their own libraries:
// channel counts come from the parameter shapes, the stage layout and the training semantics are restated here.
import { shufflenet, type ShuffleNetConfig, type Size } from '../../../src/models/shufflenet';
import { SEED_MOMENTUM } from '../../../src/passes/optimizer';
import type { PeerConfig } from './types';

/** tsc-nn's batch norm (src/ir/ops/nn.ts): eps, and the weight of the batch statistic in the running statistics. */
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;
/** The training loss's label smoothing (src/frontend/build.ts). */
export const LABEL_SMOOTHING = 0.1;
/** Momentum SGD as tsc-nn's optimizer: accum = momentum * accum + grad (+ decay * param for rank > 1); param -= lr * accum. */
export const SGD = SEED_MOMENTUM;

/** Units per stage (stages 2-4); the first unit of each stage has stride 2. */
const STAGE_REPEATS = [4, 8, 4];

export interface UnitPlan {
  /** Parameter name prefix, `features.<i>`. */
  readonly prefix: string;
  readonly stride: 1 | 2;
  /** Channels of the bottleneck (the depthwise convolution). */
  readonly mid: number;
  /** Groups of the first 1x1 convolution: 1 in the network's first unit (24 or fewer input channels), `group` elsewhere. */
  readonly firstGroups: number;
}

export interface ShuffleNetPlan {
  readonly config: ShuffleNetConfig;
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  readonly group: number;
  readonly stemStride: number;
  readonly stemMaxPool: boolean;
  readonly units: readonly UnitPlan[];
}

export function planShuffleNet(cfg: PeerConfig): ShuffleNetPlan {
  const config = shufflenet.configure!({ size: cfg.size as Size, group: cfg.group, stem: cfg.stem, classes: cfg.classes, resolution: cfg.resolution });
  const shapes = Object.fromEntries(Object.entries(shufflenet.params(config)).map(([name, spec]) => [name, spec.shape]));
  const units: UnitPlan[] = [];
  STAGE_REPEATS.forEach((repeats, stage) => {
    for (let i = 0; i < repeats; i++) {
      const prefix = `features.${units.length}`;
      const mid = shapes[`${prefix}.branch_main_1.0.weight`]?.[0];
      if (mid === undefined) throw new Error(`the model has no unit ${prefix}: expected stages of ${STAGE_REPEATS.join(', ')} units`);
      units.push({ prefix, stride: i === 0 ? 2 : 1, mid, firstGroups: stage === 0 && i === 0 ? 1 : config.group });
    }
  });
  if (shapes[`features.${units.length}.branch_main_1.0.weight`]) throw new Error(`the model has more units than stages of ${STAGE_REPEATS.join(', ')}`);
  return { config, shapes, group: config.group, stemStride: config.stem === 'imagenet' ? 2 : 1, stemMaxPool: config.stem === 'imagenet', units };
}

/** TensorFlow `SAME` pooling along an axis of n: ceil(n / stride) outputs, the odd padding element at the end. */
export function samePadding(n: number, kernel: number, stride: number): { out: number; before: number; after: number } {
  const out = Math.ceil(n / stride);
  const total = Math.max((out - 1) * stride + kernel - n, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}

/** For each output of `SAME` pooling along an axis of n: how many elements of its window lie inside the input. */
export function windowCountsInside(n: number, kernel: number, stride: number): number[] {
  const { out, before } = samePadding(n, kernel, stride);
  return Array.from({ length: out }, (_, o) => Math.min(o * stride - before + kernel, n) - Math.max(o * stride - before, 0));
}

/** A parameter's data, checked against its shape (an error names a missing or mis-sized parameter). */
export function paramData(params: ReadonlyMap<string, Float32Array>, shapes: ShuffleNetPlan['shapes'], name: string): Float32Array {
  const data = params.get(name);
  const size = shapes[name]?.reduce((a, b) => a * b, 1);
  if (!data || data.length !== size) throw new Error(`parameter ${name}: expected ${size ?? 'no'} elements, got ${data?.length ?? 'none'}`);
  return data;
}
