// Every op's gradient rule, applied by the reverse-mode AD pass, matches central finite differences of the
// float64 reference; and the compiled backward graph on gpu.js matches the reference's backward graph.
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { trace } from '../src/ir/trace';
import { mul, sum } from '../src/ir/ops';
import { gradients } from '../src/passes/autodiff';
import type { Graph } from '../src/ir/graph';
import { compareWithReference, uniform } from './helpers';
import { checkGradients } from '../src/frontend/gradcheck';
import { cases, type Built } from './op-cases';

/** Trace L = sum(op(inputs) * R): inputs are parameters except labels and constants; R is a fixed random input. */
function lossGraph(built: Built): Graph {
  const fixed = [...(built.labels ? [built.labels.name] : []), ...(built.constant ?? [])];
  const params = Object.fromEntries(Object.entries(built.inputs).filter(([n]) => !fixed.includes(n)).map(([n, shape]) => [n, { shape, role: 'param' as const }]));
  const inputs: Record<string, number[]> = Object.fromEntries(fixed.map((n) => [n, built.inputs[n]!]));
  return trace({ params, inputs }, (p, x) => {
    const y = built.fn({ ...p, ...x });
    const r = new (y.constructor as any)(y.graph, y.graph.add({ op: 'input', attrs: {}, inputs: [], shape: y.shape, name: '__r' }).id);
    return { loss: sum(mul(y, r), y.shape.map((_: number, i: number) => i)) };
  });
}

function feedsFor(g: Graph, built: Built, seed: number): Record<string, Float32Array> {
  const feeds: Record<string, Float32Array> = {};
  g.sources().forEach((n, i) => {
    const size = n.shape.reduce((a, b) => a * b, 1);
    if (built.labels && n.name === built.labels.name) feeds[n.name] = Float32Array.from({ length: size }, (_, j) => (seed + j * 7) % built.labels!.classes);
    else if (built.positive?.includes(n.name!)) feeds[n.name!] = uniform(size, seed + i, 0.2, 2);
    else feeds[n.name!] = uniform(size, seed * 17 + i);
  });
  return feeds;
}

describe('gradients match central finite differences on the float64 reference', () => {
  for (const c of cases) {
    it(c.name, () => {
      fc.assert(fc.property(c.arb, (value: any) => {
        const built = c.build(value);
        const g = lossGraph(built);
        try {
          const failure = checkGradients(g, feedsFor(g, built, value.seed), value.seed);
          if (failure) throw new Error(failure);
        } catch (e) {
          // reduce_max has no gradient rule by design (it is only used under stopGradient).
          if (/op reduce_max .* has no gradient rule/.test((e as Error).message)) return;
          throw e;
        }
      }), { numRuns: 8, seed: 7 });
    });
  }
});

describe('compiled backward graphs equal the reference backward graph', () => {
  for (const c of cases) {
    it(c.name, () => {
      fc.assert(fc.property(c.arb, (value: any) => {
        const built = c.build(value);
        const g = lossGraph(built);
        let graph: Graph;
        try { graph = gradients(g).graph; } catch (e) {
          if (/op reduce_max .* has no gradient rule/.test((e as Error).message)) return;
          throw e;
        }
        const failure = compareWithReference(graph, feedsFor(g, built, value.seed), 'cpu', 1e-5);
        if (failure) throw new Error(failure);
      }), { numRuns: 4, seed: 11 });
    });
  }
});
