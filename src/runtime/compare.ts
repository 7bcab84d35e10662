// Compares a compiled graph's results with the float64 reference: the check behind every property test and
// behind `tsc-nn check-op`.
import { evaluateOutputs } from '../ir/reference';
import type { Graph } from '../ir/graph';
import { createBackend, createExecutor } from '../backends/registry';

export function relL2(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) { num += (ref[i]! - got[i]!) ** 2; den += ref[i]! ** 2; }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/**
 * Run `g` on a backend (results poisoned with NaN first) and compare every output with the float64 reference.
 * Returns a readable failure, or null when every output is NaN-free and within `tol` relative L2 error.
 */
export function compareWithReference(g: Graph, feeds: Readonly<Record<string, Float32Array>>, backend: string, tol = 1e-5): string | null {
  const ref = evaluateOutputs(g, feeds);
  const executor = createExecutor(g, createBackend(backend), { poison: true });
  let got: Record<string, Float32Array>;
  try { got = executor.run(feeds); } finally { executor.close(); }
  for (const [name, r] of Object.entries(ref)) {
    const o = got[name]!;
    if (o.length !== r.length) return `${backend} ${name}: ${o.length} values, reference has ${r.length}`;
    const nan = o.findIndex((v) => Number.isNaN(v));
    if (nan >= 0 && !Number.isNaN(r[nan]!)) return `${backend} ${name}: element ${nan} is NaN (not written or invalid)`;
    const err = relL2(r, o);
    if (!(err < tol)) return `${backend} ${name}: relative L2 error ${err.toExponential(2)} >= ${tol}`;
  }
  return null;
}
