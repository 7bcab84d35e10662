// Deterministic test data: one integer seed fully determines every value drawn.
import { Rng } from './data/rng';

/** `n` values uniform in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = Rng.derive(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r.next());
}
