// A model file's contract: configuration, parameter specs with initializers, input shapes and a pure forward.
import { UserError } from './errors';
import type { Tensor } from './graph';
import type { BatchNormParams } from './ops/nn';
import type { Shapes, SourceSpec } from './trace';

/**
 * How a parameter starts: He-normal over fan-in (convs, dense), Xavier/Glorot-uniform over fan-in + fan-out (the
 * seed's convolutions: U(-a, a), a = sqrt(6 / (fanIn + fanOut)), with fan-out = out channels x kernel area, as
 * PyTorch and MindSpore count it), a normal distribution, or a constant (BN).
 */
export type Init =
  | { readonly kind: 'he_normal'; readonly fanIn: number }
  | { readonly kind: 'xavier_uniform'; readonly fanIn: number; readonly fanOut: number }
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'const'; readonly value: number };

export interface ParamSpec extends SourceSpec { readonly init: Init }

export interface ForwardContext { readonly training: boolean }

export interface ModelDef<C extends object> {
  readonly name: string;
  /** Default configuration; `configure` validates user overrides against it. */
  readonly defaults: C;
  configure?(overrides: Partial<C>): C;
  params(config: C): Record<string, ParamSpec>;
  /** Model inputs for a batch, besides the labels that training adds. `image` is the conventional name. */
  inputs(config: C, batch: number): Shapes;
  forward(params: Record<string, Tensor>, inputs: Record<string, Tensor>, config: C, ctx: ForwardContext): Tensor;
}

export function defineModel<C extends object>(def: ModelDef<C>): ModelDef<C> {
  return def;
}

/** Number of elements of all trainable parameters. */
export const countParams = (specs: Readonly<Record<string, ParamSpec>>): number =>
  Object.values(specs).filter((s) => s.role === 'param').reduce((p, s) => p + s.shape.reduce((a, b) => a * b, 1), 0);

/**
 * The four tensors of a BatchNorm over `channels`, named as PyTorch names them (`PREFIX.weight`, `.bias`,
 * `.running_mean`, `.running_var`): gamma starts at `gamma`, beta at 0, the running statistics at 0 and 1.
 */
export const batchNormParams = (prefix: string, channels: number, gamma = 1): Record<string, ParamSpec> => ({
  [`${prefix}.weight`]: { shape: [channels], role: 'param', init: { kind: 'const', value: gamma } },
  [`${prefix}.bias`]: { shape: [channels], role: 'param', init: { kind: 'const', value: 0 } },
  [`${prefix}.running_mean`]: { shape: [channels], role: 'state', init: { kind: 'const', value: 0 } },
  [`${prefix}.running_var`]: { shape: [channels], role: 'state', init: { kind: 'const', value: 1 } },
});

/** The tensors `batchNormParams(prefix, ...)` declared, picked from a forward's parameters for `batchNorm`. */
export function batchNormOf(params: Readonly<Record<string, Tensor>>, prefix: string): BatchNormParams {
  const pick = (name: string): Tensor => {
    const t = params[`${prefix}.${name}`];
    if (!t) throw new UserError(`batchNormOf: no parameter ${prefix}.${name}: declare it with batchNormParams('${prefix}', channels)`);
    return t;
  };
  return { weight: pick('weight'), bias: pick('bias'), running_mean: pick('running_mean'), running_var: pick('running_var') };
}
