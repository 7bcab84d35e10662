// The optional MODEL.ts argument of train, eval, predict and bench: a model file, or the built-in ShuffleNetV1.
import { UserError } from '../../src/ir/errors';
import { loadModel, parseModelFlags, type AnyModel } from '../../src/api/load-model';
import { shufflenet } from '../../src/models/shufflenet';
import type { ParsedArgs } from './common';

export interface ChosenModel {
  readonly model: AnyModel;
  /** The model file, or undefined for the built-in ShuffleNetV1. */
  readonly file: string | undefined;
}

export function chooseModel(command: string, positionals: readonly string[]): ChosenModel {
  if (positionals.length > 1) throw new UserError(`${command} takes at most one model file, got ${positionals.map((p) => `"${p}"`).join(', ')}`);
  const file = positionals[0];
  if (file === undefined) return { model: shufflenet as unknown as AnyModel, file: undefined };
  return { model: loadModel(file), file };
}

/** The model's configuration overrides from its flags, typed; the model validates them when it is configured. */
export const modelOverrides = (chosen: ChosenModel, extra: ParsedArgs['extra']): Record<string, unknown> => parseModelFlags(chosen.model, extra);

/** "resnet (models/resnet.ts)" or "shufflenet (built in)". */
export const describeModel = (chosen: ChosenModel): string => `${chosen.model.name} (${chosen.file ?? 'built in'})`;
