// Shared pieces of the CLI: flag parsing with clear errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../../src/ir/errors';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: Options;
  /** Commands whose extra `--key value` flags are model options (validated against the model later). */
  readonly allowModelFlags?: boolean;
  run(args: ParsedArgs): Promise<void> | void;
}

export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
  /** Flags the command does not know itself: model configuration (a switch given alone is `true`). */
  readonly extra: Readonly<Record<string, string | true>>;
}

export function parseCommandArgs(cmd: Command, argv: readonly string[]): ParsedArgs {
  const { values, tokens } = parseArgs({ args: [...argv], options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, strict: false, allowPositionals: true, tokens: true });
  const extra: Record<string, string | true> = {};
  const positionals: string[] = [];
  const list = tokens ?? [];
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (t.kind === 'positional') { positionals.push(t.value); continue; }
    if (t.kind !== 'option' || t.name in cmd.options || t.name === 'help') continue;
    if (!cmd.allowModelFlags) {
      throw new UserError(`unknown flag --${t.name} for ${cmd.name}: valid flags are ${Object.keys(cmd.options).map((o) => `--${o}`).join(', ')}`);
    }
    // parseArgs cannot know a model flag takes a value: `--size 0.5x` arrives as a flag and a positional. A flag
    // followed by another flag or nothing is a switch; the model's defaults say whether that is allowed.
    const next = list[i + 1];
    extra[t.name] = t.value ?? (next?.kind === 'positional' ? (i++, next.value) : true);
  }
  for (const [name, spec] of Object.entries(cmd.options)) {
    if (spec.type === 'string' && values[name] === true) throw new UserError(`flag --${name} needs a value`);
  }
  return { values: values as ParsedArgs['values'], positionals, extra };
}

export function oneOf<T extends string>(flag: string, value: string | boolean | undefined, valid: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(valid as readonly string[]).includes(value)) {
    throw new UserError(`--${flag} must be one of ${valid.join(', ')} (got ${String(value)})`);
  }
  return value as T;
}

export function positiveInt(flag: string, value: string | boolean | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n <= 0) throw new UserError(`--${flag} must be a positive integer (got ${String(value)})`);
  return n;
}
