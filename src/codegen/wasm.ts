// The WebAssembly SIMD target: the vector printer's schedule (vector-printer.ts) spelled as one WAT function
// `(param $lo i32) (param $hi i32)` per kernel, 4 lanes (f32x4), over one shared linear memory.
import type { LoweredKernel } from './lower';
import { printVectorKernel, type CompareOp, type KernelAddresses, type ValueType, type VectorSyntax } from './vector-printer';

export { readReach, type KernelAddresses } from './vector-printer';

export const LANES = 4;

export interface WasmKernelSource {
  readonly name: string;
  /** A WAT `func`, exported under `name`. */
  readonly wat: string;
  /** Extent of the split axis (the outermost longer than 1) when [lo, hi) may be a slice of it; 0 when it computes everything. */
  readonly splitExtent: number;
  /** lo and hi must be multiples of this (the outermost axis is register-blocked by it). */
  readonly splitAlign: number;
}

/** What the engine running the kernels offers. */
export interface WasmTarget {
  /** Relaxed SIMD's f32x4.relaxed_madd: vector sums of products become fused multiply-adds. */
  readonly fma: boolean;
}

const f32 = (v: number): string => `(f32.const ${v === Infinity ? '3.4028234663852886e+38' : v === -Infinity ? '-3.4028234663852886e+38' : v})`;
const wasmType: Record<ValueType, string> = { int: 'i32', float: 'f32', ivec: 'v128', fvec: 'v128' };
const intCompare: Record<CompareOp, string> = { lt: 'lt_s', le: 'le_s', eq: 'eq', ne: 'ne' };

function watSyntax(target: WasmTarget): VectorSyntax {
  const lanes = (codes: readonly string[], splat: string, replace: string): string =>
    codes.slice(1).reduce((v, c, i) => `(${replace} ${i + 1} ${v} ${c})`, `(${splat} ${codes[0]!})`);
  return {
    lanes: LANES,
    lo: '(local.get $lo)',
    hi: '(local.get $hi)',
    isSimple: (code) => /^\((local\.get|[fi]32\.const|v128\.const)[^()]*\)$/.test(code),
    name: (base) => `$${base}`,
    get: (name) => `(local.get ${name})`,
    set: (name, code) => `(local.set ${name} ${code})`,
    declare: (name, type) => `(local ${name} ${wasmType[type]})`,
    loop: (id, v, start, end, step, runsOnce, body) => runsOnce
      // A loop known to run at least once tests at the bottom: one branch per iteration instead of two.
      ? [`(local.set ${v} ${start})`, `(loop $l${id}`, ...body,
        `(br_if $l${id} (i32.lt_s (local.tee ${v} (i32.add (local.get ${v}) (i32.const ${step}))) ${end})))`]
      : [`(local.set ${v} ${start})`, `(block $b${id} (loop $l${id}`, `(br_if $b${id} (i32.ge_s (local.get ${v}) ${end}))`,
        ...body, `(local.set ${v} (i32.add (local.get ${v}) (i32.const ${step})))`, `(br $l${id})))`],
    iconst: (n) => `(i32.const ${n})`,
    iadd: (a, b) => `(i32.add ${a} ${b})`,
    isub: (a, b) => `(i32.sub ${a} ${b})`,
    imul: (a, k) => `(i32.mul ${a} (i32.const ${k}))`,
    idiv: (a, d) => `(i32.div_s ${a} (i32.const ${d}))`,
    floorAdjust: (n, d) => `(i32.sub ${n} (i32.and (i32.shr_s ${n} (i32.const 31)) (i32.const ${d - 1})))`,
    iminmax: (kind, a, b) => `(select ${a} ${b} (i32.${kind === 'min' ? 'lt' : 'gt'}_s ${a} ${b}))`,
    icmp: (op, a, b, vec) => `(${vec ? 'i32x4' : 'i32'}.${intCompare[op]} ${a} ${b})`,
    ivecSplat: (code) => `(i32x4.splat ${code})`,
    ivecAdd: (a, b) => `(i32x4.add ${a} ${b})`,
    ivecConst: (values) => `(v128.const i32x4 ${values.join(' ')})`,
    ivecOf: (codes) => lanes(codes, 'i32x4.splat', 'i32x4.replace_lane'),
    fconst: f32,
    fsplat: (code) => `(f32x4.splat ${code})`,
    maskSplat: (code) => `(i32x4.splat (i32.sub (i32.const 0) ${code}))`,
    fvecOf: (codes) => lanes(codes, 'f32x4.splat', 'f32x4.replace_lane'),
    // The dynamic address is unsigned: a part that can go negative must have the constant added first.
    load: (address, offset, nonNegative, vec) => {
      const op = vec ? 'v128.load' : 'f32.load';
      return offset >= 0 && nonNegative ? `(${op} offset=${offset} ${address})` : `(${op} (i32.add ${address} (i32.const ${offset})))`;
    },
    shuffle: (first, second, picked) => `(i8x16.shuffle ${picked.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]).join(' ')} ${first} ${second})`,
    store: (address, offset, value, vec) => `(${vec ? 'v128' : 'f32'}.store offset=${offset} ${address} ${value})`,
    arith: (op, a, b, vec) => `(${vec ? 'f32x4' : 'f32'}.${op} ${a} ${b})`,
    fma: target.fma ? (a, b, acc) => `(f32x4.relaxed_madd ${a} ${b} ${acc})` : undefined,
    unary: (op, a, vec) => {
      if (op === 'neg' || op === 'abs' || op === 'sqrt') return `(${vec ? 'f32x4' : 'f32'}.${op} ${a})`;
      // exp and log have no WebAssembly instruction: call the host's, lane by lane.
      const call = (x: string): string => `(f32.demote_f64 (call $${op} (f64.promote_f32 ${x})))`;
      if (!vec) return call(a);
      return lanes(Array.from({ length: LANES }, (_, i) => call(`(f32x4.extract_lane ${i} ${a})`)), 'f32x4.splat', 'f32x4.replace_lane');
    },
    convert: (code, vec) => (vec ? `(f32x4.convert_i32x4_s ${code})` : `(f32.convert_i32_s ${code})`),
    fselect: (a, b, mask, vec) => (vec ? `(v128.bitselect ${a} ${b} ${mask})` : `(select ${a} ${b} ${mask})`),
    fcmp: (op, a, b, vec) => `(${vec ? 'f32x4' : 'f32'}.${op} ${a} ${b})`,
    mlogic: (op, a, b, vec) => `(${vec ? 'v128' : 'i32'}.${op} ${a} ${b})`,
    hreduce: (kind, v) => {
      const op = kind === 'sum' ? 'f32.add' : 'f32.max';
      const lane = (i: number): string => `(f32x4.extract_lane ${i} ${v})`;
      return `(${op} (${op} ${lane(0)} ${lane(1)}) (${op} ${lane(2)} ${lane(3)}))`;
    },
    lane: (v, i) => `(f32x4.extract_lane ${i} ${v})`,
    func: (name, declarations, body) => [`(func $${name} (export "${name}") (param $lo i32) (param $hi i32)`, ...declarations, ...body, ')'].join('\n'),
  };
}

export function printWasmKernel(k: LoweredKernel, at: KernelAddresses, target: WasmTarget = { fma: false }): WasmKernelSource {
  const syntax = watSyntax(target);
  const { name, text, splitExtent, splitAlign } = printVectorKernel(k, at, { widths: [LANES], unrolls: [2], registerBlock: () => 4, laneReduceOuter: 2, rowsAbove: 0, syntax: () => syntax });
  return { name, wat: text, splitExtent, splitAlign };
}

/** A module of kernels over one imported shared memory of `pages` 64 KiB pages, with the host's exp and log. */
export function wasmModule(kernels: readonly WasmKernelSource[], pages: number): string {
  return [
    '(module',
    `(import "env" "memory" (memory ${pages} ${pages} shared))`,
    '(import "env" "exp" (func $exp (param f64) (result f64)))',
    '(import "env" "log" (func $log (param f64) (result f64)))',
    ...kernels.map((k) => k.wat),
    ')',
  ].join('\n');
}
