// Tensors past 2^24 elements: a float32 flat index is no longer exact there, so codegen must use 2-D views.
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { createBackend, createExecutor } from '../src/backends/registry';
import { layoutFor } from '../src/codegen/lower';
import { testBackends } from './helpers';

describe('a tensor of more than 2^24 elements', () => {
  const shape = [2, 4099, 2048]; // 16,789,504 elements > 16,777,216
  const size = shape.reduce((a, b) => a * b, 1);

  it('is laid out as the most balanced 2-D view with exact row and column indices', () => {
    expect(size).toBeGreaterThan(2 ** 24);
    // rows 8,198 x cols 2,048: each stays far below WebGPU's 65,535 x 8 threads per dispatch axis.
    expect(layoutFor(shape)).toEqual({ shape, split: 2 });
  });

  it.each(testBackends)('computes every element correctly on %s', (backend) => {
    const g = trace({ params: {}, inputs: { x: shape } }, (_p, { x }) => ops.affine(ops.transpose(x!, [0, 1, 2]), 2, 1));
    // Values encode their own index, so a read of a neighbouring element (the 2^24 trap) is detected.
    const x = new Float32Array(size);
    for (let i = 0; i < size; i++) x[i] = (i % 1_000_003) - 500_000;
    const executor = createExecutor(g, createBackend(backend), { poison: true });
    const out = executor.run({ x }).out!;
    executor.close();
    expect(out.length).toBe(size);
    let bad = -1;
    for (let i = 0; i < size; i++) if (out[i] !== 2 * x[i]! + 1) { bad = i; break; }
    expect(bad).toBe(-1);
  });

  // [2, 8388609] has one 2-D view only, 8,388,609 columns: past WebGPU's 65,535 workgroups of 8 on one axis.
  it.runIf(testBackends.includes('webgpu'))('is a clear error on webgpu when no view fits the dispatch limit', () => {
    const narrow = [2, 8_388_609];
    const g = trace({ params: {}, inputs: { x: narrow } }, (_p, { x }) => ops.affine(x!, 2, 1));
    const executor = createExecutor(g, createBackend('webgpu'));
    try {
      expect(() => executor.run({ x: new Float32Array(2 * 8_388_609) })).toThrow(/kernel k\d+_\w+ \[2, 8388609\]: .*workgroups, over this device's limit/);
    } finally {
      executor.close();
    }
  });
});
