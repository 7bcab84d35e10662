// Every built-in op, compiled to gpu.js, equals the float64 reference on shapes and attributes fast-check draws.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { createBackend } from '../src/backends/registry';
import { compareWithReference, randomFeeds, testBackends, uniform } from './helpers';
import { cases, convArb, type OpCase } from './op-cases';

function runCase<T>(c: OpCase<T>, value: T & { seed: number }, backend: string): string | null {
  const built = c.build(value);
  const g = trace({ params: {}, inputs: built.inputs }, (_p, x) => built.fn(x));
  const overrides: Record<string, Float32Array> = {};
  for (const name of built.positive ?? []) overrides[name] = uniform(built.inputs[name]!.reduce((a, b) => a * b, 1), value.seed + 7, 0.1, 2);
  if (built.labels) {
    const n = built.inputs[built.labels.name]![0]!;
    overrides[built.labels.name] = Float32Array.from({ length: n }, (_, i) => (value.seed + i * 7) % built.labels!.classes);
  }
  return compareWithReference(g, randomFeeds(g, value.seed, overrides), backend as never);
}

describe.each(testBackends)('ops on the %s backend equal the float64 reference', (backend) => {
  for (const c of cases) {
    it(c.name, () => {
      fc.assert(fc.property(c.arb, (value) => {
        const failure = runCase(c, value, backend);
        if (failure) throw new Error(failure);
      }), { numRuns: 12, seed: 42 });
    });
  }
});

describe('property counterexamples are readable', () => {
  it('a failing property reports the drawn shapes and attributes by name', () => {
    const out = fc.check(fc.property(convArb, (c) => c.groups < 2), { seed: 1 });
    expect(out.failed).toBe(true);
    expect(fc.defaultReportMessage(out)).toMatch(/"groups":2/);
  });
});

describe('the js backend splits large kernels across threads', () => {
  it('a grouped conv with a 64k-element output equals the reference on 2 threads', () => {
    const g = trace({ params: {}, inputs: { x: [4, 16, 32, 32], w: [16, 8, 3, 3] } }, (_p, t) => ops.relu(ops.conv2d(t.x!, t.w!, { padding: 1, groups: 2 })));
    expect(createBackend('js').threads).toBeGreaterThanOrEqual(1);
    expect(compareWithReference(g, randomFeeds(g, 5), 'js')).toBeNull();
  });
});
