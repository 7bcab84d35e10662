// Tensors past 2^24 elements: a float32 flat index is no longer exact there, so codegen must use 2-D views.
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { createExecutor } from '../src/runtime/executor';
import { createBackend } from '../src/runtime/backend';
import { layoutFor } from '../src/codegen/lower';
import { testBackends } from './helpers';

describe('a tensor of more than 2^24 elements', () => {
  const shape = [2, 4099, 2048]; // 16,789,504 elements > 16,777,216
  const size = shape.reduce((a, b) => a * b, 1);

  it('is laid out as a 2-D view with exact row and column indices', () => {
    expect(size).toBeGreaterThan(2 ** 24);
    expect(layoutFor(shape)).toEqual({ shape, split: 1 });
  });

  // gpu.js's WebGPU kernels dispatch a 2-D output's columns in one dimension, which passes the device's workgroup
  // limit at this size: a clear error naming the kernel, never a wrong result (a known gap, see README).
  it.runIf(testBackends.includes('webgpu'))('is a clear error on webgpu, naming the kernel and the limit', () => {
    const g = trace({ params: {}, inputs: { x: shape } }, (_p, { x }) => ops.affine(ops.transpose(x!, [0, 1, 2]), 2, 1));
    const executor = createExecutor(g, createBackend('webgpu'));
    try {
      expect(() => executor.run({ x: new Float32Array(size) })).toThrow(/kernel k\d+_\w+ \[2, 4099, 2048\]: .*workgroups, over this device's limit/);
    } finally {
      executor.close();
    }
  });

  it.each(testBackends.filter((b) => b !== 'gl' && b !== 'webgpu'))('computes every element correctly on %s', (backend) => {
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
});
