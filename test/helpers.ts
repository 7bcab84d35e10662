// Shared test helpers: deterministic feeds and the backends to run on.
import { availableBackends, type BackendName } from '../src/backends/registry';
import { sizeOf, type Graph } from '../src/ir/graph';
import { uniform } from '../src/runtime/random';

export { compareWithReference, relL2 } from '../src/runtime/compare';
export { uniform } from '../src/runtime/random';
export { Rng } from '../src/runtime/data/rng';

/** Feeds for every source of a graph: uniform data, with per-name overrides. */
export function randomFeeds(g: Graph, seed: number, overrides: Record<string, Float32Array> = {}): Record<string, Float32Array> {
  const feeds: Record<string, Float32Array> = {};
  g.sources().forEach((n, i) => { feeds[n.name!] = overrides[n.name!] ?? uniform(sizeOf(n.shape), seed * 131 + i); });
  return feeds;
}

/** Backends these tests run on: cpu and webasm always; gl where headless-gl and a display work. */
export const testBackends: BackendName[] = availableBackends();
