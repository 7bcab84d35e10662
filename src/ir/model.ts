// A model file's contract: configuration, parameter specs with initializers, input shapes and a pure forward.
import type { Tensor } from './graph';
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
