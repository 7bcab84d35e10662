// Where gpu.js's generated WGSL spends the time: single kernels of ShuffleNet run alone on the webgpu backend
// (a graph of one op, timed through the executor: upload, the kernel, read-back), with the WGSL gpu.js generated.
// Usage: node dist/tools/bench/webgpu-kernels.js [--runs 10] [--wgsl DIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { sizeOf, type Tensor } from '../../src/ir/graph';
import { trace } from '../../src/ir/trace';
import * as ops from '../../src/ir/ops';
import { WebGpuExecutor } from '../../src/backends/webgpu/executor';
import { uniform } from '../../src/runtime/random';
import { median } from './measure';
import { positiveInt } from '../commands/common';

const CASES: readonly { name: string; inputs: Record<string, number[]>; op: (t: Record<string, Tensor>) => Tensor }[] = [
  { name: '1x1-group-conv', inputs: { x: [64, 240, 8, 8], w: [60, 80, 1, 1] }, op: (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }) },
  { name: '3x3-depthwise-conv', inputs: { x: [64, 60, 8, 8], w: [60, 1, 3, 3] }, op: (t) => ops.conv2d(t.x!, t.w!, { groups: 60, padding: 1 }) },
  { name: 'relu', inputs: { x: [64, 240, 8, 8] }, op: (t) => ops.relu(t.x!) },
];

function main(): void {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, wgsl: { type: 'string' } } });
  const runs = positiveInt('runs', values.runs, 10);
  for (const c of CASES) {
    const g = trace({ params: {}, inputs: c.inputs }, (_p, t) => c.op(t));
    const executor = new WebGpuExecutor(g);
    try {
      const feeds = Object.fromEntries(g.sources().map((n, i) => [n.name!, uniform(sizeOf(n.shape), i + 1)]));
      executor.run(feeds);
      const times = Array.from({ length: runs }, () => { const t = performance.now(); executor.run(feeds); return performance.now() - t; });
      const ms = median(times);
      const k = executor.kernels[0]!;
      const outputs = sizeOf(k.output.shape);
      console.log(JSON.stringify({ kernel: c.name, device: executor.device, ms: Number(ms.toFixed(2)), gflops: (2 * k.macs) / ms / 1e6, megaOutputsPerSec: outputs / ms / 1e3 }));
      if (values.wgsl) {
        fs.mkdirSync(values.wgsl, { recursive: true });
        fs.writeFileSync(path.join(values.wgsl, `${c.name}.wgsl`), executor.shaderSources()[0]!);
      }
    } finally {
      executor.close();
    }
  }
}

try {
  main();
} catch (e) {
  console.error(`webgpu-kernels: ${(e as Error).message.split('\n')[0]}`);
  process.exit(1);
}
