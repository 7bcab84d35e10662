// The WebAssembly SIMD target: affine index forms, the schedule each kind of kernel gets (lanes, register blocks,
// merged reduction loops), guard bands, assembly errors, and the executor on two threads against the reference.
import { describe, expect, it } from 'vitest';
import { axis, bin, cst } from '../../src/ir/expr';
import { trace } from '../../src/ir/trace';
import * as ops from '../../src/ir/ops';
import type { Graph, Tensor } from '../../src/ir/graph';
import { lowerGraph } from '../../src/codegen/lower';
import { linConst, linKey, linOf, linVar, recombineDivMod, termsKey, type IndexEnv, type LoopVar } from '../../src/codegen/affine';
import { printWasmKernel, readReach } from '../../src/codegen/wasm';
import { assembleWat } from '../../src/codegen/assemble';
import { WasmExecutor } from '../../src/backends/wasm/executor';
import { wasmTarget } from '../../src/backends/wasm/features';
import { evaluateOutputs } from '../../src/ir/reference';
import { randomFeeds, relL2 } from '../helpers';

const loopVar = (name: string, align: number, max: number): LoopVar => ({ name, level: 1, align, max });
const envWith = (axes: ((offset: number) => ReturnType<typeof linVar>)[], offset: number): IndexEnv => ({
  axis: (i) => axes[i]!(offset),
  rvar: () => linConst(0),
});

describe('affine index forms', () => {
  const o = loopVar('o', 4, 56);
  const env = (j: number): IndexEnv => envWith([(k) => linVar(o, k)], j);
  it('(4k + j) // 20 is the same atom for every copy j < 4, and (4k + j) % 20 differs by j', () => {
    const group = bin('idiv', axis(0), cst(20));
    const rest = bin('mod', axis(0), cst(20));
    const keys = [0, 1, 2, 3].map((j) => linKey(linOf(group, env(j))));
    expect(new Set(keys).size).toBe(1);
    const r = [0, 1, 2, 3].map((j) => linOf(rest, env(j)));
    expect(new Set(r.map(termsKey)).size).toBe(1);
    expect(r.map((l) => l.c)).toEqual([0, 1, 2, 3]);
  });
  it('a variable that is a multiple of the divisor divides exactly', () => {
    const x = loopVar('x', 8, 24);
    const half = linOf(bin('idiv', bin('add', axis(0), cst(5)), cst(8)), envWith([(k) => linVar(x, k)], 0));
    expect(linKey(half)).toBe('1*idiv(1*x+0,8)+0');
    const quarter = linOf(bin('idiv', axis(0), cst(4)), envWith([(k) => linVar(x, k)], 0));
    expect(linKey(quarter)).toBe('1*idiv(1*x+0,4)+0');
  });
  it('products of two variables are not affine', () => {
    expect(() => linOf(bin('mul', axis(0), axis(0)), env(0))).toThrow(/not an affine/);
  });
});

function kernelOf(inputs: Record<string, number[]>, fn: (t: Record<string, Tensor>) => Tensor): { wat: string; k: ReturnType<typeof lowerGraph>[number]; splitAlign: number } {
  const g = trace({ params: {}, inputs }, (_p, x) => fn(x));
  const k = lowerGraph(g).at(-1)!;
  const src = printWasmKernel(k, { out: 1 << 20, inputs: k.inputs.map((_, i) => (2 + i) << 20) });
  return { wat: src.wat, k, splitAlign: src.splitAlign };
}
const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;

describe('the schedule of the kernels ShuffleNet spends its time in', () => {
  it('1x1 group conv: 4 output channels x 8 pixels per block, contiguous vector loads, no gathers', () => {
    const { wat } = kernelOf({ x: [2, 24, 8, 8], w: [12, 8, 1, 1] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    expect(count(wat, /f32x4\.add \(local\.get \$t\d+\)/g)).toBe(8);
    expect(wat).toContain('v128.load');
    expect(wat).not.toContain('replace_lane');
  });
  it('1x1 weight gradient: 2 x 4 outputs per block, lanes over the merged (y, x) plane, summed across lanes at the end', () => {
    const { wat, splitAlign } = kernelOf({ g: [4, 12, 8, 8], x: [4, 24, 8, 8] }, (t) => ops.conv2dGradWeight(t.g!, t.x!, [12, 8, 1, 1], { stride: 1, padding: 0, groups: 3 }));
    expect(wat).toContain('(i32.const 64)');
    expect(count(wat, /\(loop /g)).toBe(4); // o (blocked by 2), c (blocked by 4), n, and one loop over the 64-pixel plane
    // Per step of the plane: 2 gradient rows and 4 input rows loaded, 8 products.
    expect(count(wat, /v128\.load/g)).toBe(6);
    expect(count(wat, /f32x4\.mul/g)).toBe(8);
    expect(splitAlign).toBe(2); // the threads split o at an even index
    expect(wat).toContain('f32x4.extract_lane 3');
  });
  it('batch statistics (one output per iteration): 4 independent partial sums over the pixels, combined at the end', () => {
    const { wat } = kernelOf({ x: [4, 12, 8, 8] }, (t) => ops.sum(ops.mul(t.x!, t.x!), [0, 2, 3]));
    expect(count(wat, /v128\.load/g)).toBe(4); // 4 consecutive vectors per step of the 64-pixel plane
    expect(wat).toContain('(i32.const 16)'); // the plane loop steps by 16 floats
    expect(count(wat, /f32x4\.add \(f32x4\.add \(f32x4\.add/g)).toBe(1); // the 4 chains meet once per output
  });
  it('with relaxed SIMD, the 1x1 conv adds its 8 products per step as fused multiply-adds', () => {
    const g = trace({ params: {}, inputs: { x: [2, 24, 8, 8], w: [12, 8, 1, 1] } }, (_p, t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    const k = lowerGraph(g).at(-1)!;
    const { wat } = printWasmKernel(k, { out: 1 << 20, inputs: [2 << 20, 3 << 20] }, { fma: true });
    expect(count(wat, /f32x4\.relaxed_madd/g)).toBe(8);
    expect(count(wat, /f32x4\.add \(local\.get \$t\d+\)/g)).toBe(0);
  });
  it('3x3 depthwise conv with padding: lanes along x with per-lane bounds masks', () => {
    const { wat } = kernelOf({ x: [1, 4, 8, 8], w: [4, 1, 3, 3] }, (t) => ops.conv2d(t.x!, t.w!, { groups: 4, padding: 1 }));
    expect(wat).toContain('v128.bitselect');
    expect(wat).toMatch(/i32x4\.(lt|le)_s \(i32x4\.splat/);
  });
  it('reads past the edges are bounded: padding 1 on an 8x8 plane reaches 9 elements either side', () => {
    const { k } = kernelOf({ x: [1, 1, 8, 8], w: [1, 1, 3, 3] }, (t) => ops.conv2d(t.x!, t.w!, { padding: 1 }));
    expect(readReach(k)).toEqual({ below: 9, above: 9 });
  });
});

type Splits = { splits: { chunk: number; hi: number }[] };

/** Run `g` on the wasm executor (poisoned arena) and compare every output with the float64 reference. */
function expectReference(g: Graph, threads: number, seed: number, tol: number, inspect: (splits: Splits['splits']) => void = () => {}): void {
  const feeds = randomFeeds(g, seed);
  const executor = new WasmExecutor(g, threads, { poison: true });
  try {
    inspect((executor as unknown as Splits).splits);
    const got = executor.run(feeds);
    const want = evaluateOutputs(g, feeds);
    for (const key of Object.keys(want)) expect(relL2(want[key]!, got[key]!)).toBeLessThan(tol);
  } finally {
    executor.close();
  }
}

describe('assembly and execution', () => {
  it('a weight gradient blocked by 2 along its 6 output channels is shared in chunks of 2 channels and equals the reference', () => {
    const g = trace({ params: {}, inputs: { g: [8, 6, 16, 16], x: [8, 12, 16, 16] } }, (_p, t) => ops.conv2dGradWeight(t.g!, t.x!, [6, 4, 1, 1], { stride: 1, padding: 0, groups: 3 }));
    expectReference(g, 2, 5, 1e-5, (splits) => expect(splits.at(-1)).toEqual({ chunk: 2, hi: 6 }));
  });
  it('a keepdims reduction ([1, C, 1, 1]) splits its channels between the threads and equals the reference', () => {
    const g = trace({ params: {}, inputs: { dy: [16, 12, 16, 16], x: [16, 12, 16, 16] } }, (_p, t) => ops.sum(ops.mul(t.dy!, t.x!), [0, 2, 3], true));
    expectReference(g, 2, 6, 1e-5, (splits) => expect(splits.at(-1)).toEqual({ chunk: 2, hi: 12 }));
  });
  it('the executor uses the engine\'s fused multiply-add (relaxed SIMD, turned on for Node.js 20) and equals the reference', () => {
    expect(wasmTarget().fma).toBe(true);
    const g = trace({ params: {}, inputs: { x: [4, 24, 8, 8], w: [12, 8, 1, 1] } }, (_p, t) => ops.conv2d(t.x!, t.w!, { groups: 3 }));
    expectReference(g, 1, 7, 1e-6);
  });
  it('wabt errors name the problem', () => {
    expect(() => assembleWat('(module (func (i32.frobnicate)))')).toThrow(/wabt could not assemble the generated kernels: .*unexpected token "?i32\.frobnicate/s);
  });
  it('a kernel big enough to split runs on two threads and equals the reference', () => {
    const g = trace({ params: {}, inputs: { x: [8, 24, 16, 16], w: [24, 8, 1, 1] } }, (_p, t) => ops.relu(ops.conv2d(t.x!, t.w!, { groups: 3 })));
    expectReference(g, 2, 3, 1e-5, (splits) => expect(splits.some((s) => s.chunk < s.hi)).toBe(true));
  });
});

describe('recombining floor division', () => {
  it('7 * (p // 7) + (p % 7) is p; other multiples are left alone', () => {
    const p = loopVar('p', 16, 48);
    const env = envWith([(k) => linVar(p, k)], 3);
    const x = linOf(bin('add', bin('mul', bin('idiv', axis(0), cst(7)), cst(7)), bin('mod', axis(0), cst(7))), env);
    expect(linKey(recombineDivMod(x))).toBe(linKey(linVar(p, 3)));
    const y = linOf(bin('add', bin('mul', bin('idiv', axis(0), cst(7)), cst(8)), bin('mod', axis(0), cst(7))), env);
    expect(linKey(recombineDivMod(y))).toBe(linKey(y));
  });
});
