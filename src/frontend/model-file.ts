// A model file: a TypeScript module whose default export (or `model` export) is a `defineModel(...)` value.
import { UserError } from '../ir/errors';
import type { ModelDef } from '../ir/model';
import { loadTsModule } from './loader';

export type AnyModel = ModelDef<Record<string, unknown>>;

function isModel(x: unknown): x is AnyModel {
  const m = x as Partial<AnyModel> | undefined;
  return !!m && typeof m.name === 'string' && typeof m.params === 'function' && typeof m.forward === 'function' && typeof m.inputs === 'function';
}

export function loadModel(file: string): AnyModel {
  const mod = loadTsModule(file);
  const candidate = mod.default ?? mod.model;
  if (!isModel(candidate)) {
    throw new UserError(`${file}: export a model as \`export default defineModel({ name, defaults, params, inputs, forward })\``);
  }
  return candidate;
}

/** Merge command-line overrides into the model's configuration, through its own validation when it has one. */
export function configureModel(model: AnyModel, overrides: Record<string, unknown>): Record<string, unknown> {
  const known = Object.keys(model.defaults);
  for (const k of Object.keys(overrides)) {
    if (!known.includes(k)) throw new UserError(`unknown option --${k} for model ${model.name}: valid options are ${known.map((o) => `--${o}`).join(', ')}`);
  }
  const typed: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(overrides)) {
    typed[k] = typeof model.defaults[k] === 'number' ? Number(v) : v;
    if (typeof model.defaults[k] === 'number' && !Number.isFinite(typed[k])) throw new UserError(`--${k} must be a number, got "${String(v)}"`);
  }
  return model.configure ? model.configure(typed) : { ...model.defaults, ...typed };
}
