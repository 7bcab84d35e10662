// The tensor-expression DSL: `compute(shape, (i, j, ...) => expr)` with explicit `sum`/`max` reductions, in the
// spirit of TVM's te.compute and Halide Funcs. Built-in and user ops are written with exactly these functions.
import { axis, bin, cst, type BinaryOp, type Expr, type ReduceKind, type UnaryOp } from './expr';

export type Ix = E | number;

const lift = (x: Ix): Expr => (typeof x === 'number' ? cst(x) : x.node);

/** A scalar expression with chainable arithmetic, so op bodies read like maths: `x.at(n, c).mul(w.at(c))`. */
export class E {
  constructor(readonly node: Expr) {}
  private b(op: BinaryOp, o: Ix): E { return new E(bin(op, this.node, lift(o))); }
  private u(op: UnaryOp): E { return new E({ k: 'un', op, a: this.node }); }
  add(o: Ix): E { return this.b('add', o); }
  sub(o: Ix): E { return this.b('sub', o); }
  mul(o: Ix): E { return this.b('mul', o); }
  div(o: Ix): E { return this.b('div', o); }
  /** Floor division (index arithmetic). */
  idiv(o: Ix): E { return this.b('idiv', o); }
  mod(o: Ix): E { return this.b('mod', o); }
  min(o: Ix): E { return this.b('min', o); }
  max(o: Ix): E { return this.b('max', o); }
  lt(o: Ix): E { return this.b('lt', o); }
  le(o: Ix): E { return this.b('le', o); }
  gt(o: Ix): E { return new E(bin('lt', lift(o), this.node)); }
  ge(o: Ix): E { return new E(bin('le', lift(o), this.node)); }
  eq(o: Ix): E { return this.b('eq', o); }
  and(o: Ix): E { return this.b('and', o); }
  or(o: Ix): E { return this.b('or', o); }
  neg(): E { return this.u('neg'); }
  exp(): E { return this.u('exp'); }
  log(): E { return this.u('log'); }
  sqrt(): E { return this.u('sqrt'); }
  abs(): E { return this.u('abs'); }
}

export const lit = (v: number): E => new E(cst(v));
export const select = (cond: Ix, a: Ix, b: Ix): E => new E({ k: 'select', cond: lift(cond), a: lift(a), b: lift(b) });

/** `lo <= i < hi` for every coordinate, as one condition. */
export function inRange(idx: readonly Ix[], hi: readonly number[]): E {
  let c: E = lit(1);
  idx.forEach((i, d) => {
    if (typeof i === 'number') { if (i < 0 || i >= hi[d]!) c = lit(0); return; }
    c = c.and(i.ge(0)).and(i.lt(hi[d]!));
  });
  return c;
}

let nextReduceVar = 1;
/** A fresh reduction-variable id; reductions never share ids, so inlining cannot capture variables. */
export const freshReduceVar = (): number => nextReduceVar++;

function reduce(kind: ReduceKind, extents: readonly number[], body: (...r: E[]) => Ix): E {
  if (extents.length === 0) return new E(lift(body()));
  const vars = extents.map((extent) => ({ id: freshReduceVar(), extent }));
  return new E({ k: 'reduce', kind, vars, body: lift(body(...vars.map((v) => new E({ k: 'rvar', id: v.id })))) });
}
/** Sum over the box `extents`, the body seeing one reduction variable per extent. */
export const sum = (extents: readonly number[], body: (...r: E[]) => Ix): E => reduce('sum', extents, body);
/** Maximum over the box `extents`. */
export const maximum = (extents: readonly number[], body: (...r: E[]) => Ix): E => reduce('max', extents, body);

/** An op input inside a tensor expression: its shape and element reads. */
export class Placeholder {
  constructor(readonly index: number, readonly shape: readonly number[]) {}
  get rank(): number { return this.shape.length; }
  at(...idx: Ix[]): E {
    if (idx.length !== this.shape.length) {
      throw new Error(`read of input ${this.index} with ${idx.length} indices, but it has rank ${this.shape.length}`);
    }
    return new E({ k: 'read', input: this.index, index: idx.map(lift) });
  }
  /** Read with zero (or `fill`) outside the tensor: how padding is written. */
  atOr(fill: number, ...idx: Ix[]): E {
    return select(inRange(idx, this.shape), this.at(...idx), fill);
  }
}

/** A tensor expression: the output shape and one scalar expression over its coordinates. */
export interface TensorExpr { readonly shape: readonly number[]; readonly body: Expr }

export function compute(shape: readonly number[], f: (...axes: E[]) => Ix): TensorExpr {
  return { shape: [...shape], body: lift(f(...shape.map((_, i) => new E(axis(i))))) };
}
