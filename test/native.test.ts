// The native backend: C kernels built by the system compiler. Its op and ShuffleNet reference tests run with every
// backend (ops.property.test.ts, shufflenet.test.ts); here: the C schedule, training against wasm step by step,
// the build cache, and what happens without a working compiler. Skips with a message where no C compiler works.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import type { Tensor } from '../src/ir/graph';
import { lowerGraph } from '../src/codegen/lower';
import { printCKernel } from '../src/codegen/c';
import { availableBackends, createBackend, createExecutor } from '../src/backends/registry';
import { toolchain } from '../src/backends/native/toolchain';
import type { NativeExecutor } from '../src/backends/native/executor';
import { shufflenet } from '../src/models/shufflenet';
import { compilePrograms } from '../src/api/programs';
import { initParams } from '../src/runtime/init';
import { TrainStep } from '../src/runtime/session';
import { evaluateOutputs } from '../src/ir/reference';
import { randomFeeds, relL2, uniform } from './helpers';
import { useTempDir } from './data/helpers';

const root = path.resolve(__dirname, '..');
const hasNative = availableBackends().includes('native');
if (!hasNative) console.warn(`native tests skipped: ${(toolchain() as { error?: string }).error ?? 'the native backend does not start'}`);

function cKernel(inputs: Record<string, number[]>, fn: (t: Record<string, Tensor>) => Tensor, maxLanes = 16): string {
  const g = trace({ params: {}, inputs }, (_p, x) => fn(x));
  const k = lowerGraph(g).at(-1)!;
  return printCKernel(k, { out: 1 << 20, inputs: k.inputs.map((_, i) => (2 + i) << 20) }, { maxLanes }).text;
}
const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;

describe('the C schedule', () => {
  it('1x1 group conv on an 8x8 map: the plane is one 64-pixel axis, 16-lane vectors, 4 channels x 4 vectors a block, no gathers', () => {
    const c = cKernel({ x: [2, 24, 8, 8], w: [12, 8, 1, 1] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    expect(c).toContain('vfu16');
    expect(count(c, /^t\d+ = \(t\d+ \+ t\d+\);$/gm)).toBe(16);
    expect(c).not.toMatch(/\(\(vf16\)\{[^}]*,/);
    expect(c).toMatch(/a2 < 64; a2 \+= 64/);
    expect(c).toMatch(/a1 < 12; a1 \+= 4/);
  });
  it('1x1 conv on a 7x7 map: the 49 pixels are one lane axis, read as contiguous vectors (h * 7 + w is p again)', () => {
    const c = cKernel({ x: [2, 24, 7, 7], w: [12, 8, 1, 1] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    expect(c).toMatch(/a2 < 48; a2 \+= 16/);
    expect(c).not.toMatch(/\(\(vf16\)\{[^}]*,/);
    expect(c).toContain('vfu16');
  });
  it('a 44-wide row (too wide to merge) ends in 8- and 4-lane vectors, not 12 scalar steps', () => {
    const c = cKernel({ x: [2, 24, 3, 44], w: [12, 8, 1, 1] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    expect(c).toMatch(/a3 = 0; a3 < 32; a3 \+= 16/);
    expect(c).toMatch(/a3 = 32; a3 < 40; a3 \+= 8/);
    expect(c).toMatch(/a3 = 40; a3 < 44; a3 \+= 4/);
    expect(c).not.toMatch(/a3 \+= 1\)/);
  });
  it('the machine width bounds the lanes: 8 with AVX2, 4 without', () => {
    const conv = (lanes: number): string => cKernel({ x: [2, 24, 8, 8], w: [12, 8, 1, 1] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }), lanes);
    expect(conv(8)).toContain('vfu8');
    expect(conv(8)).not.toContain('vfu16');
    expect(conv(4)).toContain('vfu4');
    expect(conv(4)).not.toContain('vfu8');
  });
  it('a weight gradient [C, C\', 1, 1] vectorises its reduction over the pixels and sums its 16 accumulators\' lanes by a shuffle tree', () => {
    const c = cKernel({ dy: [4, 8, 8, 8], x: [4, 16, 8, 8] }, (t) => ops.conv2dGradWeight(t.dy!, t.x!, [8, 16, 1, 1], { stride: 1, padding: 0, groups: 1 }));
    // 16 accumulators fold pairwise (8 + 4 + 2 + 1 = 15 vector adds of two shuffles each) into one vector of 16 sums.
    expect(c.match(/__builtin_shuffle\(/g)).toHaveLength(30);
    expect(c).not.toMatch(/hsum16\(/);
    for (let lane = 0; lane < 16; lane++) expect(c).toMatch(new RegExp(`\\bt\\d+\\[${lane}\\]`));
  });
});

describe.skipIf(!hasNative)('the native backend', () => {
  const tmp = useTempDir('tsc-nn-native-');

  it('runs a small graph as the float64 reference does, and a second executor loads the cached library', () => {
    const g = trace({ params: {}, inputs: { x: [3, 5, 7, 9], w: [4, 5, 3, 3] } }, (_p, t) => ops.relu(ops.conv2d(t.x!, t.w!, { padding: 1 })));
    const feeds = randomFeeds(g, 3);
    const ref = Object.values(evaluateOutputs(g, feeds))[0]!;
    const cache = path.join(tmp(), 'cache');
    process.env.TSC_NN_CACHE = cache;
    try {
      const first = createExecutor(g, createBackend('native'));
      const got = Object.values(first.run(feeds))[0]!;
      expect(relL2(Float64Array.from(got), ref)).toBeLessThan(1e-6);
      first.close();
      const libraries = fs.readdirSync(path.join(cache, 'native'));
      expect(libraries.filter((f) => f.endsWith('.node'))).toHaveLength(1);
      const mtime = fs.statSync(path.join(cache, 'native', libraries.find((f) => f.endsWith('.node'))!)).mtimeMs;
      const second = createExecutor(g, createBackend('native'));
      expect(Array.from(Object.values(second.run(feeds))[0]!)).toEqual(Array.from(got));
      second.close();
      expect(fs.statSync(path.join(cache, 'native', libraries.find((f) => f.endsWith('.node'))!)).mtimeMs).toBe(mtime);
      expect(fs.readdirSync(path.join(cache, 'native'))).toEqual(libraries);
    } finally {
      delete process.env.TSC_NN_CACHE;
    }
  });

  // Summation order differs (16 lanes and 4 partial sums against wasm's 4 lanes). Batch means of BN inputs and BN
  // bias gradients are sums that nearly cancel (values ~1e-8 of terms ~1): both backends are equally far from a
  // float64 sum there (measured 3.3e-9 and 3.6e-9) but not from each other, and that difference reaches the BN
  // parameters; the losses and the parameters as a whole agree (measured after 4 steps: losses 4.3e-4 apart relative,
  // parameters 1.8e-4). Against float64, native is as close as wasm (shufflenet.test.ts).
  it('lane sums of 1 accumulator, of 8 (shuffle tree, then each run folded onto its first lane) and of 16 equal the reference', () => {
    for (const [co, ci] of [[1, 2], [2, 4], [4, 4], [8, 12]] as const) {
      const g = trace({ params: {}, inputs: { dy: [3, co, 8, 8], x: [3, ci, 8, 8] } }, (_p, t) => ops.conv2dGradWeight(t.dy!, t.x!, [co, ci, 1, 1], { stride: 1, padding: 0, groups: 1 }));
      const feeds = randomFeeds(g, 5);
      const ref = Object.values(evaluateOutputs(g, feeds))[0]!;
      const executor = createExecutor(g, createBackend('native'));
      try {
        expect(relL2(Float64Array.from(Object.values(executor.run(feeds))[0]!), ref), `[${co}, ${ci}, 1, 1]`).toBeLessThan(1e-6);
      } finally {
        executor.close();
      }
    }
  });

  it('times each kernel inside whole runs (kernel-profile --in-step): one mean per kernel, within the runs\' wall time', () => {
    const g = trace({ params: {}, inputs: { x: [8, 32, 16, 16], w: [32, 32, 3, 3] } }, (_p, t) => ops.relu(ops.conv2d(t.x!, t.w!, { padding: 1 })));
    const executor = createExecutor(g, createBackend('native')) as NativeExecutor;
    try {
      executor.run(randomFeeds(g, 4));
      const start = performance.now();
      const times = executor.timeKernelsInRuns(5);
      const wallPerRun = (performance.now() - start) / 5;
      expect(times).toHaveLength(executor.kernels.length);
      const conv = executor.kernels.findIndex((k) => k.ops.includes('conv2d'));
      const relu = executor.kernels.findIndex((k) => k.ops.join() === 'relu');
      // 18.9 M multiply-adds against 65,536 comparisons: the convolution takes most of a run.
      expect(times[conv]!).toBeGreaterThan(times[relu]!);
      expect(times[relu]!).toBeGreaterThan(0);
      expect(times.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(wallPerRun);
    } finally {
      executor.close();
    }
  });

  it('ShuffleNet 0.5x trains step by step as on wasm: losses and all parameters after 4 steps agree within float32 rounding', async () => {
    const config = shufflenet.configure!({ size: '0.5x', group: 3 });
    const batch = 8;
    const program = await compilePrograms(shufflenet, config, 'train', batch);
    const params = initParams(shufflenet.params(config), 5);
    const steps = (backend: 'native' | 'wasm'): { losses: number[]; tensors: Map<string, Float32Array> } => {
      const step = new TrainStep(program.graph, createBackend(backend), params);
      const losses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const image = uniform(batch * 3 * 32 * 32, 10 + i);
        const label = Float32Array.from({ length: batch }, (_, j) => (j + i) % 10);
        losses.push(step.run(image, label, 0.01).loss);
      }
      step.close();
      return { losses, tensors: step.tensors };
    };
    const native = steps('native');
    const wasm = steps('wasm');
    native.losses.forEach((l, i) => expect(Math.abs(l - wasm.losses[i]!) / wasm.losses[i]!, `step ${i + 1}`).toBeLessThan(1e-3));
    expect(native.losses[3]).not.toBe(native.losses[0]);
    const names = [...wasm.tensors.keys()].filter((n) => !n.startsWith('momentum.'));
    const flat = (m: Map<string, Float32Array>): Float32Array => Float32Array.from(names.flatMap((n) => Array.from(m.get(n)!)));
    expect(relL2(flat(wasm.tensors), flat(native.tensors))).toBeLessThan(1e-3);
  }, 300_000);
});

describe('without a working C compiler', () => {
  const cli = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
  const small = ['--size', '0.5x', '--batch', '2', '--steps', '1', '--json'];

  it('--backend native is one line naming the compiler and what to install, exit 1', () => {
    const r = cli({ CC: '/nonexistent/cc' }, 'bench', '--backend', 'native', ...small);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/backend native cannot start: native: no C compiler: `\/nonexistent\/cc --version` failed \(install gcc/);
  });
  it.skipIf(!hasNative)('flags the compiler rejects (TSC_NN_CFLAGS) are one line naming them, exit 1', () => {
    const r = cli({ TSC_NN_CFLAGS: '-fno-such-flag' }, 'bench', '--backend', 'native', ...small);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/backend native cannot start: native: cc cannot build a shared library with .*-fno-such-flag/);
  });
  it('auto runs wasm instead, and says so', () => {
    const r = cli({ CC: '/nonexistent/cc' }, 'bench', '--backend', 'auto', ...small);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).backend).toBe('wasm');
  });
});
