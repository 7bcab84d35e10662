// The vector kernel printer shared by tsc-nn's CPU targets: one schedule, derived from the LoweredKernel, printed
// through a target's syntax: WebAssembly text (wasm.ts, 4 lanes) or C with GCC vector extensions (c.ts, 4-16 lanes).
// A kernel is one function of (lo, hi) that computes output rows [lo, hi) of its outermost axis longer than 1 over
// one linear memory, where every tensor sits at a fixed byte address (the executor's memory plan).
//
// Schedule, chosen per kernel from its expression:
// - lanes: W consecutive elements of the innermost output axis are one vector (mode "axis"); when that axis is
//   shorter than W, the innermost variable of the kernel's reduction is vectorised instead and summed across lanes
//   at the end (mode "reduction", e.g. weight gradients and batch statistics); otherwise scalar code.
// - register blocking: a reduction computes B = 4 neighbours along one more output axis (and 2 vectors along the
//   lane axis) at once, so the reads those copies share (the input pixels of a 1x1 conv across output channels,
//   the weights of a depthwise conv across rows) are loaded once. The axis is the one most reads do not depend on.
// - a lane reduction computing one output at a time keeps 4 partial sums (the adds' latency, not memory, bounds
//   a single chain); where the target has it, vector sums of products are fused multiply-adds.
// Index arithmetic is kept in affine form (affine.ts) so loop-invariant parts are computed once per loop level and
// lanes that read consecutive addresses become one vector load; other lanes are gathered. Reads may be evaluated
// speculatively (both sides of a select, hoisted out of loops): the executor surrounds the tensors with guard
// bands as wide as the farthest out-of-range read (readReach below), and a masked lane never reaches the result.
import { bin, cst, mapExpr, visitExpr, type Expr } from '../ir/expr';
import { rangeOf } from '../ir/simplify';
import type { LoweredKernel } from './lower';
import { stridesOf } from './printer';
import {
  isIntegerExpr, recombineDivMod, tryLinOf, linAdd, linConst, linKey, linLevel, linOf, linRange, linScale, linVar, termsKey, atomLevel,
  type Atom, type IndexEnv, type Lin, type LoopVar,
} from './affine';

/**
 * Copies along the register-blocked axis: `want` (a power of two) or the largest power of two >= 4 below it that
 * divides the axis; an axis of 2-4 elements is unrolled whole. With `anyDivisor`, the largest divisor up to `want`
 * (a 10-channel axis blocks by 5).
 */
function blockFactor(extent: number, want = 4, anyDivisor = false): number {
  if (anyDivisor) { for (let b = Math.min(want, extent); b >= 2; b--) if (extent % b === 0) return b; return 1; }
  for (let b = want; b >= 4; b /= 2) if (extent % b === 0) return b;
  return extent <= 4 ? extent : 1;
}
/** Innermost reduction loops at least this long get their own partial sums (shorter rows only cost registers). */
const MIN_SUMMATION_ROW = 16;
/** Independent partial sums of a lane reduction that computes one output at a time. */
const LANE_CHAINS = 4;
/** Reduction loops this short are unrolled when their variable is divided. */
const UNROLL_EXTENT = 3;
/** Level of values that depend on a reduction's result: computed where they are used, never hoisted. */
const INLINE = Number.POSITIVE_INFINITY;

/** A scalar int, a scalar float, a vector of int lanes (indices or all-ones masks) or a vector of float lanes. */
export type ValueType = 'int' | 'float' | 'ivec' | 'fvec';
export type ArithOp = 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max';
export type CompareOp = 'lt' | 'le' | 'eq' | 'ne';

/**
 * How a target spells the printer's operations. Every method returns an expression (or, where said, statements);
 * addresses are byte offsets into the target's memory, an expression plus a constant.
 */
export interface VectorSyntax {
  /** Lanes of this kernel's vectors. */
  readonly lanes: number;
  /** Row bounds of the kernel function, as expressions. */
  readonly lo: string;
  readonly hi: string;
  /** An expression cheap enough to repeat instead of binding it to a local. */
  isSimple(code: string): boolean;
  /** The spelling of a local named `base` (loop variables `a0`, `r3`; temporaries `t5`). */
  name(base: string): string;
  get(name: string): string;
  set(name: string, code: string): string;
  declare(name: string, type: ValueType): string;
  /** Statements of a loop over `v` from `start` by `step` while below `end`; `runsOnce`: it runs at least once. */
  loop(id: number, v: string, start: string, end: string, step: number, runsOnce: boolean, body: readonly string[]): string[];

  iconst(n: number): string;
  iadd(a: string, b: string): string;
  isub(a: string, b: string): string;
  imul(a: string, k: number): string;
  /** Truncating division by a positive constant. */
  idiv(a: string, d: number): string;
  /** n adjusted so that truncating division by d floors (n - (d - 1) when n < 0). */
  floorAdjust(n: string, d: number): string;
  iminmax(kind: 'min' | 'max', a: string, b: string): string;
  icmp(op: CompareOp, a: string, b: string, vec: boolean): string;
  ivecSplat(code: string): string;
  ivecAdd(a: string, b: string): string;
  ivecConst(values: readonly number[]): string;
  ivecOf(codes: readonly string[]): string;

  fconst(v: number): string;
  fsplat(code: string): string;
  /** A scalar condition (0 or 1) as a vector mask of all-ones or all-zeros lanes. */
  maskSplat(code: string): string;
  fvecOf(codes: readonly string[]): string;
  load(address: string, offset: number, nonNegative: boolean, vec: boolean): string;
  /** Lanes of the 2W-lane concatenation of `first` and `second`. */
  shuffle(first: string, second: string, lanes: readonly number[]): string;
  store(address: string, offset: number, value: string, vec: boolean): string;
  arith(op: ArithOp, a: string, b: string, vec: boolean): string;
  /** a * b + acc as one fused multiply-add, when the target has one for vectors. */
  fma?(a: string, b: string, acc: string): string;
  /** `a` is a bound local when it is a vector (targets may read it once per lane). */
  unary(op: 'neg' | 'abs' | 'sqrt' | 'exp' | 'log', a: string, vec: boolean): string;
  convert(code: string, vec: boolean): string;
  fselect(a: string, b: string, mask: string, vec: boolean): string;
  fcmp(op: CompareOp, a: string, b: string, vec: boolean): string;
  mlogic(op: 'and' | 'or', a: string, b: string, vec: boolean): string;
  /** The sum or maximum of a vector's lanes. */
  hreduce(kind: 'sum' | 'max', v: string): string;
  /** Lane `i` of a vector (`v` is a bound local). */
  lane(v: string, i: number): string;
  /** The whole kernel function. */
  func(name: string, declarations: readonly string[], body: readonly string[]): string;
}

export interface VectorKernelSource {
  readonly name: string;
  /** The kernel function in the target's language. */
  readonly text: string;
  /** Extent of the split axis (the outermost longer than 1) when [lo, hi) may be a slice of it; 0 when it computes everything. */
  readonly splitExtent: number;
  /** lo and hi must be multiples of this (the outermost axis is register-blocked by it). */
  readonly splitAlign: number;
}

/** Byte addresses of the kernel's output and inputs in the shared memory. */
export interface KernelAddresses { readonly out: number; readonly inputs: readonly number[] }

/** What a target offers the printer: its vector widths (widest first) and its syntax for a chosen width. */
export interface VectorTarget {
  readonly widths: readonly number[];
  /** Vectors along the lane axis a reduction computes at once, most first (the lane axis must divide into them). */
  readonly unrolls: readonly number[];
  /** Copies along the register-blocked axis for a given unroll (so that unroll x block accumulators fit the registers). */
  registerBlock(unroll: number): number;
  /** Block by any divisor of the axis up to registerBlock, not only powers of two. */
  readonly anyBlockDivisor?: boolean;
  /** Copies along the outermost axis a lane reduction also blocks by, at most (2: 2 x 4 accumulators). */
  readonly laneReduceOuter: number;
  /**
   * Sums whose accumulators each add more than this many elements keep a partial sum per innermost row (blocked
   * summation); 0: every sum over several loops with rows of 16 or more.
   */
  readonly rowsAbove: number;
  /**
   * View an output's trailing axes shorter than two of the widest vectors as one axis (an 8x8 feature map as 64
   * pixels), so wide vectors fill and unroll; the affine forms still see contiguous reads across row ends.
   */
  readonly mergePlanes?: boolean;
  syntax(lanes: number): VectorSyntax;
}

interface Val { readonly code: string; readonly vec: boolean; readonly level: number }
/** One computed copy of the kernel body: its lanes (1 or W) and where each output axis stands in them. */
interface Copy { readonly lanes: readonly IndexEnv[] }

interface Block { readonly prelude: string[]; readonly body: string[]; readonly cache: Map<string, string> }

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

class VectorPrinter {
  private readonly declarations: string[] = [];
  /** Vector products by the read of the local holding them: a sum can add them with one fused multiply-add. */
  private readonly products = new Map<string, readonly [string, string]>();
  private readonly blocks: Block[] = [];
  private count = 0;
  private s!: VectorSyntax;
  private W = 1;
  /** The reduction whose innermost variable carries the lanes (mode "reduction"). */
  private laneReduce?: Extract<Expr, { k: 'reduce' }>;
  /** Vectors built lane by lane (gathered reads and index vectors): what a schedule costs beyond its arithmetic. */
  gathers = 0;

  constructor(private readonly k: LoweredKernel, private readonly at: KernelAddresses, private readonly target: VectorTarget) {}

  private get current(): Block { return this.blocks[this.blocks.length - 1]!; }

  private local(type: ValueType): string {
    const name = this.s.name(`t${this.count++}`);
    this.declarations.push(this.s.declare(name, type));
    return name;
  }

  /** Compute `code` once, in the outermost loop where everything it uses is defined; returns a read of it. */
  private bind(code: string, type: ValueType, level: number): string {
    if (this.s.isSimple(code)) return code;
    const key = `${type}${this.W}${code}`;
    for (const b of this.blocks) { const hit = b.cache.get(key); if (hit) return this.s.get(hit); }
    const name = this.local(type);
    const block = level === INLINE ? this.current : this.blocks[level]!;
    (level === INLINE ? block.body : block.prelude).push(this.s.set(name, code));
    block.cache.set(key, name);
    return this.s.get(name);
  }

  private bindVal(v: Val): Val { return { ...v, code: this.bind(v.code, v.vec ? 'fvec' : 'float', v.level) }; }

  // ---- loops ----

  /** Open a loop; its body is the new current block. */
  private openLoop(): void { this.blocks.push({ prelude: [], body: [], cache: new Map() }); }

  /** Close the current loop over `v` from `start` by `step` while below `end` (numbers: constants). */
  private closeLoop(v: string, start: number | string, end: number | string, step: number): void {
    const b = this.blocks.pop()!;
    const runsOnce = typeof start === 'number' && typeof end === 'number' && start < end;
    const code = (x: number | string): string => (typeof x === 'number' ? this.s.iconst(x) : x);
    this.current.body.push(...this.s.loop(this.count++, v, code(start), code(end), step, runsOnce, [...b.prelude, ...b.body]));
  }

  // ---- index arithmetic ----

  /** The non-constant part of a form as int code (partial sums hoisted level by level) and its constant. */
  private linCode(l: Lin): { code: string; c: number } {
    const levels = [...new Set(l.terms.map((t) => atomLevel(t.atom)))].sort((a, b) => a - b);
    let acc: string | undefined;
    for (const level of levels) {
      for (const t of l.terms.filter((x) => atomLevel(x.atom) === level)) {
        const a = this.atomCode(t.atom);
        const term = t.coef === 1 ? a : this.s.imul(a, t.coef);
        acc = acc ? this.s.iadd(acc, term) : term;
      }
      acc = this.bind(acc!, 'int', level);
    }
    return { code: acc ?? this.s.iconst(0), c: l.c };
  }

  /** A whole form as one int value. */
  private index(l: Lin): string {
    const { code, c } = this.linCode(l);
    if (l.terms.length === 0) return this.s.iconst(c);
    return c === 0 ? code : this.bind(this.s.iadd(code, this.s.iconst(c)), 'int', linLevel(l));
  }

  private atomCode(a: Atom): string {
    switch (a.kind) {
      case 'var': return this.s.get(a.v.name);
      case 'idiv': case 'mod': {
        const n = this.index(a.of);
        const level = atomLevel(a);
        // Floor division: truncating division is right for non-negative numerators, else round towards -inf.
        const num = linRange(a.of).lo >= 0 ? n : this.bind(this.s.floorAdjust(n, a.d), 'int', level);
        const q = this.bind(this.s.idiv(num, a.d), 'int', level);
        return a.kind === 'idiv' ? q : this.bind(this.s.isub(n, this.s.imul(q, a.d)), 'int', level);
      }
      case 'min': case 'max': return this.bind(this.s.iminmax(a.kind, this.index(a.a), this.index(a.b)), 'int', atomLevel(a));
    }
  }

  /** Integer lanes as an int vector (or one int when all lanes agree). */
  private intLanes(ls: readonly Lin[]): Val {
    const level = maxLevel(...ls.map((l) => ({ level: linLevel(l) })));
    if (ls.every((l) => linKey(l) === linKey(ls[0]!))) return { code: this.index(ls[0]!), vec: false, level };
    if (ls.every((l) => termsKey(l) === termsKey(ls[0]!))) {
      const { code } = this.linCode(ls[0]!);
      return { code: this.s.ivecAdd(this.s.ivecSplat(code), this.s.ivecConst(ls.map((l) => l.c))), vec: true, level };
    }
    this.gathers++;
    return { code: this.s.ivecOf(ls.map((l) => this.index(l))), vec: true, level };
  }

  // ---- values: float or float vector ----

  private splat(v: Val): string { return v.vec ? v.code : this.s.fsplat(v.code); }
  private maskSplat(m: Val): string { return m.vec ? m.code : this.s.maskSplat(m.code); }

  private read(e: Extract<Expr, { k: 'read' }>, copy: Copy): Val {
    const strides = stridesOf(this.k.inputs[e.input]!.layout.shape);
    const base = this.at.inputs[e.input]!;
    const address = (env: IndexEnv): Lin => e.index.reduce((acc, ix, d) => linAdd(acc, linScale(linOf(ix, env), 4 * strides[d]!)), linConst(base));
    const addrs = copy.lanes.map((env) => (this.target.mergePlanes ? recombineDivMod(address(env)) : address(env)));
    const load = (l: Lin, vec: boolean): Val => {
      const { code, c } = this.linCode(l);
      const text = this.s.load(code, c, linRange({ terms: l.terms, c: 0 }).lo >= 0, vec);
      return this.bindVal({ code: text, vec, level: linLevel(l) });
    };
    if (addrs.every((l) => linKey(l) === linKey(addrs[0]!))) return load(addrs[0]!, false);
    if (addrs.every((l, i) => termsKey(l) === termsKey(addrs[0]!) && l.c === addrs[0]!.c + 4 * i)) return load(addrs[0]!, true);
    // Lanes within two vectors of each other (a stride-2 read, a transposed stride-2 read's repeats): one or two
    // vector loads and a shuffle instead of a gather.
    if (addrs.every((l) => termsKey(l) === termsKey(addrs[0]!))) {
      const lo = Math.min(...addrs.map((l) => l.c));
      const offsets = addrs.map((l) => l.c - lo);
      if (offsets.every((o) => o % 4 === 0 && o < 8 * this.W)) {
        const first = load({ ...addrs[0]!, c: lo }, true);
        const second = offsets.some((o) => o >= 4 * this.W) ? load({ ...addrs[0]!, c: lo + 4 * this.W }, true) : first;
        return this.bindVal({ code: this.s.shuffle(first.code, second.code, offsets.map((o) => o / 4)), vec: true, level: maxLevel(first, second) });
      }
    }
    this.gathers++;
    const lanes = addrs.map((l) => load(l, false));
    return this.bindVal({ code: this.s.fvecOf(lanes.map((x) => x.code)), vec: true, level: maxLevel(...lanes) });
  }

  private arith(op: ArithOp, a: Val, b: Val): Val {
    const vec = a.vec || b.vec;
    const code = vec ? this.s.arith(op, this.splat(a), this.splat(b), true) : this.s.arith(op, a.code, b.code, false);
    const v = this.bindVal({ code, vec, level: maxLevel(a, b) });
    if (vec && op === 'mul') this.products.set(v.code, [this.splat(a), this.splat(b)]);
    return v;
  }

  private unary(op: 'neg' | 'abs' | 'sqrt' | 'exp' | 'log', a: Val): Val {
    const x = a.vec ? this.bind(a.code, 'fvec', a.level) : a.code;
    return this.bindVal({ code: this.s.unary(op, x, a.vec), vec: a.vec, level: a.level });
  }

  /** Values of `e` for every copy: reductions run one loop nest that updates all copies' accumulators. */
  private values(e: Expr, copies: readonly Copy[]): Val[] {
    if (e.k === 'reduce') return this.reduce(e, copies);
    if (e.k === 'const') return copies.map(() => ({ code: this.s.fconst(e.v), vec: false, level: 0 }));
    // Affine integer arithmetic (an output coordinate used as a value) is computed in ints; anything else in floats.
    if (isIntegerExpr(e) && copies.every((c) => c.lanes.every((env) => tryLinOf(e, env)))) {
      return copies.map((c) => {
        const v = this.intLanes(c.lanes.map((env) => linOf(e, env)));
        return this.bindVal({ code: this.s.convert(v.code, v.vec), vec: v.vec, level: v.level });
      });
    }
    switch (e.k) {
      case 'read': return copies.map((c) => this.read(e, c));
      case 'axis': case 'rvar': throw new Error(`${this.k.name}: loop variable outside its loop`);
      case 'un': return this.values(e.a, copies).map((a) => this.unary(e.op, a));
      case 'bin': {
        if (['lt', 'le', 'eq', 'and', 'or'].includes(e.op)) {
          return this.masks(e, copies).map((m) => this.bindVal({
            code: m.vec ? this.s.fselect(this.s.fsplat(this.s.fconst(1)), this.s.fsplat(this.s.fconst(0)), m.code, true) : this.s.fselect(this.s.fconst(1), this.s.fconst(0), m.code, false),
            vec: m.vec, level: m.level,
          }));
        }
        const as = this.values(e.a, copies);
        const bs = this.values(e.b, copies);
        if (!['add', 'sub', 'mul', 'div', 'min', 'max'].includes(e.op)) throw new Error(`${this.k.name}: ${e.op} on values`);
        return as.map((a, i) => this.arith(e.op as ArithOp, a, bs[i]!));
      }
      case 'select': {
        const ms = this.masks(e.cond, copies);
        const as = this.values(e.a, copies);
        const bs = this.values(e.b, copies);
        return ms.map((m, i) => {
          const a = as[i]!;
          const b = bs[i]!;
          const level = maxLevel(m, a, b);
          if (!m.vec && !a.vec && !b.vec) return this.bindVal({ code: this.s.fselect(a.code, b.code, m.code, false), vec: false, level });
          return this.bindVal({ code: this.s.fselect(this.splat(a), this.splat(b), this.maskSplat(m), true), vec: true, level });
        });
      }
      default: throw new Error(`${this.k.name}: cannot compute ${(e as Expr).k} as a value`);
    }
  }

  /** Conditions: int 0/1, or an int vector mask of all-ones lanes. */
  private masks(e: Expr, copies: readonly Copy[]): Val[] {
    const mask = (code: string, vec: boolean, level: number): Val => ({ code: this.bind(code, vec ? 'ivec' : 'int', level), vec, level });
    if (e.k === 'const') return copies.map(() => ({ code: this.s.iconst(e.v !== 0 ? 1 : 0), vec: false, level: 0 }));
    if (e.k === 'bin' && (e.op === 'and' || e.op === 'or')) {
      const as = this.masks(e.a, copies);
      const bs = this.masks(e.b, copies);
      return as.map((a, i) => {
        const b = bs[i]!;
        const vec = a.vec || b.vec;
        return mask(vec ? this.s.mlogic(e.op as 'and' | 'or', this.maskSplat(a), this.maskSplat(b), true) : this.s.mlogic(e.op as 'and' | 'or', a.code, b.code, false), vec, maxLevel(a, b));
      });
    }
    if (e.k === 'bin' && (e.op === 'lt' || e.op === 'le' || e.op === 'eq')) {
      const op = e.op;
      if (isIntegerExpr(e.a) && isIntegerExpr(e.b)) {
        // a < b  <=>  (a - b) - c < -c: compare the variable part against constants, one per lane.
        return copies.map((c) => {
          const ds = c.lanes.map((env) => linAdd(linOf(e.a, env), linOf(e.b, env), -1));
          const level = maxLevel(...ds.map((d) => ({ level: linLevel(d) })));
          if (ds[0]!.terms.length === 0 && ds.every((d) => linKey(d) === linKey(ds[0]!))) {
            const d = ds[0]!.c;
            return { code: this.s.iconst((op === 'lt' ? d < 0 : op === 'le' ? d <= 0 : d === 0) ? 1 : 0), vec: false, level: 0 };
          }
          if (ds.every((d) => linKey(d) === linKey(ds[0]!))) {
            const { code, c: k } = this.linCode(ds[0]!);
            return mask(this.s.icmp(op, code, this.s.iconst(-k), false), false, level);
          }
          if (ds.every((d) => termsKey(d) === termsKey(ds[0]!))) {
            const { code } = this.linCode(ds[0]!);
            return mask(this.s.icmp(op, this.s.ivecSplat(code), this.s.ivecConst(ds.map((d) => -d.c)), true), true, level);
          }
          const lanes = this.intLanes(ds);
          return mask(this.s.icmp(op, lanes.code, this.s.ivecConst(ds.map(() => 0)), true), true, level);
        });
      }
      const as = this.values(e.a, copies);
      const bs = this.values(e.b, copies);
      return as.map((a, i) => {
        const b = bs[i]!;
        const vec = a.vec || b.vec;
        return mask(vec ? this.s.fcmp(op, this.splat(a), this.splat(b), true) : this.s.fcmp(op, a.code, b.code, false), vec, maxLevel(a, b));
      });
    }
    // Any other value used as a condition: true when non-zero.
    return this.values(e, copies).map((v) => mask(v.vec ? this.s.fcmp('ne', v.code, this.s.fsplat(this.s.fconst(0)), true) : this.s.fcmp('ne', v.code, this.s.fconst(0), false), v.vec, v.level));
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>, copies: readonly Copy[]): Val[] {
    const isSum = e.kind === 'sum';
    const laned = e === this.laneReduce;
    const W = this.W;
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
    const chains = laned && copies.length === 1 ? [LANE_CHAINS, 2].find((n) => last!.extent % (n * W) === 0) ?? 1 : 1;
    const vars = loops.map((loop) => {
      this.openLoop();
      const step = laned && loop === last ? W * chains : 1;
      const lv: LoopVar = { name: this.s.name(`r${loop.ids[loop.ids.length - 1]}`), level: this.blocks.length - 1, align: step, max: loop.extent - step };
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
      lanes: laned ? Array.from({ length: W }, (_, l) => bind(c.lanes[0]!, chain * W + l, step)) : c.lanes.map((env) => bind(env, 0, step)),
    }))).flat());
    const bodies = this.values(e.body, inner);
    // Sums over several variables add each innermost row into its own partial sum first (blocked summation):
    // float32 rounding error then grows with the number of rows rather than with the number of elements.
    const perAccumulator = loops.reduce((p, l) => p * l.extent, 1) / (laned ? W * chains : 1);
    const rows = isSum && vars.length > 1 && last!.extent >= MIN_SUMMATION_ROW && perAccumulator > this.target.rowsAbove;
    const op: ArithOp = isSum ? 'add' : 'max';
    const accs = Array.from({ length: copies.length * chains }, (_, c) => {
      const vec = laned || bodies.some((b, i) => i % (copies.length * chains) === c && b.vec);
      const type = vec ? 'fvec' : 'float';
      const acc = this.local(type);
      const init = this.s.fconst(isSum ? 0 : -Infinity);
      return { acc, row: rows ? this.local(type) : acc, init: vec ? this.s.fsplat(init) : init, vec };
    });
    const update = (a: (typeof accs)[number], b: Val): string => {
      const product = isSum && a.vec && this.s.fma ? this.products.get(b.code) : undefined;
      const value = product ? this.s.fma!(product[0], product[1], this.s.get(a.row)) : this.s.arith(op, this.s.get(a.row), a.vec ? this.splat(b) : b.code, a.vec);
      return this.s.set(a.row, value);
    };
    if (vars.length === 0) this.current.body.push(...accs.map((a) => this.s.set(a.acc, a.init)));
    bodies.forEach((b, i) => this.current.body.push(update(accs[i % accs.length]!, b)));
    for (let i = vars.length - 1; i >= 0; i--) {
      const v = vars[i]!;
      const parent = this.blocks[this.blocks.length - 2]!;
      if (i === 0) parent.body.push(...accs.map((a) => this.s.set(a.acc, a.init)));
      if (rows && i === vars.length - 1) parent.body.push(...accs.map((a) => this.s.set(a.row, a.init)));
      this.closeLoop(v.lv.name, 0, v.extent, v.step);
      if (rows && i === vars.length - 1) this.current.body.push(...accs.map((a) => this.s.set(a.acc, this.s.arith(op, this.s.get(a.acc), this.s.get(a.row), a.vec))));
    }
    if (!laned) return accs.map((a) => ({ code: this.s.get(a.acc), vec: a.vec, level: INLINE }));
    const group = Math.min(W, copies.length);
    if (chains === 1 && group > 1 && copies.length % group === 0 && (group & (group - 1)) === 0) {
      return this.laneTotals(op, accs.map((a) => this.s.get(a.acc)), group);
    }
    // Each copy's chains, then the lanes of the vectorised reduction variable: combine them into one value.
    return copies.map((_, c) => {
      const [first, ...others] = accs.filter((_, i) => i % copies.length === c);
      const chained = others.reduce((code, a) => this.s.arith(op, code, this.s.get(a.acc), true), this.s.get(first!.acc));
      const total = others.length ? this.bind(chained, 'fvec', INLINE) : chained;
      return this.bindVal({ code: this.s.hreduce(e.kind, total), vec: false, level: INLINE });
    });
  }

  /**
   * The lane sums (or maxima) of several accumulators at once, `group` of them per vector: pairs of vectors are
   * folded into one by two shuffles and an add until one vector holds every accumulator's partial sums side by side,
   * each then folded onto its first lane. W - 1 vector adds and 2(W - 1) shuffles for W accumulators, where summing
   * each alone takes W - 1 scalar adds and W lane extractions.
   */
  private laneTotals(op: ArithOp, accs: readonly string[], group: number): Val[] {
    const W = this.W;
    const combine = (x: string, y: string, [a, b]: readonly (readonly number[])[]): string =>
      this.bind(this.s.arith(op, this.s.shuffle(x, y, a!), this.s.shuffle(x, y, b!), true), 'fvec', INLINE);
    const totals: Val[] = [];
    for (let g = 0; g < accs.length; g += group) {
      // Invariant: each vector is `segments` runs of `seg` lanes, run t holding partial sums of one accumulator.
      let level = accs.slice(g, g + group);
      let seg = W;
      let segments = 1;
      while (level.length > 1) {
        const half = seg / 2;
        // Lane l of the result: run t = l / half takes its part from x (t < segments) or y, in two halves summed.
        const pick = (d: number): number[] => Array.from({ length: W }, (_, l) => {
          const t = Math.floor(l / half);
          return (t < segments ? t * seg : W + (t - segments) * seg) + (l % half) + d;
        });
        const next: string[] = [];
        for (let i = 0; i < level.length; i += 2) next.push(combine(level[i]!, level[i + 1]!, [pick(0), pick(half)]));
        level = next;
        seg = half;
        segments *= 2;
      }
      // Fewer accumulators than lanes: fold each run onto its first lane.
      const run = seg;
      let v = level[0]!;
      for (let width = run; width > 1; width /= 2) {
        const half = width / 2;
        const folded = this.s.shuffle(v, v, Array.from({ length: W }, (_, l) => (l % width < half ? l + half : l)));
        v = this.bind(this.s.arith(op, v, folded, true), 'fvec', INLINE);
      }
      for (let t = 0; t < group; t++) totals.push(this.bindVal({ code: this.s.lane(v, t * run), vec: false, level: INLINE }));
    }
    return totals;
  }

  // ---- the kernel ----

  print(): VectorKernelSource {
    const k = this.k;
    const shape = k.output.shape;
    const rank = shape.length;
    const strides = stridesOf(shape);
    const reductions: Extract<Expr, { k: 'reduce' }>[] = [];
    visitExpr(k.body, (x) => { if (x.k === 'reduce') reductions.push(x); });
    // The widest vector the innermost axis fills; else the widest that divides the reduction's innermost loop.
    const axisWidth = rank >= 2 ? this.target.widths.find((w) => shape[rank - 1]! >= w) : undefined;
    const laneAxis = axisWidth !== undefined ? rank - 1 : -1;
    let W = axisWidth ?? 1;
    if (laneAxis < 0) {
      const top = topReduction(k.body);
      const extent = top && reductions.length === 1 ? reductionLoops(top, k).at(-1)!.extent : 0;
      const width = this.target.widths.find((w) => extent > 0 && extent % w === 0);
      if (width !== undefined) { this.laneReduce = top; W = width; }
    }
    this.W = W;
    this.s = this.target.syntax(W);
    // Axis [lo, hi) runs over: the outermost one longer than 1 (a keepdims reduction's output is [1, C, 1, 1]).
    const splitAxis = shape.findIndex((n, i) => n > 1 && i !== laneAxis);
    const blockAxis = reductions.length ? chooseBlockAxis(k, laneAxis, splitAxis, this.target.anyBlockDivisor) : -1;
    const unroll = laneAxis >= 0 && reductions.length ? this.target.unrolls.find((u) => shape[laneAxis]! % (u * W) === 0) ?? 1 : 1;
    const factor = blockAxis >= 0 ? blockFactor(shape[blockAxis]!, this.laneReduce ? 4 : this.target.registerBlock(unroll), this.target.anyBlockDivisor) : 1;
    // A reduction over lanes (a weight gradient: a matrix product over a long batch x pixels axis) also blocks the
    // outermost axis by 2 when that shares reads: 2 x 4 outputs take 6 vector loads per 8 multiply-adds, not 5 per 4.
    const outer = this.laneReduce && blockAxis >= 0 && splitAxis >= 0 && sharedReads(k, splitAxis, 2) > 0
      ? [4, 2].find((o) => o <= this.target.laneReduceOuter && shape[splitAxis]! % o === 0) ?? 1 : 1;

    this.blocks.push({ prelude: [], body: [], cache: new Map() });
    const loopVar = (i: number, align: number, max: number): LoopVar => ({ name: this.s.name(`a${i}`), level: this.blocks.length - 1, align, max });
    const vars: (LoopVar | undefined)[] = [];
    // Loops over every output axis but the lane axis; the split axis runs over [lo, hi).
    for (let i = 0; i < rank; i++) {
      if (i === laneAxis || shape[i] === 1) continue;
      this.openLoop();
      const step = i === blockAxis ? factor : i === splitAxis ? outer : 1;
      vars[i] = loopVar(i, step, shape[i]! - step);
    }
    const emitBody = (copies: readonly Copy[]): void => {
      const vals = this.values(k.body, copies);
      vals.forEach((v, c) => {
        const env = copies[c]!.lanes[0]!;
        const addr = shape.reduce((acc, _, d) => linAdd(acc, linScale(env.axis(d), 4 * strides[d]!)), linConst(this.at.out));
        const { code, c: off } = this.linCode(addr);
        const vec = copies[c]!.lanes.length > 1;
        this.current.body.push(this.s.store(code, off, vec ? this.splat(v) : v.code, vec));
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
      const chunk = W * unroll;
      const vectorEnd = Math.floor(width / chunk) * chunk;
      // Full vectors of the lane axis, then narrower vectors where the target has them (a 28-wide row: 16 + 8 + 4
      // lanes), then the remaining elements one by one.
      this.openLoop();
      const xv = loopVar(laneAxis, chunk, vectorEnd - chunk);
      emitBody(blocks.flatMap((j) => Array.from({ length: unroll }, (_, u) => ({ lanes: Array.from({ length: W }, (_, l) => envFor(xv, u * W + l, j)) }))));
      this.closeLoop(xv.name, 0, vectorEnd, chunk);
      let done = vectorEnd;
      for (const w of this.target.widths.filter((x) => x < W && width - vectorEnd >= x)) {
        if (width - done < w) continue;
        this.W = w;
        this.s = this.target.syntax(w);
        this.openLoop();
        const xw = loopVar(laneAxis, w, done);
        emitBody(blocks.map((j) => ({ lanes: Array.from({ length: w }, (_, l) => envFor(xw, l, j)) })));
        this.closeLoop(xw.name, done, done + w, w);
        done += w;
      }
      this.W = W;
      this.s = this.target.syntax(W);
      const vectorEndAll = done;
      if (vectorEndAll < width) {
        this.openLoop();
        const xs = loopVar(laneAxis, 1, width - 1);
        emitBody(blocks.map((j) => ({ lanes: [envFor(xs, 0, j)] })));
        this.closeLoop(xs.name, vectorEndAll, width, 1);
      }
    } else {
      emitBody(Array.from({ length: outer }, (_, o) => blocks.map((j) => ({ lanes: [envFor(undefined, 0, j, o)] }))).flat());
    }
    for (let i = rank - 1; i >= 0; i--) {
      const v = vars[i];
      if (!v) continue;
      if (i === splitAxis) this.closeLoop(v.name, this.s.lo, this.s.hi, outer);
      else this.closeLoop(v.name, 0, shape[i]!, i === blockAxis ? factor : 1);
    }
    const top = this.blocks.pop()!;
    const loopLocals = [...shape.map((_, i) => `a${i}`), ...new Set(reductions.flatMap((r) => r.vars.map((v) => `r${v.id}`)))]
      .map((n) => this.s.declare(this.s.name(n), 'int'));
    const text = this.s.func(k.name, [...loopLocals, ...this.declarations], [...top.prelude, ...top.body]);
    return { name: k.name, text, splitExtent: splitAxis >= 0 ? shape[splitAxis]! : 0, splitAlign: outer };
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
function chooseBlockAxis(k: LoweredKernel, laneAxis: number, splitAxis: number, anyDivisor = false): number {
  const shape = k.output.shape;
  let best = -1;
  let bestScore = 0;
  for (let b = Math.max(1, splitAxis + 1); b < shape.length; b++) {
    const factor = blockFactor(shape[b]!, 4, anyDivisor);
    if (b === laneAxis || factor < 2) continue;
    const score = sharedReads(k, b, factor);
    if (score > bestScore) { best = b; bestScore = score; }
  }
  return best;
}

/**
 * The same kernel over an output whose two last axes [H, W] are one axis of H * W elements (row-major, so every
 * output address stays the same): the old axes become p // W and p % W of the new one.
 */
export function mergeTrailingAxes(k: LoweredKernel): LoweredKernel {
  const shape = k.output.shape;
  const rank = shape.length;
  const W = shape[rank - 1]!;
  const body = mapExpr(k.body, (e) => {
    if (e.k !== 'axis' || e.i < rank - 2) return e;
    const p: Expr = { k: 'axis', i: rank - 2 };
    return e.i === rank - 2 ? bin('idiv', p, cst(W)) : bin('mod', p, cst(W));
  });
  return { ...k, body, output: { ...k.output, shape: [...shape.slice(0, rank - 2), shape[rank - 2]! * W] } };
}

/** Print one kernel for a target. */
export function printVectorKernel(k: LoweredKernel, at: KernelAddresses, target: VectorTarget): VectorKernelSource {
  const printed = new VectorPrinter(k, at, target);
  const source = printed.print();
  // Only planes at least one vector wide: a [C, C', 1, 1] weight gradient or a depthwise [C, 1, 3, 3] one keeps its
  // reduction over the pixels in the lanes. A merged schedule that gathers more lanes than the plain one is dropped
  // (a stride-2 pooling gradient's window indices differ lane by lane across row ends).
  const [widest, narrowest] = [target.widths[0]!, target.widths.at(-1)!];
  const shape = k.output.shape;
  if (!target.mergePlanes || shape.length < 3 || shape.at(-2)! < 2 || shape.at(-1)! < narrowest || shape.at(-1)! >= 2 * widest) return source;
  let kernel = mergeTrailingAxes(k);
  if (kernel.output.shape.length >= 3 && kernel.output.shape.at(-1)! < 2 * widest) kernel = mergeTrailingAxes(kernel);
  const merged = new VectorPrinter(kernel, at, target);
  const mergedSource = merged.print();
  return merged.gathers <= printed.gathers ? mergedSource : source;
}
