// A model file: a TypeScript module whose default export (or `model` export) is a `defineModel(...)` value.
import { UserError } from '../ir/errors';
import type { ModelDef } from '../ir/model';
import { loadTsModule } from '../frontend/loader';
import * as dsl from '../dsl';

export type AnyModel = ModelDef<Record<string, unknown>>;

function isModel(x: unknown): x is AnyModel {
  const m = x as Partial<AnyModel> | undefined;
  return !!m && typeof m.name === 'string' && typeof m.params === 'function' && typeof m.forward === 'function' && typeof m.inputs === 'function';
}

/** A model or op file, evaluated with its `tsc-nn` import bound to the DSL. */
export const loadUserModule = (file: string): Record<string, unknown> => loadTsModule(file, dsl);

/** The model a TypeScript model file exports. */
export function loadModel(file: string): AnyModel {
  const mod = loadUserModule(file);
  const candidate = mod.default ?? mod.model;
  if (!isModel(candidate)) {
    throw new UserError(`${file}: export a model as \`export default defineModel({ name, defaults, params, inputs, forward })\``);
  }
  return candidate;
}

/** A configuration key as a command-line flag: `zeroInitResidual` is `--zero-init-residual`. */
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Typed configuration overrides from command-line model flags (`--depth 20`, `--zero-init-residual`), checked
 * against the model's defaults: numbers must be finite, booleans true or false, unknown flags are an error.
 * A flag given without a value arrives as `true`.
 */
export function parseModelFlags(model: AnyModel, flags: Readonly<Record<string, string | true>>): Record<string, unknown> {
  const byFlag = new Map(Object.keys(model.defaults).map((k) => [flagName(k), k]));
  const typed: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(flags)) {
    const key = byFlag.get(flag) ?? (Object.hasOwn(model.defaults, flag) ? flag : undefined);
    if (key === undefined) throw new UserError(`unknown option --${flag} for model ${model.name}: valid options are ${[...byFlag.keys()].map((o) => `--${o}`).join(', ')}`);
    const kind = typeof model.defaults[key];
    if (kind === 'boolean') {
      if (value !== true && value !== 'true' && value !== 'false') throw new UserError(`--${flag} is a switch: give it alone or as --${flag} true|false (got "${value}")`);
      typed[key] = value === true || value === 'true';
    } else if (value === true) {
      throw new UserError(`flag --${flag} needs a value (--${flag} VALUE)`);
    } else if (kind === 'number') {
      typed[key] = Number(value);
      if (!Number.isFinite(typed[key])) throw new UserError(`--${flag} must be a number, got "${value}"`);
    } else {
      typed[key] = value;
    }
  }
  return typed;
}

/** Merge command-line overrides into the model's configuration, through its own validation when it has one. */
export function configureModel(model: AnyModel, flags: Readonly<Record<string, string | true>>, base: Record<string, unknown> = {}): Record<string, unknown> {
  const typed = { ...base, ...parseModelFlags(model, flags) };
  return model.configure ? model.configure(typed) : { ...model.defaults, ...typed };
}
