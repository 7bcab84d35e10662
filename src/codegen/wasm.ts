// The WebAssembly SIMD target: a LoweredKernel becomes one WAT function `(param $lo i32) (param $hi i32)` that
// computes output rows [lo, hi) of its outermost axis longer than 1 over one shared linear memory, where every
// tensor sits at a fixed byte address (the executor's memory plan).
//
// Schedule, chosen per kernel from its expression:
// - lanes: 4 consecutive elements of the innermost output axis are one f32x4 (mode "axis"); when that axis is
//   shorter than 4, the innermost variable of the kernel's reduction is vectorised instead and summed across lanes
//   at the end (mode "reduction", e.g. weight gradients and batch statistics); otherwise scalar code.
// - register blocking: a reduction computes B = 4 neighbours along one more output axis (and 2 vectors along the
//   lane axis) at once, so the reads those copies share (the input pixels of a 1x1 conv across output channels,
//   the weights of a depthwise conv across rows) are loaded once. The axis is the one most reads do not depend on.
// - a lane reduction computing one output at a time keeps 4 partial sums (the adds' latency, not memory, bounds
//   a single chain); where the engine has relaxed SIMD, vector sums of products are fused multiply-adds.
// Index arithmetic is kept in affine form (affine.ts) so loop-invariant parts are computed once per loop level and
// lanes that read consecutive addresses become one vector load; other lanes are gathered. Reads may be evaluated
// speculatively (both sides of a select, hoisted out of loops): the executor surrounds the tensors with guard
// bands as wide as the farthest out-of-range read (readReach below), and a masked lane never reaches the result.
import { visitExpr, type Expr } from '../ir/expr';
import { rangeOf } from '../ir/simplify';
import type { LoweredKernel } from './lower';
import { stridesOf } from './printer';
import {
  isIntegerExpr, tryLinOf, linAdd, linConst, linKey, linLevel, linOf, linRange, linScale, linVar, termsKey, atomLevel,
  type Atom, type IndexEnv, type Lin, type LoopVar,
} from './affine';

export const LANES = 4;
/** Copies along the register-blocked axis (an axis of 2-4 elements is unrolled whole). */
const BLOCK = 4;
const blockFactor = (extent: number): number => (extent % BLOCK === 0 ? BLOCK : extent <= BLOCK ? extent : 1);
/** Innermost reduction loops at least this long get their own partial sums (shorter rows only cost registers). */
const MIN_SUMMATION_ROW = 16;
/** Independent partial sums of a lane reduction that computes one output at a time. */
const LANE_CHAINS = 4;
/** Reduction loops this short are unrolled when their variable is divided. */
const UNROLL_EXTENT = 3;
/** Level of values that depend on a reduction's result: computed where they are used, never hoisted. */
const INLINE = Number.POSITIVE_INFINITY;

export interface WasmKernelSource {
  readonly name: string;
  /** A WAT `func`, exported under `name`. */
  readonly wat: string;
  /** Extent of the split axis (the outermost longer than 1) when [lo, hi) may be a slice of it; 0 when it computes everything. */
  readonly splitExtent: number;
  /** lo and hi must be multiples of this (the outermost axis is register-blocked by it). */
  readonly splitAlign: number;
}

/** Byte addresses of the kernel's output and inputs in the shared memory. */
export interface KernelAddresses { readonly out: number; readonly inputs: readonly number[] }

/** What the engine running the kernels offers. */
export interface WasmTarget {
  /** Relaxed SIMD's f32x4.relaxed_madd: vector sums of products become fused multiply-adds. */
  readonly fma: boolean;
}

interface Val { readonly code: string; readonly vec: boolean; readonly level: number }
/** One computed copy of the kernel body: its lanes (1 or 4) and where each output axis stands in them. */
interface Copy { readonly lanes: readonly IndexEnv[] }

interface Block { readonly prelude: string[]; readonly body: string[]; readonly cache: Map<string, string> }

const isSimple = (code: string): boolean => /^\((local\.get|[fi]32\.const|v128\.const)[^()]*\)$/.test(code);
const f32 = (v: number): string => `(f32.const ${v === Infinity ? '3.4028234663852886e+38' : v === -Infinity ? '-3.4028234663852886e+38' : v})`;
const maxLevel = (...vs: readonly { level: number }[]): number => vs.reduce((m, v) => Math.max(m, v.level), 0);

/** How far (in elements) any read of the kernel can fall below 0 or above the end of its input. */
export function readReach(k: LoweredKernel): { below: number; above: number } {
  const rvars = new Map<number, number>();
  visitExpr(k.body, (x) => { if (x.k === 'reduce') x.vars.forEach((v) => rvars.set(v.id, v.extent)); });
  let below = 0;
  let above = 0;
  visitExpr(k.body, (x) => {
    if (x.k !== 'read') return;
    const shape = k.inputs[x.input]!.layout.shape;
    const strides = stridesOf(shape);
    let lo = 0;
    let hi = 0;
    x.index.forEach((ix, d) => { const r = rangeOf(ix, k.output.shape, rvars); lo += r.lo * strides[d]!; hi += r.hi * strides[d]!; });
    const size = shape.reduce((a, b) => a * b, 1);
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`${k.name}: a read index has no finite bounds`);
    below = Math.max(below, -lo);
    above = Math.max(above, hi - (size - 1));
  });
  return { below, above };
}

class WatPrinter {
  private readonly locals: string[] = [];
  /** Vector products by the read of the local holding them: a sum can add them with one fused multiply-add. */
  private readonly products = new Map<string, readonly [string, string]>();
  private readonly blocks: Block[] = [];
  private count = 0;
  /** The reduction whose innermost variable carries the lanes (mode "reduction"). */
  laneReduce?: Extract<Expr, { k: 'reduce' }>;

  constructor(private readonly k: LoweredKernel, private readonly at: KernelAddresses, private readonly target: WasmTarget) {}

  private get current(): Block { return this.blocks[this.blocks.length - 1]!; }

  local(type: 'i32' | 'f32' | 'v128'): string {
    const name = `$t${this.count++}`;
    this.locals.push(`(local ${name} ${type})`);
    return name;
  }

  /** Compute `code` once, in the outermost loop where everything it uses is defined; returns a read of it. */
  bind(code: string, type: 'i32' | 'f32' | 'v128', level: number): string {
    if (isSimple(code)) return code;
    const key = `${type}${code}`;
    for (const b of this.blocks) { const hit = b.cache.get(key); if (hit) return `(local.get ${hit})`; }
    const name = this.local(type);
    const block = level === INLINE ? this.current : this.blocks[level]!;
    (level === INLINE ? block.body : block.prelude).push(`(local.set ${name} ${code})`);
    block.cache.set(key, name);
    return `(local.get ${name})`;
  }

  private bindVal(v: Val): Val { return { ...v, code: this.bind(v.code, v.vec ? 'v128' : 'f32', v.level) }; }

  // ---- loops ----

  /** Open a loop over `v` from `start` by `step` while below `end`; its body is the new current block. */
  openLoop(): void { this.blocks.push({ prelude: [], body: [], cache: new Map() }); }

  closeLoop(v: string, start: string, end: string, step: number): void {
    const b = this.blocks.pop()!;
    const id = this.count++;
    const bound = (code: string): number | undefined => { const m = /^\(i32\.const (-?\d+)\)$/.exec(code); return m ? Number(m[1]) : undefined; };
    const runsOnce = (bound(start) ?? Infinity) < (bound(end) ?? -Infinity);
    // A loop known to run at least once tests at the bottom: one branch per iteration instead of two.
    if (runsOnce) {
      this.current.body.push(`(local.set ${v} ${start})`, `(loop $l${id}`, ...b.prelude, ...b.body,
        `(br_if $l${id} (i32.lt_s (local.tee ${v} (i32.add (local.get ${v}) (i32.const ${step}))) ${end})))`);
      return;
    }
    this.current.body.push(`(local.set ${v} ${start})`, `(block $b${id} (loop $l${id}`, `(br_if $b${id} (i32.ge_s (local.get ${v}) ${end}))`,
      ...b.prelude, ...b.body, `(local.set ${v} (i32.add (local.get ${v}) (i32.const ${step})))`, `(br $l${id})))`);
  }

  // ---- index arithmetic ----

  /** The non-constant part of a form as i32 code (partial sums hoisted level by level) and its constant. */
  linCode(l: Lin): { code: string; c: number } {
    const levels = [...new Set(l.terms.map((t) => atomLevel(t.atom)))].sort((a, b) => a - b);
    let acc: string | undefined;
    for (const level of levels) {
      for (const t of l.terms.filter((x) => atomLevel(x.atom) === level)) {
        const a = this.atomCode(t.atom);
        const term = t.coef === 1 ? a : `(i32.mul ${a} (i32.const ${t.coef}))`;
        acc = acc ? `(i32.add ${acc} ${term})` : term;
      }
      acc = this.bind(acc!, 'i32', level);
    }
    return { code: acc ?? '(i32.const 0)', c: l.c };
  }

  /** A whole form as one i32 value. */
  index(l: Lin): string {
    const { code, c } = this.linCode(l);
    if (l.terms.length === 0) return `(i32.const ${c})`;
    return c === 0 ? code : this.bind(`(i32.add ${code} (i32.const ${c}))`, 'i32', linLevel(l));
  }

  private atomCode(a: Atom): string {
    switch (a.kind) {
      case 'var': return `(local.get ${a.v.name})`;
      case 'idiv': case 'mod': {
        const n = this.index(a.of);
        const level = atomLevel(a);
        // Floor division: truncating division is right for non-negative numerators, else round towards -inf.
        const num = linRange(a.of).lo >= 0 ? n : this.bind(`(i32.sub ${n} (i32.and (i32.shr_s ${n} (i32.const 31)) (i32.const ${a.d - 1})))`, 'i32', level);
        const q = this.bind(`(i32.div_s ${num} (i32.const ${a.d}))`, 'i32', level);
        return a.kind === 'idiv' ? q : this.bind(`(i32.sub ${n} (i32.mul ${q} (i32.const ${a.d})))`, 'i32', level);
      }
      case 'min': case 'max': {
        const x = this.index(a.a);
        const y = this.index(a.b);
        return this.bind(`(select ${x} ${y} (i32.${a.kind === 'min' ? 'lt' : 'gt'}_s ${x} ${y}))`, 'i32', atomLevel(a));
      }
    }
  }

  /** Integer lanes as an i32x4 (or one i32 when all lanes agree). */
  private intLanes(ls: readonly Lin[]): Val {
    const level = maxLevel(...ls.map((l) => ({ level: linLevel(l) })));
    if (ls.every((l) => linKey(l) === linKey(ls[0]!))) return { code: this.index(ls[0]!), vec: false, level };
    if (ls.every((l) => termsKey(l) === termsKey(ls[0]!))) {
      const { code } = this.linCode(ls[0]!);
      return { code: `(i32x4.add (i32x4.splat ${code}) (v128.const i32x4 ${ls.map((l) => l.c).join(' ')}))`, vec: true, level };
    }
    let v = `(i32x4.splat ${this.index(ls[0]!)})`;
    ls.forEach((l, i) => { if (i > 0) v = `(i32x4.replace_lane ${i} ${v} ${this.index(l)})`; });
    return { code: v, vec: true, level };
  }

  // ---- values: f32 or f32x4 ----

  private splat(v: Val): string { return v.vec ? v.code : `(f32x4.splat ${v.code})`; }
  private maskSplat(m: Val): string { return m.vec ? m.code : `(i32x4.splat (i32.sub (i32.const 0) ${m.code}))`; }

  private read(e: Extract<Expr, { k: 'read' }>, copy: Copy): Val {
    const strides = stridesOf(this.k.inputs[e.input]!.layout.shape);
    const base = this.at.inputs[e.input]!;
    const addrs = copy.lanes.map((env) => e.index.reduce((acc, ix, d) => linAdd(acc, linScale(linOf(ix, env), 4 * strides[d]!)), linConst(base)));
    const load = (l: Lin, op: string): Val => {
      const { code, c } = this.linCode(l);
      // The dynamic address is unsigned: a part that can go negative must have the constant added first.
      const text = c >= 0 && linRange({ terms: l.terms, c: 0 }).lo >= 0 ? `(${op} offset=${c} ${code})` : `(${op} (i32.add ${code} (i32.const ${c})))`;
      return this.bindVal({ code: text, vec: op === 'v128.load', level: linLevel(l) });
    };
    if (addrs.every((l) => linKey(l) === linKey(addrs[0]!))) return load(addrs[0]!, 'f32.load');
    if (addrs.every((l, i) => termsKey(l) === termsKey(addrs[0]!) && l.c === addrs[0]!.c + 4 * i)) return load(addrs[0]!, 'v128.load');
    // Lanes within 8 floats of each other (a stride-2 read, a transposed stride-2 read's repeats): one or two
    // vector loads and a shuffle instead of a gather.
    if (addrs.every((l) => termsKey(l) === termsKey(addrs[0]!))) {
      const lo = Math.min(...addrs.map((l) => l.c));
      const offsets = addrs.map((l) => l.c - lo);
      if (offsets.every((o) => o % 4 === 0 && o < 32)) {
        const first = load({ ...addrs[0]!, c: lo }, 'v128.load');
        const second = offsets.some((o) => o >= 16) ? load({ ...addrs[0]!, c: lo + 16 }, 'v128.load') : first;
        const bytes = offsets.flatMap((o) => [o, o + 1, o + 2, o + 3]);
        return this.bindVal({ code: `(i8x16.shuffle ${bytes.join(' ')} ${first.code} ${second.code})`, vec: true, level: maxLevel(first, second) });
      }
    }
    let v = `(f32x4.splat ${load(addrs[0]!, 'f32.load').code})`;
    addrs.forEach((l, i) => { if (i > 0) v = `(f32x4.replace_lane ${i} ${v} ${load(l, 'f32.load').code})`; });
    return this.bindVal({ code: v, vec: true, level: maxLevel(...addrs.map((l) => ({ level: linLevel(l) }))) });
  }

  private arith(op: string, a: Val, b: Val): Val {
    const vec = a.vec || b.vec;
    const code = vec ? `(f32x4.${op} ${this.splat(a)} ${this.splat(b)})` : `(f32.${op} ${a.code} ${b.code})`;
    const v = this.bindVal({ code, vec, level: maxLevel(a, b) });
    if (vec && op === 'mul') this.products.set(v.code, [this.splat(a), this.splat(b)]);
    return v;
  }

  private unary(op: string, a: Val): Val {
    if (op === 'neg' || op === 'abs' || op === 'sqrt') return this.bindVal({ code: a.vec ? `(f32x4.${op} ${a.code})` : `(f32.${op} ${a.code})`, vec: a.vec, level: a.level });
    // exp and log have no WebAssembly instruction: call the host's, lane by lane.
    const call = (x: string): string => `(f32.demote_f64 (call $${op} (f64.promote_f32 ${x})))`;
    if (!a.vec) return this.bindVal({ code: call(a.code), vec: false, level: a.level });
    const x = this.bind(a.code, 'v128', a.level);
    let v = `(f32x4.splat ${call(`(f32x4.extract_lane 0 ${x})`)})`;
    for (let i = 1; i < LANES; i++) v = `(f32x4.replace_lane ${i} ${v} ${call(`(f32x4.extract_lane ${i} ${x})`)})`;
    return this.bindVal({ code: v, vec: true, level: a.level });
  }

  /** Values of `e` for every copy: reductions run one loop nest that updates all copies' accumulators. */
  values(e: Expr, copies: readonly Copy[]): Val[] {
    if (e.k === 'reduce') return this.reduce(e, copies);
    if (e.k === 'const') return copies.map(() => ({ code: f32(e.v), vec: false, level: 0 }));
    // Affine integer arithmetic (an output coordinate used as a value) is computed in i32; anything else in f32.
    if (isIntegerExpr(e) && copies.every((c) => c.lanes.every((env) => tryLinOf(e, env)))) {
      return copies.map((c) => {
        const v = this.intLanes(c.lanes.map((env) => linOf(e, env)));
        return this.bindVal({ code: v.vec ? `(f32x4.convert_i32x4_s ${v.code})` : `(f32.convert_i32_s ${v.code})`, vec: v.vec, level: v.level });
      });
    }
    switch (e.k) {
      case 'read': return copies.map((c) => this.read(e, c));
      case 'axis': case 'rvar': throw new Error(`${this.k.name}: loop variable outside its loop`);
      case 'un': return this.values(e.a, copies).map((a) => this.unary(e.op, a));
      case 'bin': {
        if (['lt', 'le', 'eq', 'and', 'or'].includes(e.op)) {
          return this.masks(e, copies).map((m) => this.bindVal({
            code: m.vec ? `(v128.bitselect (f32x4.splat (f32.const 1)) (f32x4.splat (f32.const 0)) ${m.code})` : `(select (f32.const 1) (f32.const 0) ${m.code})`,
            vec: m.vec, level: m.level,
          }));
        }
        const as = this.values(e.a, copies);
        const bs = this.values(e.b, copies);
        const op = { add: 'add', sub: 'sub', mul: 'mul', div: 'div', min: 'min', max: 'max' }[e.op as string];
        if (!op) throw new Error(`${this.k.name}: ${e.op} on values`);
        return as.map((a, i) => this.arith(op, a, bs[i]!));
      }
      case 'select': {
        const ms = this.masks(e.cond, copies);
        const as = this.values(e.a, copies);
        const bs = this.values(e.b, copies);
        return ms.map((m, i) => {
          const a = as[i]!;
          const b = bs[i]!;
          const level = maxLevel(m, a, b);
          if (!m.vec && !a.vec && !b.vec) return this.bindVal({ code: `(select ${a.code} ${b.code} ${m.code})`, vec: false, level });
          return this.bindVal({ code: `(v128.bitselect ${this.splat(a)} ${this.splat(b)} ${this.maskSplat(m)})`, vec: true, level });
        });
      }
      default: throw new Error(`${this.k.name}: cannot compute ${(e as Expr).k} as a value`);
    }
  }

  /** Conditions: i32 0/1, or an i32x4 mask of all-ones lanes. */
  masks(e: Expr, copies: readonly Copy[]): Val[] {
    if (e.k === 'const') return copies.map(() => ({ code: `(i32.const ${e.v !== 0 ? 1 : 0})`, vec: false, level: 0 }));
    if (e.k === 'bin' && (e.op === 'and' || e.op === 'or')) {
      const as = this.masks(e.a, copies);
      const bs = this.masks(e.b, copies);
      return as.map((a, i) => {
        const b = bs[i]!;
        const vec = a.vec || b.vec;
        const code = vec ? `(v128.${e.op} ${this.maskSplat(a)} ${this.maskSplat(b)})` : `(i32.${e.op} ${a.code} ${b.code})`;
        return { code: this.bind(code, vec ? 'v128' : 'i32', maxLevel(a, b)), vec, level: maxLevel(a, b) };
      });
    }
    if (e.k === 'bin' && (e.op === 'lt' || e.op === 'le' || e.op === 'eq')) {
      const op = { lt: 'lt_s', le: 'le_s', eq: 'eq' }[e.op];
      if (isIntegerExpr(e.a) && isIntegerExpr(e.b)) {
        // a < b  <=>  (a - b) - c < -c: compare the variable part against constants, one per lane.
        return copies.map((c) => {
          const ds = c.lanes.map((env) => linAdd(linOf(e.a, env), linOf(e.b, env), -1));
          const level = maxLevel(...ds.map((d) => ({ level: linLevel(d) })));
          if (ds[0]!.terms.length === 0 && ds.every((d) => linKey(d) === linKey(ds[0]!))) {
            const d = ds[0]!.c;
            return { code: `(i32.const ${(e.op === 'lt' ? d < 0 : e.op === 'le' ? d <= 0 : d === 0) ? 1 : 0})`, vec: false, level: 0 };
          }
          if (ds.every((d) => linKey(d) === linKey(ds[0]!))) {
            const { code, c: k } = this.linCode(ds[0]!);
            return { code: this.bind(`(i32.${op} ${code} (i32.const ${-k}))`, 'i32', level), vec: false, level };
          }
          if (ds.every((d) => termsKey(d) === termsKey(ds[0]!))) {
            const { code } = this.linCode(ds[0]!);
            return { code: this.bind(`(i32x4.${op} (i32x4.splat ${code}) (v128.const i32x4 ${ds.map((d) => -d.c).join(' ')}))`, 'v128', level), vec: true, level };
          }
          const lanes = this.intLanes(ds);
          return { code: this.bind(`(i32x4.${op} ${lanes.code} (v128.const i32x4 0 0 0 0))`, 'v128', level), vec: true, level };
        });
      }
      const as = this.values(e.a, copies);
      const bs = this.values(e.b, copies);
      const fop = { lt: 'lt', le: 'le', eq: 'eq' }[e.op];
      return as.map((a, i) => {
        const b = bs[i]!;
        const vec = a.vec || b.vec;
        const level = maxLevel(a, b);
        const code = vec ? `(f32x4.${fop} ${this.splat(a)} ${this.splat(b)})` : `(f32.${fop} ${a.code} ${b.code})`;
        return { code: this.bind(code, vec ? 'v128' : 'i32', level), vec, level };
      });
    }
    // Any other value used as a condition: true when non-zero.
    return this.values(e, copies).map((v) => ({
      code: this.bind(v.vec ? `(f32x4.ne ${v.code} (f32x4.splat (f32.const 0)))` : `(f32.ne ${v.code} (f32.const 0))`, v.vec ? 'v128' : 'i32', v.level),
      vec: v.vec, level: v.level,
    }));
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>, copies: readonly Copy[]): Val[] {
    const isSum = e.kind === 'sum';
    const laned = e === this.laneReduce;
    const all = reductionLoops(e, this.k);
    // Loops of 3 or fewer steps whose variable is divided (a stride-2 transposed conv's window: (y - r) // 2 and
    // (y - r) % 2) are unrolled: with r a constant, the divisions and parity masks fold per step.
    const divided = dividedRvars(e.body);
    const unrolled = all.filter((l) => l.ids.length === 1 && l.extent <= UNROLL_EXTENT && divided.has(l.ids[0]!) && !(laned && l === all[all.length - 1]));
    const loops = all.filter((l) => !unrolled.includes(l));
    const last = loops[loops.length - 1];
    // A lane reduction with a single output per iteration is one chain of dependent vector adds: independent
    // partial sums (chains) over consecutive vectors of the innermost loop hide the adds' latency. (Unrolling the
    // register-blocked reductions the same way, into their own accumulators, measured 15-20 % slower: spills.)
    const chains = laned && copies.length === 1 ? [LANE_CHAINS, 2].find((n) => last!.extent % (n * LANES) === 0) ?? 1 : 1;
    const vars = loops.map((loop) => {
      this.openLoop();
      const step = laned && loop === last ? LANES * chains : 1;
      const lv: LoopVar = { name: `$r${loop.ids[loop.ids.length - 1]}`, level: this.blocks.length - 1, align: step, max: loop.extent - step };
      return { ...loop, step, lv };
    });
    const steps = unrolled.reduce<ReadonlyMap<number, number>[]>((acc, l) => acc.flatMap((m) => Array.from({ length: l.extent }, (_, v) => new Map([...m, [l.ids[0]!, v]]))), [new Map()]);
    // A merged loop stands for all its variables: the innermost carries the combined index, the others are 0.
    const bind = (env: IndexEnv, offset: number, step: ReadonlyMap<number, number>): IndexEnv => ({
      axis: env.axis,
      rvar: (id) => {
        const fixed = step.get(id);
        if (fixed !== undefined) return linConst(fixed);
        const v = vars.find((x) => x.ids.includes(id));
        if (!v) return env.rvar(id);
        return id === v.ids[v.ids.length - 1] ? linVar(v.lv, v === vars[vars.length - 1] ? offset : 0) : linConst(0);
      },
    });
    // Every unrolled step of every chain of every copy, step-major so that consecutive updates go to different
    // accumulators (copies.length === 1 when there are several chains).
    const inner = steps.flatMap((step) => Array.from({ length: chains }, (_, chain) => copies.map((c) => ({
      lanes: laned ? Array.from({ length: LANES }, (_, l) => bind(c.lanes[0]!, chain * LANES + l, step)) : c.lanes.map((env) => bind(env, 0, step)),
    }))).flat());
    const bodies = this.values(e.body, inner);
    // Sums over several variables add each innermost row into its own partial sum first (blocked summation):
    // float32 rounding error then grows with the number of rows rather than with the number of elements.
    const rows = isSum && vars.length > 1 && last!.extent >= MIN_SUMMATION_ROW;
    const accs = Array.from({ length: copies.length * chains }, (_, c) => {
      const vec = laned || bodies.some((b, i) => i % (copies.length * chains) === c && b.vec);
      const type = vec ? 'v128' : 'f32';
      const acc = this.local(type);
      const init = isSum ? 0 : -Infinity;
      return { acc, row: rows ? this.local(type) : acc, op: `${vec ? 'f32x4' : 'f32'}.${isSum ? 'add' : 'max'}`, init: vec ? `(f32x4.splat ${f32(init)})` : f32(init), vec };
    });
    if (vars.length === 0) this.current.body.push(...accs.map((a) => `(local.set ${a.acc} ${a.init})`));
    bodies.forEach((b, i) => {
      const a = accs[i % accs.length]!;
      const product = isSum && a.vec && this.target.fma ? this.products.get(b.code) : undefined;
      this.current.body.push(product
        ? `(local.set ${a.row} (f32x4.relaxed_madd ${product[0]} ${product[1]} (local.get ${a.row})))`
        : `(local.set ${a.row} (${a.op} (local.get ${a.row}) ${a.vec ? this.splat(b) : b.code}))`);
    });
    for (let i = vars.length - 1; i >= 0; i--) {
      const v = vars[i]!;
      const parent = this.blocks[this.blocks.length - 2]!;
      if (i === 0) parent.body.push(...accs.map((a) => `(local.set ${a.acc} ${a.init})`));
      if (rows && i === vars.length - 1) parent.body.push(...accs.map((a) => `(local.set ${a.row} ${a.init})`));
      this.closeLoop(v.lv.name, '(i32.const 0)', `(i32.const ${v.extent})`, v.step);
      if (rows && i === vars.length - 1) this.current.body.push(...accs.map((a) => `(local.set ${a.acc} (${a.op} (local.get ${a.acc}) (local.get ${a.row})))`));
    }
    if (!laned) return accs.map((a) => ({ code: `(local.get ${a.acc})`, vec: a.vec, level: INLINE }));
    // Each copy's chains, then the lanes of the vectorised reduction variable: combine them into one value.
    return copies.map((_, c) => {
      const [first, ...others] = accs.filter((_, i) => i % copies.length === c);
      const chained = others.reduce((code, a) => `(${first!.op} ${code} (local.get ${a.acc}))`, `(local.get ${first!.acc})`);
      const total = others.length ? this.bind(chained, 'v128', INLINE) : chained;
      const lane = (i: number): string => `(f32x4.extract_lane ${i} ${total})`;
      const op = isSum ? 'f32.add' : 'f32.max';
      return this.bindVal({ code: `(${op} (${op} ${lane(0)} ${lane(1)}) (${op} ${lane(2)} ${lane(3)}))`, vec: false, level: INLINE });
    });
  }

  // ---- the kernel ----

  print(): WasmKernelSource {
    const k = this.k;
    const shape = k.output.shape;
    const rank = shape.length;
    const strides = stridesOf(shape);
    const reductions: Extract<Expr, { k: 'reduce' }>[] = [];
    visitExpr(k.body, (x) => { if (x.k === 'reduce') reductions.push(x); });
    const laneAxis = rank >= 2 && shape[rank - 1]! >= LANES ? rank - 1 : -1;
    if (laneAxis < 0) {
      const top = topReduction(k.body);
      if (reductions.length === 1 && top && reductionLoops(top, k).at(-1)!.extent % LANES === 0) this.laneReduce = top;
    }
    // Axis [lo, hi) runs over: the outermost one longer than 1 (a keepdims reduction's output is [1, C, 1, 1]).
    const splitAxis = shape.findIndex((n, i) => n > 1 && i !== laneAxis);
    const blockAxis = reductions.length ? chooseBlockAxis(k, laneAxis, splitAxis) : -1;
    const factor = blockAxis >= 0 ? blockFactor(shape[blockAxis]!) : 1;
    // A reduction over lanes (a weight gradient: a matrix product over a long batch x pixels axis) also blocks the
    // outermost axis by 2 when that shares reads: 2 x 4 outputs take 6 vector loads per 8 multiply-adds, not 5 per 4.
    const outer = this.laneReduce && blockAxis >= 0 && splitAxis >= 0 && shape[splitAxis]! % 2 === 0 && sharedReads(k, splitAxis, 2) > 0 ? 2 : 1;
    const unroll = laneAxis >= 0 && reductions.length && shape[laneAxis]! % (2 * LANES) === 0 ? 2 : 1;

    this.blocks.push({ prelude: [], body: [], cache: new Map() });
    const loopVar = (i: number, align: number, max: number): LoopVar => ({ name: `$a${i}`, level: this.blocks.length - 1, align, max });
    const vars: (LoopVar | undefined)[] = [];
    // Loops over every output axis but the lane axis; the split axis runs over [lo, hi).
    for (let i = 0; i < rank; i++) {
      if (i === laneAxis || shape[i] === 1) continue;
      this.openLoop();
      const step = i === blockAxis ? factor : i === splitAxis ? outer : 1;
      vars[i] = loopVar(i, step, shape[i]! - step);
    }
    const emitBody = (copies: readonly Copy[], offsets: readonly { axisOffset: number; blockOffset: number }[]): void => {
      const vals = this.values(k.body, copies);
      vals.forEach((v, c) => {
        const env = copies[c]!.lanes[0]!;
        const addr = shape.reduce((acc, _, d) => linAdd(acc, linScale(env.axis(d), 4 * strides[d]!)), linConst(this.at.out));
        const { code, c: off } = this.linCode(addr);
        const vec = copies[c]!.lanes.length > 1;
        void offsets;
        this.current.body.push(vec ? `(v128.store offset=${off} ${code} ${this.splat(v)})` : `(f32.store offset=${off} ${code} ${v.code})`);
      });
    };
    const envFor = (laneVar: LoopVar | undefined, laneOffset: number, block: number, outerBlock = 0): IndexEnv => ({
      axis: (i) => {
        if (i === laneAxis) return linVar(laneVar!, laneOffset);
        if (shape[i] === 1) return linConst(0);
        return linVar(vars[i]!, i === blockAxis ? block : i === splitAxis ? outerBlock : 0);
      },
      rvar: (id) => { throw new Error(`${k.name}: reduction variable r${id} used outside its reduction`); },
    });
    const blocks = Array.from({ length: factor }, (_, j) => j);
    if (laneAxis >= 0) {
      const width = shape[laneAxis]!;
      const chunk = LANES * unroll;
      const vectorEnd = Math.floor(width / chunk) * chunk;
      // Full vectors of the lane axis, then the remaining elements one by one.
      this.openLoop();
      const xv = loopVar(laneAxis, chunk, vectorEnd - chunk);
      const copies = blocks.flatMap((j) => Array.from({ length: unroll }, (_, u) => ({ lanes: Array.from({ length: LANES }, (_, l) => envFor(xv, u * LANES + l, j)) })));
      emitBody(copies, []);
      this.closeLoop(xv.name, '(i32.const 0)', `(i32.const ${vectorEnd})`, chunk);
      if (vectorEnd < width) {
        this.openLoop();
        const xs = loopVar(laneAxis, 1, width - 1);
        emitBody(blocks.map((j) => ({ lanes: [envFor(xs, 0, j)] })), []);
        this.closeLoop(xs.name, `(i32.const ${vectorEnd})`, `(i32.const ${width})`, 1);
      }
    } else {
      emitBody(Array.from({ length: outer }, (_, o) => blocks.map((j) => ({ lanes: [envFor(undefined, 0, j, o)] }))).flat(), []);
    }
    for (let i = rank - 1; i >= 0; i--) {
      const v = vars[i];
      if (!v) continue;
      if (i === splitAxis) this.closeLoop(v.name, '(local.get $lo)', '(local.get $hi)', outer);
      else this.closeLoop(v.name, '(i32.const 0)', `(i32.const ${shape[i]})`, i === blockAxis ? factor : 1);
    }
    const top = this.blocks.pop()!;
    const axisLocals = shape.map((_, i) => `(local $a${i} i32)`);
    const rvarLocals = [...new Set(reductions.flatMap((r) => r.vars.map((v) => `(local $r${v.id} i32)`)))];
    const wat = [`(func $${k.name} (export "${k.name}") (param $lo i32) (param $hi i32)`, ...axisLocals, ...rvarLocals, ...this.locals, ...top.prelude, ...top.body, ')'].join('\n');
    return { name: k.name, wat, splitExtent: splitAxis >= 0 ? shape[splitAxis]! : 0, splitAlign: outer };
  }
}

/**
 * The loops of a reduction, innermost last. Trailing variables merge into one loop when they only ever address
 * memory together as one contiguous run (r_y * W + r_x over a W-wide row): the innermost loop then runs over
 * whole planes instead of short rows, which matters for 8x8 and 4x4 feature maps.
 */
function reductionLoops(e: Extract<Expr, { k: 'reduce' }>, k: LoweredKernel): { ids: number[]; extent: number }[] {
  const loops = e.vars.map((v) => ({ ids: [v.id], extent: v.extent }));
  while (loops.length >= 2) {
    const inner = loops[loops.length - 1]!;
    const outer = loops[loops.length - 2]!;
    if (!mergeable(e.body, k, outer.ids[0]!, inner.ids[inner.ids.length - 1]!, inner.extent)) break;
    loops.splice(loops.length - 2, 2, { ids: [...outer.ids, ...inner.ids], extent: outer.extent * inner.extent });
  }
  return loops;
}

/** Whether rvar `a` appears only in read addresses, always as `extent` times rvar `b`'s coefficient. */
function mergeable(body: Expr, k: LoweredKernel, a: number, b: number, extent: number): boolean {
  const names = [`r${a}`, `r${b}`];
  const env: IndexEnv = {
    axis: (i) => linVar({ name: `a${i}`, level: 0, align: 1, max: Math.max(0, k.output.shape[i]! - 1) }),
    rvar: (id) => linVar({ name: `r${id}`, level: 0, align: 1, max: 1 << 20 }),
  };
  let ok = true;
  const walk = (x: Expr): void => {
    if (!ok) return;
    switch (x.k) {
      case 'rvar': if (x.id === a || x.id === b) ok = false; return;
      case 'read': {
        const strides = stridesOf(k.inputs[x.input]!.layout.shape);
        const flat = x.index.map((ix) => tryLinOf(ix, env));
        if (flat.some((l) => !l)) { x.index.forEach(walk); return; }
        const coef = (name: string): number => flat.reduce((acc, l, d) => acc + (l!.terms.find((t) => t.key === name)?.coef ?? 0) * strides[d]!, 0);
        // Both variables must be plain terms (not inside a division or a min/max) with the row relation.
        const nested = flat.some((l) => l!.terms.some((t) => t.atom.kind !== 'var' && names.some((n) => new RegExp(`\\b${n}\\b`).test(t.key))));
        if (nested || coef(names[0]!) !== extent * coef(names[1]!)) ok = false;
        return;
      }
      case 'bin': walk(x.a); walk(x.b); return;
      case 'un': walk(x.a); return;
      case 'select': walk(x.cond); walk(x.a); walk(x.b); return;
      case 'reduce': walk(x.body); return;
      default: return;
    }
  };
  walk(body);
  return ok;
}

/** Reduction variables that appear inside an integer division or remainder. */
function dividedRvars(e: Expr): Set<number> {
  const found = new Set<number>();
  visitExpr(e, (x) => {
    if (x.k === 'bin' && (x.op === 'idiv' || x.op === 'mod')) visitExpr(x.a, (y) => { if (y.k === 'rvar') found.add(y.id); });
  });
  return found;
}

/** The reduction the kernel's value is made of, when it is not under a select or inside another reduction. */
function topReduction(e: Expr): Extract<Expr, { k: 'reduce' }> | undefined {
  switch (e.k) {
    case 'reduce': return e;
    case 'bin': return topReduction(e.a) ?? topReduction(e.b);
    case 'un': return topReduction(e.a);
    default: return undefined;
  }
}

/** How many reads inside reductions stay the same between neighbouring copies blocked along axis `b` by `factor`. */
function sharedReads(k: LoweredKernel, b: number, factor: number): number {
  const shape = k.output.shape;
  const env = (copy: number): IndexEnv => ({
    axis: (i) => linVar({ name: `a${i}`, level: 0, align: i === b ? factor : 1, max: shape[i]! - 1 }, i === b ? copy : 0),
    rvar: (id) => linVar({ name: `r${id}`, level: 0, align: 1, max: 1 << 20 }),
  });
  let score = 0;
  const visitReads = (e: Expr, inReduce: boolean): void => {
    if (e.k === 'reduce') { visitReads(e.body, true); return; }
    if (e.k === 'read' && inReduce) {
      const key = (copy: number): string => e.index.map((ix) => linKey(linOf(ix, env(copy)))).join(',');
      if (key(0) === key(1)) score++;
      return;
    }
    if (e.k === 'bin') { visitReads(e.a, inReduce); visitReads(e.b, inReduce); }
    if (e.k === 'un') visitReads(e.a, inReduce);
    if (e.k === 'select') { visitReads(e.cond, inReduce); visitReads(e.a, inReduce); visitReads(e.b, inReduce); }
  };
  visitReads(k.body, false);
  return score;
}

/**
 * The output axis to block: the one (inside the split axis, not the lane axis, one blockFactor can split) along which
 * the most reads inside reductions stay the same, so the copies share them. -1 when no axis shares anything.
 */
function chooseBlockAxis(k: LoweredKernel, laneAxis: number, splitAxis: number): number {
  const shape = k.output.shape;
  let best = -1;
  let bestScore = 0;
  for (let b = Math.max(1, splitAxis + 1); b < shape.length; b++) {
    const factor = blockFactor(shape[b]!);
    if (b === laneAxis || factor < 2) continue;
    const score = sharedReads(k, b, factor);
    if (score > bestScore) { best = b; bestScore = score; }
  }
  return best;
}

export const printWasmKernel = (k: LoweredKernel, at: KernelAddresses, target: WasmTarget = { fma: false }): WasmKernelSource => new WatPrinter(k, at, target).print();

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
