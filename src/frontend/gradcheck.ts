// Gradient checking: the AD pass's gradients of a scalar `loss` output against central finite differences of the
// float64 reference, at a few random coordinates of every parameter. Used by the tests and by `tsc-nn check-op`.
import type { Graph } from '../ir/graph';
import { evaluate, evaluateOutputs } from '../ir/reference';
import { gradients } from '../passes/autodiff';
import { Rng } from '../runtime/data/rng';

export interface GradCheckOptions {
  /** Coordinates sampled per parameter. */
  readonly coordinates?: number;
  /**
   * Skip coordinates where the one-sided differences disagree: they sit on a kink (a ReLU or max switching within
   * the step). Fails when more than a quarter of the checked coordinates had to be skipped.
   */
  readonly skipKinks?: boolean;
}

/** Returns a readable mismatch, or null when every sampled coordinate agrees. */
export function checkGradients(g: Graph, feeds: Readonly<Record<string, ArrayLike<number>>>, seed: number, opts: GradCheckOptions = {}): string | null {
  const grads = evaluateOutputs(gradients(g).graph, feeds);
  const lossIndex = g.output('loss').id;
  const base: Record<string, Float64Array> = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, Float64Array.from(v)]));
  const loss = (): number => evaluate(g, base)[lossIndex]![0]!;
  const center = opts.skipKinks ? loss() : 0;
  const rng = Rng.derive(seed);
  const h = 1e-5;
  let checked = 0;
  let skipped = 0;
  for (const p of g.sources('param')) {
    const ad = grads[`grad:${p.name}`]!;
    const x = base[p.name!]!;
    for (let t = 0; t < Math.min(opts.coordinates ?? 6, x.length); t++) {
      const i = rng.int(x.length);
      const orig = x[i]!;
      x[i] = orig + h; const up = loss();
      x[i] = orig - h; const down = loss();
      x[i] = orig;
      if (opts.skipKinks) {
        const forward = (up - center) / h;
        const backward = (center - down) / h;
        if (Math.abs(forward - backward) > 1e-3 * Math.max(Math.abs(forward), Math.abs(backward)) + 1e-4) { skipped++; continue; }
      }
      checked++;
      const fd = (up - down) / (2 * h);
      if (!(Math.abs(ad[i]! - fd) <= 1e-6 + 1e-4 * Math.max(Math.abs(fd), Math.abs(ad[i]!)))) {
        return `d loss / d ${p.name}[${i}]: AD ${ad[i]} vs finite differences ${fd}`;
      }
    }
  }
  if (skipped > checked / 4) return `${skipped} coordinates on kinks, only ${checked} checked`;
  return null;
}
