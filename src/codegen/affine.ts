// Affine forms of index expressions: sum of coef * atom + constant, where an atom is a loop variable or an integer
// division / remainder / min / max of another affine form. Code generators use them to see what vector lanes and
// unrolled copies share: a loop variable stepping by 4 carries "multiple of 4", so (4k + j) // 20 with j < 4
// normalises to (4k) // 20 for every j, and lanes x + 0..3 of a read are recognised as one contiguous load.
import type { Expr } from '../ir/expr';

export interface LoopVar {
  readonly name: string;
  /** Depth of the loop that defines it (0: the kernel's top level). */
  readonly level: number;
  /** The variable only takes multiples of this. */
  readonly align: number;
  /** Largest value it takes. */
  readonly max: number;
}

export type Atom =
  | { readonly kind: 'var'; readonly v: LoopVar }
  | { readonly kind: 'idiv' | 'mod'; readonly of: Lin; readonly d: number }
  | { readonly kind: 'min' | 'max'; readonly a: Lin; readonly b: Lin };

export interface Term { readonly coef: number; readonly atom: Atom; readonly key: string }
export interface Lin { readonly terms: readonly Term[]; readonly c: number }

export const atomKey = (a: Atom): string => {
  switch (a.kind) {
    case 'var': return a.v.name;
    case 'idiv': case 'mod': return `${a.kind}(${linKey(a.of)},${a.d})`;
    case 'min': case 'max': return `${a.kind}(${linKey(a.a)},${linKey(a.b)})`;
  }
};

export const linKey = (l: Lin): string => `${l.terms.map((t) => `${t.coef}*${t.key}`).join('+')}+${l.c}`;
/** The form without its constant: two forms with equal `termsKey` differ by a constant. */
export const termsKey = (l: Lin): string => l.terms.map((t) => `${t.coef}*${t.key}`).join('+');

export const linConst = (c: number): Lin => ({ terms: [], c });
export const linVar = (v: LoopVar, offset = 0): Lin => fromAtom({ kind: 'var', v }, offset);
const fromAtom = (atom: Atom, c = 0): Lin => ({ terms: [{ coef: 1, atom, key: atomKey(atom) }], c });

export function linAdd(a: Lin, b: Lin, scaleB = 1): Lin {
  const byKey = new Map<string, Term>();
  for (const t of a.terms) byKey.set(t.key, t);
  for (const t of b.terms) {
    const prev = byKey.get(t.key);
    byKey.set(t.key, { ...t, coef: (prev?.coef ?? 0) + scaleB * t.coef });
  }
  const terms = [...byKey.values()].filter((t) => t.coef !== 0).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  return { terms, c: a.c + scaleB * b.c };
}

export const linScale = (a: Lin, k: number): Lin =>
  k === 0 ? linConst(0) : { terms: a.terms.map((t) => ({ ...t, coef: t.coef * k })), c: a.c * k };

const gcd = (a: number, b: number): number => (b === 0 ? Math.abs(a) : gcd(b, a % b));
const alignOf = (a: Atom): number => (a.kind === 'var' ? a.v.align : 1);
/** Largest K such that the non-constant part is always a multiple of K (0 when there is none). */
const multipleOf = (l: Lin): number => l.terms.reduce((g, t) => gcd(g, t.coef * alignOf(t.atom)), 0);

function floorDivForm(l: Lin, d: number, kind: 'idiv' | 'mod'): Lin {
  const k = multipleOf(l);
  const fdiv = Math.floor(l.c / d);
  if (k === 0) return linConst(kind === 'idiv' ? fdiv : l.c - d * fdiv);
  const rest: Lin = { terms: l.terms, c: 0 };
  if (k % d === 0) {
    // The variable part is a multiple of d: only the constant's quotient and remainder remain.
    if (kind === 'mod') return linConst(l.c - d * fdiv);
    const quotient = l.terms.every((t) => t.coef % d === 0) ? linScale(rest, 1 / d) : fromAtom({ kind, of: rest, d });
    return linAdd(quotient, linConst(fdiv));
  }
  if (d % k === 0) {
    // The variable part X is a multiple of k and d is too: (X + q*k + r) // d == (X + q*k) // d for 0 <= r < k.
    const q = Math.floor(l.c / k) * k;
    const atom: Atom = { kind, of: { terms: l.terms, c: q }, d };
    return fromAtom(atom, kind === 'idiv' ? 0 : l.c - q);
  }
  return fromAtom({ kind, of: l, d });
}

/**
 * The form with every pair d * k * (X // d) + k * (X % d) replaced by k * X (floor division's identity): a read of
 * [h, w] = [p // W, p % W] at h * W + w addresses p itself, so lanes along a merged plane stay contiguous.
 */
export function recombineDivMod(l: Lin): Lin {
  let out = l;
  for (const t of l.terms) {
    if (t.atom.kind !== 'mod') continue;
    const { of, d } = t.atom;
    const quotient = out.terms.find((q) => q.atom.kind === 'idiv' && q.atom.d === d && linKey(q.atom.of) === linKey(of) && q.coef === d * t.coef);
    const remainder = out.terms.find((r) => r.key === t.key);
    if (!quotient || !remainder) continue;
    const rest: Lin = { terms: out.terms.filter((x) => x !== quotient && x !== remainder), c: out.c };
    out = linAdd(rest, linScale(of, t.coef));
  }
  return out;
}

/** Smallest and largest value of a form. */
export function linRange(l: Lin): { lo: number; hi: number } {
  let lo = l.c;
  let hi = l.c;
  for (const t of l.terms) {
    const r = atomRange(t.atom);
    lo += Math.min(t.coef * r.lo, t.coef * r.hi);
    hi += Math.max(t.coef * r.lo, t.coef * r.hi);
  }
  return { lo, hi };
}

function atomRange(a: Atom): { lo: number; hi: number } {
  switch (a.kind) {
    case 'var': return { lo: 0, hi: a.v.max };
    case 'idiv': { const r = linRange(a.of); return { lo: Math.floor(r.lo / a.d), hi: Math.floor(r.hi / a.d) }; }
    case 'mod': return { lo: 0, hi: a.d - 1 };
    case 'min': case 'max': {
      const x = linRange(a.a);
      const y = linRange(a.b);
      const f = a.kind === 'min' ? Math.min : Math.max;
      return { lo: f(x.lo, y.lo), hi: f(x.hi, y.hi) };
    }
  }
}

/** Deepest loop an atom or form depends on. */
export const linLevel = (l: Lin): number => l.terms.reduce((m, t) => Math.max(m, atomLevel(t.atom)), 0);
export function atomLevel(a: Atom): number {
  switch (a.kind) {
    case 'var': return a.v.level;
    case 'idiv': case 'mod': return linLevel(a.of);
    case 'min': case 'max': return Math.max(linLevel(a.a), linLevel(a.b));
  }
}

/** Where each output axis and reduction variable stands in the current loop nest. */
export interface IndexEnv { readonly axis: (i: number) => Lin; readonly rvar: (id: number) => Lin }

/** True for integer index arithmetic: no reads, reductions, float division, transcendental ops or fractions. */
export function isIntegerExpr(e: Expr): boolean {
  switch (e.k) {
    case 'const': return Number.isInteger(e.v);
    case 'axis': case 'rvar': return true;
    case 'bin': return e.op !== 'div' && isIntegerExpr(e.a) && isIntegerExpr(e.b);
    case 'un': return e.op === 'neg' && isIntegerExpr(e.a);
    default: return false;
  }
}

/** The affine form of `e`, or undefined when it is not affine (a product of two variables, a comparison...). */
export function tryLinOf(e: Expr, env: IndexEnv): Lin | undefined {
  try {
    return linOf(e, env);
  } catch {
    return undefined;
  }
}

/** The affine form of integer expression `e` (comparisons excluded: they are conditions, not indices). */
export function linOf(e: Expr, env: IndexEnv): Lin {
  switch (e.k) {
    case 'const': return linConst(e.v);
    case 'axis': return env.axis(e.i);
    case 'rvar': return env.rvar(e.id);
    case 'un': if (e.op === 'neg') return linScale(linOf(e.a, env), -1); break;
    case 'bin': {
      const a = linOf(e.a, env);
      const b = linOf(e.b, env);
      switch (e.op) {
        case 'add': return linAdd(a, b);
        case 'sub': return linAdd(a, b, -1);
        case 'mul':
          if (a.terms.length === 0) return linScale(b, a.c);
          if (b.terms.length === 0) return linScale(a, b.c);
          break;
        case 'idiv': case 'mod':
          if (b.terms.length === 0 && Number.isInteger(b.c) && b.c > 0) return floorDivForm(a, b.c, e.op);
          break;
        case 'min': case 'max': return fromAtom({ kind: e.op, a, b });
        default: break;
      }
      break;
    }
    default: break;
  }
  throw new Error(`not an affine index expression: ${e.k}${'op' in e ? ` ${e.op}` : ''}`);
}
