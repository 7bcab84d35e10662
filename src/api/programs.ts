// The one place a model and its configuration become compiled programs: the training step (forward, backward and
// the optimizer update in one graph) or the BN-folded inference program. The CLI, the library API and the
// benchmarks all compile through here.
import type { ModelDef } from '../ir/model';
import { buildGraph, type Mode } from '../frontend/build';
import { passesFor } from '../passes/pipeline';
import { SEED_MOMENTUM, type MomentumOptions } from '../passes/optimizer';
import { compileCached } from './program-cache';

export interface ProgramOptions {
  /** Momentum SGD settings of the training step (default: the seed's momentum 0.9, weight decay 4e-5). */
  readonly optimizer?: MomentumOptions;
  /** Label smoothing of the training loss (default 0.1, the seed's). */
  readonly labelSmoothing?: number;
}

export async function compilePrograms<C extends object>(model: ModelDef<C>, config: C, mode: Mode, batch: number, opts: ProgramOptions = {}) {
  const traced = buildGraph(model, config, { batch, mode, labelSmoothing: opts.labelSmoothing });
  return compileCached(traced, passesFor(mode, opts.optimizer ?? SEED_MOMENTUM));
}

/** Shapes of everything a checkpoint holds for this model: parameters and state (and momentum when training). */
export function tensorShapes<C extends object>(model: ModelDef<C>, config: C): Map<string, readonly number[]> {
  return new Map(Object.entries(model.params(config)).map(([name, spec]) => [name, spec.shape]));
}
