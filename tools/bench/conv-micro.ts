// The microbenchmark of issue 5: the 1x1 group convolutions ShuffleNet training spends most time in, alone, on tsc-nn's
// CPU backends (2 threads). On wasm against the ceiling the shared notes measured for hand-written WebAssembly SIMD on
// this machine; on native it is the ceiling itself, which `npm run bench` compares the whole training step with.
import { trace } from '../../src/ir/trace';
import * as ops from '../../src/ir/ops';
import { createBackend, createExecutor } from '../../src/backends/registry';
import type { ArenaExecutor } from '../../src/backends/arena';
import { uniform } from '../../src/runtime/random';
import { sizeOf } from '../../src/ir/graph';
import { median, timeSteps } from './measure';

/** Hand-written WebAssembly SIMD, 4 output channels x 8 pixels a block, on 2 workers (shared notes). */
export const CEILING_GFLOPS = { low: 70, high: 82 };

export const CONV_CASES = [
  { name: '[64,240,8,8] -> [64,60,8,8], g=3', x: [64, 240, 8, 8], w: [60, 80, 1, 1] },
  { name: '[64,120,16,16] -> [64,120,16,16], g=3', x: [64, 120, 16, 16], w: [120, 40, 1, 1] },
] as const;

export interface ConvResult { readonly backend: string; readonly name: string; readonly medianMs: number; readonly gflops: number; readonly minMs: number; readonly maxMs: number }

/** The kernel alone: inputs are fed once, then only the kernel runs (no copies in or out). */
export async function benchGroupConvs(steps = 30, backend: 'wasm' | 'native' = 'wasm'): Promise<ConvResult[]> {
  const results: ConvResult[] = [];
  for (const c of CONV_CASES) {
    const g = trace({ params: {}, inputs: { x: [...c.x], w: [...c.w] } }, (_p, t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    const executor = createExecutor(g, { ...createBackend(backend), threads: 2 }) as ArenaExecutor;
    executor.feed({ x: uniform(sizeOf(c.x), 1), w: uniform(sizeOf(c.w), 2) });
    try {
      const { times } = await timeSteps(() => executor.runKernels(), steps);
      const ms = median(times);
      const flops = 2 * executor.kernels.reduce((p, k) => p + k.macs, 0);
      results.push({ backend, name: c.name, medianMs: ms, minMs: Math.min(...times), maxMs: Math.max(...times), gflops: flops / (ms * 1e6) });
    } finally {
      executor.close();
    }
  }
  return results;
}
