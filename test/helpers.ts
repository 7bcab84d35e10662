// Shared test helpers: deterministic data, the relative-L2 comparison, and running a graph on every backend.
import { evaluateOutputs } from '../src/ir/reference';
import { availableBackends, createBackend, type BackendName } from '../src/runtime/backend';
import { GraphExecutor } from '../src/runtime/executor';
import { sizeOf, type Graph } from '../src/ir/graph';

/** A small deterministic PRNG (mulberry32) so a fast-check seed fully determines the data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const uniform = (n: number, seed: number, lo = -1, hi = 1): Float32Array => {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
};

/** Feeds for every source of a graph: uniform data, with per-name overrides. */
export function randomFeeds(g: Graph, seed: number, overrides: Record<string, Float32Array> = {}): Record<string, Float32Array> {
  const feeds: Record<string, Float32Array> = {};
  g.sources().forEach((n, i) => { feeds[n.name!] = overrides[n.name!] ?? uniform(sizeOf(n.shape), seed * 131 + i); });
  return feeds;
}

export function relL2(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) { num += (ref[i]! - got[i]!) ** 2; den += ref[i]! ** 2; }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Backends these tests run on: cpu and webasm always; gl where headless-gl and a display work. */
export const testBackends: BackendName[] = availableBackends();

/**
 * Run `g` on a backend (outputs poisoned with NaN first) and compare every output with the float64 reference.
 * Returns a readable failure string, or null when every output is within `tol` relative L2 and NaN-free.
 */
export function compareWithReference(g: Graph, feeds: Record<string, Float32Array>, backend: BackendName, tol = 1e-5): string | null {
  const ref = evaluateOutputs(g, feeds);
  const got = new GraphExecutor(g, createBackend(backend), { poison: true }).run(feeds);
  for (const [name, r] of Object.entries(ref)) {
    const o = got[name]!;
    if (o.length !== r.length) return `${backend} ${name}: ${o.length} values, reference has ${r.length}`;
    const nan = o.findIndex((v) => Number.isNaN(v));
    if (nan >= 0) return `${backend} ${name}: element ${nan} is NaN (not written or invalid)`;
    const err = relL2(r, o);
    if (!(err < tol)) return `${backend} ${name}: relative L2 error ${err.toExponential(2)} >= ${tol}`;
  }
  return null;
}
