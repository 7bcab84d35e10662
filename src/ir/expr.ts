// Scalar expressions: the body of a tensor expression. One tree type serves index arithmetic (output axes,
// reduction variables, integer division) and values (reads of input elements, float math), as in TVM's `te`.
// Integer semantics: `idiv` is floor division and `mod` is the matching non-negative remainder.

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'idiv' | 'mod' | 'min' | 'max'
  | 'lt' | 'le' | 'eq' | 'and' | 'or';
export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'abs';
export type ReduceKind = 'sum' | 'max';

export interface ReduceVar { readonly id: number; readonly extent: number }

export type Expr =
  | { readonly k: 'const'; readonly v: number }
  | { readonly k: 'axis'; readonly i: number }                       // output coordinate i
  | { readonly k: 'rvar'; readonly id: number }                      // reduction variable
  | { readonly k: 'read'; readonly input: number; readonly index: readonly Expr[] }
  | { readonly k: 'bin'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'un'; readonly op: UnaryOp; readonly a: Expr }
  | { readonly k: 'select'; readonly cond: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'reduce'; readonly kind: ReduceKind; readonly vars: readonly ReduceVar[]; readonly body: Expr };

export const cst = (v: number): Expr => ({ k: 'const', v });
export const axis = (i: number): Expr => ({ k: 'axis', i });

/** Rebuild an expression bottom-up; `f` sees each node after its children were mapped. */
export function mapExpr(e: Expr, f: (e: Expr) => Expr): Expr {
  switch (e.k) {
    case 'const': case 'axis': case 'rvar': return f(e);
    case 'read': return f({ ...e, index: e.index.map((x) => mapExpr(x, f)) });
    case 'bin': return f({ ...e, a: mapExpr(e.a, f), b: mapExpr(e.b, f) });
    case 'un': return f({ ...e, a: mapExpr(e.a, f) });
    case 'select': return f({ ...e, cond: mapExpr(e.cond, f), a: mapExpr(e.a, f), b: mapExpr(e.b, f) });
    case 'reduce': return f({ ...e, body: mapExpr(e.body, f) });
  }
}

export function visitExpr(e: Expr, f: (e: Expr) => void): void {
  f(e);
  switch (e.k) {
    case 'read': e.index.forEach((x) => visitExpr(x, f)); break;
    case 'bin': visitExpr(e.a, f); visitExpr(e.b, f); break;
    case 'un': visitExpr(e.a, f); break;
    case 'select': visitExpr(e.cond, f); visitExpr(e.a, f); visitExpr(e.b, f); break;
    case 'reduce': visitExpr(e.body, f); break;
    default: break;
  }
}

/** Number of multiply-adds (for reductions: body evaluations) needed for one output element. */
export function reduceWork(e: Expr): number {
  switch (e.k) {
    case 'reduce': return e.vars.reduce((p, v) => p * v.extent, 1) * Math.max(1, reduceWork(e.body));
    case 'bin': return reduceWork(e.a) + reduceWork(e.b);
    case 'un': return reduceWork(e.a);
    case 'select': return Math.max(reduceWork(e.a), reduceWork(e.b));
    default: return 0;
  }
}

// Constant folding keeps inlined index arithmetic small and readable (x*1, x+0, (a*k)/k after substitution).
function fold(op: BinaryOp, a: Expr, b: Expr): Expr | null {
  const ca = a.k === 'const' ? a.v : null;
  const cb = b.k === 'const' ? b.v : null;
  if (ca !== null && cb !== null) return cst(evalBinary(op, ca, cb));
  if (op === 'add') { if (ca === 0) return b; if (cb === 0) return a; }
  if (op === 'sub' && cb === 0) return a;
  if (op === 'mul') {
    if (ca === 1) return b; if (cb === 1) return a;
    if ((ca === 0 || cb === 0) && isIndexExpr(a) && isIndexExpr(b)) return cst(0);
  }
  if ((op === 'idiv' || op === 'div') && cb === 1) return a;
  if (op === 'mod' && cb === 1) return cst(0);
  return null;
}

/** True when the expression is pure index arithmetic (no reads), so folding `0 * e` cannot hide a NaN. */
export function isIndexExpr(e: Expr): boolean {
  let pure = true;
  visitExpr(e, (x) => { if (x.k === 'read' || x.k === 'reduce') pure = false; });
  return pure;
}

export function evalBinary(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'idiv': return Math.floor(a / b);
    case 'mod': return a - b * Math.floor(a / b);
    case 'min': return Math.min(a, b);
    case 'max': return Math.max(a, b);
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'eq': return a === b ? 1 : 0;
    case 'and': return a !== 0 && b !== 0 ? 1 : 0;
    case 'or': return a !== 0 || b !== 0 ? 1 : 0;
  }
}

export function evalUnary(op: UnaryOp, a: number): number {
  switch (op) {
    case 'neg': return -a;
    case 'exp': return Math.exp(a);
    case 'log': return Math.log(a);
    case 'sqrt': return Math.sqrt(a);
    case 'abs': return Math.abs(a);
  }
}

export function bin(op: BinaryOp, a: Expr, b: Expr): Expr {
  return fold(op, a, b) ?? { k: 'bin', op, a, b };
}

/** Readable infix form, used by the IR printer and in error messages. */
export function exprToString(e: Expr, names: readonly string[] = []): string {
  const sym: Partial<Record<BinaryOp, string>> = {
    add: '+', sub: '-', mul: '*', div: '/', idiv: '//', mod: '%', lt: '<', le: '<=', eq: '==', and: '&&', or: '||',
  };
  const s = (x: Expr): string => exprToString(x, names);
  switch (e.k) {
    case 'const': return String(e.v);
    case 'axis': return `i${e.i}`;
    case 'rvar': return `r${e.id}`;
    case 'read': return `${names[e.input] ?? `in${e.input}`}[${e.index.map(s).join(', ')}]`;
    case 'bin': return sym[e.op] ? `(${s(e.a)} ${sym[e.op]} ${s(e.b)})` : `${e.op}(${s(e.a)}, ${s(e.b)})`;
    case 'un': return `${e.op}(${s(e.a)})`;
    case 'select': return `(${s(e.cond)} ? ${s(e.a)} : ${s(e.b)})`;
    case 'reduce':
      return `${e.kind}[${e.vars.map((v) => `r${v.id}<${v.extent}`).join(', ')}](${s(e.body)})`;
  }
}
