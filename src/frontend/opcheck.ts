// Property-testing a custom op: fast-check draws shapes (and attributes) through `draw`, random data fills the
// inputs, and the compiled op must equal the float64 reference on every backend asked for; when every op it uses
// has a gradient rule, its gradients must match central finite differences. Failures report the shrunk draw.
import fc from 'fast-check';
import { isSource, sizeOf, type Tensor } from '../ir/graph';
import { lookupOp } from '../ir/op';
import { mul, sum } from '../ir/ops';
import { checkGradients } from './gradcheck';
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

export interface OpCheckResult {
  readonly name: string;
  readonly runs: number;
  /** Whether gradients were checked against finite differences (every op traced has a gradient rule). */
  readonly gradients: boolean;
  readonly failure?: string;
  readonly counterexample?: string;
}

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

function inputFeeds(c: OpCheck, inputs: readonly (readonly number[])[], seed: number): Record<string, Float32Array> {
  return Object.fromEntries(inputs.map((s, i) => {
    const positive = c.positive?.includes(i);
    return [`x${i}`, uniform(sizeOf(s), seed + i, positive ? 0.1 : -1, positive ? 2 : 1)];
  }));
}

/** The compiled op on `backend` against the float64 reference. */
function runTrial(c: OpCheck, draws: readonly number[], seed: number, backend: string): string | null {
  const { trial } = replay(c, draws);
  const shapes = Object.fromEntries(trial.inputs.map((s, i) => [`x${i}`, s]));
  const g = trace({ params: {}, inputs: shapes }, (_p, x) => c.apply(trial.inputs.map((_, i) => x[`x${i}`]!), trial.attrs ?? {}));
  return compareWithReference(g, inputFeeds(c, trial.inputs, seed), backend);
}

/** Gradients of sum(op(inputs) * R) from the AD pass against finite differences of the reference. */
function gradientTrial(c: OpCheck, draws: readonly number[], seed: number): string | null {
  const { trial } = replay(c, draws);
  const params = Object.fromEntries(trial.inputs.map((s, i) => [`x${i}`, { shape: s, role: 'param' as const }]));
  const probe = trace({ params, inputs: {} }, (p) => c.apply(trial.inputs.map((_, i) => p[`x${i}`]!), trial.attrs ?? {}));
  const outShape = probe.output('out').shape;
  const g = trace({ params, inputs: { r: outShape } }, (p, x) => {
    const y = c.apply(trial.inputs.map((_, i) => p[`x${i}`]!), trial.attrs ?? {});
    return { loss: sum(mul(y, x.r!), outShape.map((_, i) => i)) };
  });
  return checkGradients(g, { ...inputFeeds(c, trial.inputs, seed), r: uniform(sizeOf(outShape), seed + 99) }, seed);
}

/** Whether every op the check traces has a gradient rule (then gradients are checked too). */
function differentiable(c: OpCheck): boolean {
  const { trial } = replay(c, new Array<number>(MAX_DRAWS).fill(0));
  const g = trace({ params: {}, inputs: Object.fromEntries(trial.inputs.map((s, i) => [`x${i}`, s])) },
    (_p, x) => c.apply(trial.inputs.map((_, i) => x[`x${i}`]!), trial.attrs ?? {}));
  return g.nodes.every((n) => isSource(n) || lookupOp(n.op)?.vjp !== undefined);
}

export function runOpCheck(c: OpCheck, opts: { backends: readonly string[]; numRuns: number; seed?: number }): OpCheckResult {
  const arb = fc.record({ draws: fc.array(fc.nat({ max: 1_000_000 }), { minLength: MAX_DRAWS, maxLength: MAX_DRAWS }), seed: fc.integer({ min: 1, max: 1_000_000 }) });
  const withGradients = differentiable(c);
  const phases = [
    ...opts.backends.map((b) => ({ run: (draws: readonly number[], seed: number) => runTrial(c, draws, seed, b) })),
    ...(withGradients ? [{ run: (draws: readonly number[], seed: number) => gradientTrial(c, draws, seed) }] : []),
  ];
  for (const phase of phases) {
    let failure = '';
    const out = fc.check(fc.property(arb, ({ draws, seed }) => {
      const f = phase.run(draws, seed);
      if (f) { failure = f; return false; }
      return true;
    }), { numRuns: opts.numRuns, seed: opts.seed });
    if (out.failed) {
      const { draws, seed } = out.counterexample![0];
      const { trial, named } = replay(c, draws);
      // Re-run the shrunk case so the failure message belongs to it, not to the last shrinking attempt.
      const shrunkFailure = (() => { try { return phase.run(draws, seed); } catch (e) { return (e as Error).message; } })();
      const shapes = trial.inputs.map((s) => `[${s.join(', ')}]`).join(', ');
      return {
        name: c.name,
        runs: out.numRuns,
        gradients: withGradients,
        failure: shrunkFailure ?? failure ?? String(out.errorInstance),
        counterexample: `${named.join(' ')}; input shapes ${shapes}${trial.attrs ? `; attrs ${JSON.stringify(trial.attrs)}` : ''}; data seed ${seed}`,
      };
    }
  }
  return { name: c.name, runs: opts.numRuns * phases.length, gradients: withGradients };
}
