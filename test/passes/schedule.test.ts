// Scheduling: optimizer updates move to right after their inputs exist. Checked for equal results (float64
// reference and gpu.js cpu), for the position of every update, and for what it saves on ShuffleNet.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { isSource, type Graph } from '../../src/ir/graph';
import { scheduleUpdatesEarly } from '../../src/passes/schedule';
import { passesFor, runPasses } from '../../src/passes/pipeline';
import { planMemory } from '../../src/passes/memory-plan';
import { buildGraph } from '../../src/frontend/build';
import { shufflenet } from '../../src/models/shufflenet';
import { equivalence, feedsFor, property, unitArb, unitTrainGraph } from './common';

/** The training pipeline without its last pass (the schedule): the program as it was ordered before. */
const beforeScheduling = (traced: Graph): Graph => runPasses(traced, passesFor('train').slice(0, -1)).graph;

/** Null when every update directly follows its last computed input, or other updates that do. */
function updatesFollowInputs(g: Graph): string | null {
  for (const n of g.nodes) {
    if (n.phase !== 'optimizer' || isSource(n)) continue;
    const ready = Math.max(-1, ...n.inputs.filter((i) => !isSource(g.node(i))).map((i) => i));
    const between = g.nodes.slice(ready + 1, n.id).find((m) => m.phase !== 'optimizer' && !isSource(m));
    if (between) return `update %${n.id} (${n.op}) waits behind %${between.id} (${between.op}) after its inputs were ready at %${ready}`;
  }
  return null;
}

describe('update scheduling', () => {
  it('ShuffleNet units: same results, every update right after its inputs', () => {
    property(fc.record({ u: unitArb }), ({ u }) => {
      const before = beforeScheduling(unitTrainGraph(u, { head: true }));
      const { graph, record } = scheduleUpdatesEarly(before);
      expect(record.moved).toBeGreaterThan(0);
      // gpu.js cpu stores float32 between kernels: updates of small gradients agree to 1e-4, as in the gradient tests.
      return updatesFollowInputs(graph) ?? equivalence(before, graph, feedsFor(before, u.seed, 3), 1e-4);
    }, 8, 701);
  });

  it('ShuffleNet 0.5x g3 training step: over a quarter less memory alive at once', () => {
    const traced = buildGraph(shufflenet, shufflenet.configure!({ size: '0.5x', group: 3 }), { batch: 2, mode: 'train' });
    const before = planMemory(beforeScheduling(traced)).liveBytes;
    const after = planMemory(runPasses(traced, passesFor('train')).graph).liveBytes;
    console.log(`most bytes alive at once: ${before} before scheduling, ${after} after`);
    expect(after).toBeLessThan(0.75 * before);
  });
});
