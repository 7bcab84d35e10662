// Property-testing a custom op: fast-check draws shapes (and attributes) through `draw`, random data fills the
// inputs, and the op compiled to gpu.js must equal the float64 reference. Failures report the shrunk draw by name.
import fc from 'fast-check';
import type { Tensor } from '../ir/graph';
import { sizeOf } from '../ir/graph';
import { trace } from '../ir/trace';
import { compareWithReference } from '../runtime/compare';
import { uniform } from '../runtime/random';

/** Draw an integer in [lo, hi]; the label names it in counterexamples. */
export type Draw = (lo: number, hi: number, label: string) => number;

export interface OpCheck {
  readonly name: string;
  /** Input shapes and attributes for one trial. */
  draw(d: Draw): { readonly inputs: readonly (readonly number[])[]; readonly attrs?: Readonly<Record<string, unknown>> };
  apply(inputs: readonly Tensor[], attrs: Readonly<Record<string, unknown>>): Tensor;
  /** Indices of inputs whose data must be positive (for log, sqrt, division). */
  readonly positive?: readonly number[];
}

export const defineOpCheck = (c: OpCheck): OpCheck => c;

export interface OpCheckResult { readonly name: string; readonly runs: number; readonly failure?: string; readonly counterexample?: string }

const MAX_DRAWS = 32;

function replay(c: OpCheck, draws: readonly number[]) {
  const named: string[] = [];
  let k = 0;
  const d: Draw = (lo, hi, label) => {
    const v = lo + (draws[k++ % MAX_DRAWS]! % (hi - lo + 1));
    named.push(`${label}=${v}`);
    return v;
  };
  const trial = c.draw(d);
  return { trial, named };
}

function runTrial(c: OpCheck, draws: readonly number[], seed: number, backend: string): string | null {
  const { trial } = replay(c, draws);
  const shapes = Object.fromEntries(trial.inputs.map((s, i) => [`x${i}`, s]));
  const g = trace({ params: {}, inputs: shapes }, (_p, x) => c.apply(trial.inputs.map((_, i) => x[`x${i}`]!), trial.attrs ?? {}));
  const feeds = Object.fromEntries(trial.inputs.map((s, i) => {
    const positive = c.positive?.includes(i);
    return [`x${i}`, uniform(sizeOf(s), seed + i, positive ? 0.1 : -1, positive ? 2 : 1)];
  }));
  return compareWithReference(g, feeds, backend);
}

export function runOpCheck(c: OpCheck, opts: { backends: readonly string[]; numRuns: number; seed?: number }): OpCheckResult {
  const arb = fc.record({ draws: fc.array(fc.nat({ max: 1_000_000 }), { minLength: MAX_DRAWS, maxLength: MAX_DRAWS }), seed: fc.integer({ min: 1, max: 1_000_000 }) });
  for (const backend of opts.backends) {
    let failure = '';
    const out = fc.check(fc.property(arb, ({ draws, seed }) => {
      const f = runTrial(c, draws, seed, backend);
      if (f) { failure = f; return false; }
      return true;
    }), { numRuns: opts.numRuns, seed: opts.seed });
    if (out.failed) {
      const { draws, seed } = out.counterexample![0];
      const { trial, named } = replay(c, draws);
      // Re-run the shrunk case so the failure message belongs to it, not to the last shrinking attempt.
      const shrunkFailure = (() => { try { return runTrial(c, draws, seed, backend); } catch (e) { return (e as Error).message; } })();
      const shapes = trial.inputs.map((s) => `[${s.join(', ')}]`).join(', ');
      return {
        name: c.name,
        runs: out.numRuns,
        failure: shrunkFailure ?? failure ?? String(out.errorInstance),
        counterexample: `${named.join(' ')}; input shapes ${shapes}${trial.attrs ? `; attrs ${JSON.stringify(trial.attrs)}` : ''}; data seed ${seed}`,
      };
    }
  }
  return { name: c.name, runs: opts.numRuns * opts.backends.length };
}
