// Building the compiled programs of a model configuration: the training step and the BN-folded inference.
import type { ModelDef } from '../ir/model';
import { buildGraph, type Mode } from '../frontend/build';
import { passesFor } from '../passes/pipeline';
import { compileCached } from './program-cache';

export async function compileModel<C extends object>(model: ModelDef<C>, config: C, mode: Mode, batch: number) {
  const traced = buildGraph(model, config, { batch, mode });
  return compileCached(traced, passesFor(mode));
}

/** Shapes of everything a checkpoint holds for this model: parameters and state (and momentum when training). */
export function tensorShapes<C extends object>(model: ModelDef<C>, config: C): Map<string, readonly number[]> {
  return new Map(Object.entries(model.params(config)).map(([name, spec]) => [name, spec.shape]));
}
