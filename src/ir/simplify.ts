// Interval-based simplification of index arithmetic: bounds checks that always hold (or never hold) disappear,
// `x mod k` with 0 <= x < k becomes x, and `x // k` with 0 <= x < k becomes 0. Run after inlining, where reshape
// and transpose chains leave many such terms, and before printing kernels.
import { bin, cst, mapExpr, visitExpr, type Expr } from './expr';

interface Range { readonly lo: number; readonly hi: number }
const ANY: Range = { lo: -Infinity, hi: Infinity };

export function rangeOf(e: Expr, axes: readonly number[], rvars: ReadonlyMap<number, number>): Range {
  const r = (x: Expr): Range => rangeOf(x, axes, rvars);
  switch (e.k) {
    case 'const': return { lo: e.v, hi: e.v };
    case 'axis': return { lo: 0, hi: axes[e.i]! - 1 };
    case 'rvar': return { lo: 0, hi: (rvars.get(e.id) ?? Infinity) - 1 };
    case 'bin': {
      const a = r(e.a);
      const b = r(e.b);
      switch (e.op) {
        case 'add': return { lo: a.lo + b.lo, hi: a.hi + b.hi };
        case 'sub': return { lo: a.lo - b.hi, hi: a.hi - b.lo };
        case 'mul': {
          const p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi].filter((x) => !Number.isNaN(x));
          return p.length === 4 ? { lo: Math.min(...p), hi: Math.max(...p) } : ANY;
        }
        case 'idiv': return b.lo === b.hi && b.lo > 0 ? { lo: Math.floor(a.lo / b.lo), hi: Math.floor(a.hi / b.lo) } : ANY;
        case 'mod': return b.lo === b.hi && b.lo > 0 ? { lo: 0, hi: b.lo - 1 } : ANY;
        case 'min': return { lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi) };
        case 'max': return { lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
        case 'lt': case 'le': case 'eq': case 'and': case 'or': return { lo: 0, hi: 1 };
        default: return ANY;
      }
    }
    case 'select': { const a = r(e.a); const b = r(e.b); return { lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) }; }
    default: return ANY;
  }
}

/** Simplify `e`, an expression over an output of shape `shape`. */
export function simplify(e: Expr, shape: readonly number[]): Expr {
  const rvars = new Map<number, number>();
  visitExpr(e, (x) => { if (x.k === 'reduce') x.vars.forEach((v) => rvars.set(v.id, v.extent)); });
  const range = (x: Expr): Range => rangeOf(x, shape, rvars);
  return mapExpr(e, (x) => {
    if (x.k === 'axis' && shape[x.i] === 1) return cst(0);
    if (x.k === 'rvar' && rvars.get(x.id) === 1) return cst(0);
    if (x.k === 'reduce' && x.vars.some((v) => v.extent === 1)) {
      const vars = x.vars.filter((v) => v.extent !== 1);
      return vars.length ? { ...x, vars } : x.body;
    }
    if (x.k === 'select' && x.cond.k === 'const') return x.cond.v !== 0 ? x.a : x.b;
    if (x.k !== 'bin') return x;
    const a = range(x.a);
    const b = range(x.b);
    switch (x.op) {
      case 'lt': return a.hi < b.lo ? cst(1) : a.lo >= b.hi ? cst(0) : x;
      case 'le': return a.hi <= b.lo ? cst(1) : a.lo > b.hi ? cst(0) : x;
      case 'and':
        if (x.a.k === 'const') return x.a.v !== 0 ? x.b : cst(0);
        if (x.b.k === 'const') return x.b.v !== 0 ? x.a : cst(0);
        return x;
      case 'mod': return x.b.k === 'const' && a.lo >= 0 && a.hi < x.b.v ? x.a : x;
      case 'idiv': return x.b.k === 'const' && a.lo >= 0 && a.hi < x.b.v ? cst(0) : x;
      default: return bin(x.op, x.a, x.b);
    }
  });
}
