// The expression printer shared by the code generators: a kernel body becomes JavaScript statements (loops for
// reductions, constants for hoisted index arithmetic) and a result expression. The gpu.js and plain-JavaScript
// targets subclass it with their own element reads, integer division and loop structure.
import { visitExpr, type Expr } from '../ir/expr';
import type { LoweredKernel } from './lower';

export const num = (v: number): string => {
  if (v === Infinity) return '3.4028234663852886e+38';
  if (v === -Infinity) return '-3.4028234663852886e+38';
  if (Number.isNaN(v)) throw new Error('NaN constant in a kernel expression');
  return v < 0 ? `(${v})` : String(v);
};

export const stridesOf = (shape: readonly number[]): number[] => {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
};

/** Loop variables an expression depends on: output axes `i<k>` and reduction variables `r<id>` it does not bind. */
function freeLoopVars(e: Expr): Set<string> {
  const bound = new Set<string>();
  const used = new Set<string>();
  visitExpr(e, (x) => {
    if (x.k === 'reduce') x.vars.forEach((v) => bound.add(`r${v.id}`));
    if (x.k === 'rvar') used.add(`r${x.id}`);
    if (x.k === 'axis') used.add(`i${x.i}`);
  });
  return new Set([...used].filter((v) => !bound.has(v)));
}

/** An arithmetic binary op on two printed operands. */
function binaryText(op: string, a: string, b: string): string {
  switch (op) {
    case 'add': return `(${a} + ${b})`;
    case 'sub': return `(${a} - ${b})`;
    case 'mul': return `(${a} * ${b})`;
    case 'div': return `(${a} / ${b})`;
    case 'min': return `Math.min(${a}, ${b})`;
    case 'max': return `Math.max(${a}, ${b})`;
    default: throw new Error(`not an arithmetic op: ${op}`);
  }
}

export const hasReduce = (e: Expr): boolean => { let r = false; visitExpr(e, (x) => { if (x.k === 'reduce') r = true; }); return r; };
const hasRead = (e: Expr): boolean => { let r = false; visitExpr(e, (x) => { if (x.k === 'read') r = true; }); return r; };

/** A block of statements and the loop variables defined there (its own and its enclosing blocks'). */
export interface Scope { readonly lines: string[]; readonly vars: ReadonlySet<string>; readonly temps: Map<string, string>; readonly indent: string }

/**
 * Prints an expression as JavaScript statements plus a result expression. Index arithmetic is bound to constants
 * in the outermost block where its loop variables exist (loop-invariant hoisting); reductions become loops.
 * Targets differ in how they read an input element and divide integers.
 */
export abstract class ExprPrinter {
  private tmp = 0;
  protected readonly scopes: Scope[] = [];
  constructor(protected readonly k: LoweredKernel) {}

  protected abstract read(input: number, index: readonly Expr[]): string;
  /** floor(n / b) for the integer expression `a`, already held in variable `n`, and a positive integer constant b. */
  protected abstract floorDivText(a: Expr, n: string, b: number): string;

  /** Print the kernel body inside the given open blocks (outermost first); returns the result expression. */
  printInto(scopes: Scope[]): string {
    return this.printIn(scopes, this.k.body);
  }

  /** Print copies of an expression (see `values`) inside the given blocks, then close them again. */
  printCopies(scopes: Scope[], es: readonly Expr[]): string[] {
    const depth = this.scopes.length;
    this.scopes.push(...scopes);
    const texts = this.values(es);
    this.scopes.length = depth;
    return texts;
  }

  /** Print `e` inside the given blocks (outermost first), then close them again. */
  printIn(scopes: Scope[], e: Expr): string {
    const depth = this.scopes.length;
    this.scopes.push(...scopes);
    const text = this.value(e);
    this.scopes.length = depth;
    return text;
  }

  protected get scope(): Scope { return this.scopes[this.scopes.length - 1]!; }
  private fresh(prefix: string): string { return `${prefix}${this.tmp++}`; }

  /** Bind an index expression to a constant in the outermost scope where its reduction variables exist. */
  protected bindIndex(e: Expr, text: string, prefix = 't'): string {
    if (/^[\w.]+$/.test(text)) return text;
    const free = freeLoopVars(e);
    const target = this.scopes.find((s) => [...free].every((v) => s.vars.has(v))) ?? this.scope;
    const cached = this.scopes.slice(0, this.scopes.indexOf(target) + 1).map((s) => s.temps.get(text)).find((x) => x);
    if (cached) return cached;
    const name = this.fresh(prefix);
    target.lines.push(`${target.indent}const ${name} = ${text};`);
    target.temps.set(text, name);
    return name;
  }

  private floorDiv(a: Expr, b: number): string {
    return this.bindIndex(a, this.floorDivText(a, this.bindIndex(a, this.value(a)), b), 'd');
  }

  /**
   * Targets that may evaluate any subexpression early (plain JavaScript: no traps on any read or arithmetic) hoist
   * loop-invariant reads, arithmetic and conditions out of inner loops, not only index arithmetic.
   */
  protected hoistValues = false;

  /** Bind `text` (the printing of `e`) in an enclosing block when `e` does not depend on the current block's loops. */
  private hoisted(e: Expr, text: string, prefix: string): string {
    if (!this.hoistValues || /^[\w.]+$/.test(text) || hasReduce(e)) return text;
    const free = freeLoopVars(e);
    const target = this.scopes.find((s) => [...free].every((v) => s.vars.has(v)));
    if (!target || target.vars.size === this.scope.vars.size) return text;
    return this.bindIndex(e, text, prefix);
  }

  cond(e: Expr): string {
    return e.k === 'bin' ? this.hoisted(e, this.condText(e), 'c') : this.condText(e);
  }

  private condText(e: Expr): string {
    if (e.k === 'bin') {
      const rel = { lt: '<', le: '<=', eq: '==' } as const;
      if (e.op === 'lt' || e.op === 'le' || e.op === 'eq') return `(${this.value(e.a)} ${rel[e.op]} ${this.value(e.b)})`;
      if (e.op === 'and' || e.op === 'or') return `(${this.cond(e.a)} ${e.op === 'and' ? '&&' : '||'} ${this.cond(e.b)})`;
    }
    if (e.k === 'const') return e.v !== 0 ? 'true' : 'false';
    return `(${this.value(e)} != 0)`;
  }

  value(e: Expr): string {
    return e.k === 'read' || e.k === 'bin' || e.k === 'un' ? this.hoisted(e, this.valueText(e), 'v') : this.valueText(e);
  }

  protected valueText(e: Expr): string {
    switch (e.k) {
      case 'const': return num(e.v);
      case 'axis': return `i${e.i}`;
      case 'rvar': return `r${e.id}`;
      case 'read': return this.read(e.input, e.index);
      case 'un': {
        const a = this.value(e.a);
        return e.op === 'neg' ? `(-${a})` : `Math.${e.op}(${a})`;
      }
      case 'bin': {
        const a = (): string => this.value(e.a);
        const b = (): string => this.value(e.b);
        switch (e.op) {
          case 'add': case 'sub': case 'mul': case 'div': case 'min': case 'max': return binaryText(e.op, a(), b());
          case 'idiv': case 'mod': {
            if (e.b.k !== 'const' || !(e.b.v > 0) || !Number.isInteger(e.b.v) || hasRead(e.a)) {
              throw new Error(`${this.k.name}: ${e.op} needs an index numerator and a positive integer constant divisor`);
            }
            const d = this.floorDiv(e.a, e.b.v);
            return e.op === 'idiv' ? d : this.bindIndex(e, `${this.bindIndex(e.a, this.value(e.a))} - ${e.b.v} * ${d}`, 'm');
          }
          default: return `(${this.cond(e)} ? 1 : 0)`;
        }
      }
      case 'select': {
        if (!hasReduce(e.a) && !hasReduce(e.b)) return `(${this.cond(e.cond)} ? ${this.value(e.a)} : ${this.value(e.b)})`;
        // A reduction under a condition runs only on its branch, so its guarded reads stay in bounds.
        const outer = this.scope;
        const cond = this.cond(e.cond);
        const [a, b] = [e.a, e.b].map((branch) => this.block(outer.vars, `${outer.indent}  `, () => this.value(branch)));
        const name = this.fresh('s');
        outer.lines.push(`${outer.indent}let ${name} = 0;`, `${outer.indent}if (${cond}) {`, ...a!.lines,
          `${outer.indent}  ${name} = ${a!.value};`, `${outer.indent}} else {`, ...b!.lines, `${outer.indent}  ${name} = ${b!.value};`, `${outer.indent}}`);
        return name;
      }
      case 'reduce': return this.values([e])[0]!;
    }
  }

  /**
   * Print copies of one expression that differ only in index arithmetic (a thread computing several outputs):
   * a reduction runs as one loop nest with an accumulator per copy, so reads the copies share sit in the same
   * iteration; anything without a reduction is printed copy by copy.
   */
  values(es: readonly Expr[]): string[] {
    const e = es[0]!;
    if (!hasReduce(e)) return es.map((x) => this.value(x));
    if (e.k === 'reduce') {
      const outer = this.scope;
      const isSum = e.kind === 'sum';
      const inner = `${outer.indent}${'  '.repeat(e.vars.length)}`;
      const { lines, value: bodies } = this.block(new Set([...outer.vars, ...e.vars.map((v) => `r${v.id}`)]), inner, () => this.values(es.map((x) => (x as typeof e).body)));
      const accs = es.map(() => this.fresh('acc'));
      for (const acc of accs) outer.lines.push(`${outer.indent}let ${acc} = ${isSum ? '0' : num(-Infinity)};`);
      e.vars.forEach((v, i) => outer.lines.push(`${outer.indent}${'  '.repeat(i)}for (let r${v.id} = 0; r${v.id} < ${v.extent}; r${v.id}++) {`));
      outer.lines.push(...lines, ...accs.map((acc, c) => `${inner}${isSum ? `${acc} += ${bodies[c]};` : `${acc} = Math.max(${acc}, ${bodies[c]});`}`));
      for (let i = e.vars.length - 1; i >= 0; i--) outer.lines.push(`${outer.indent}${'  '.repeat(i)}}`);
      return accs;
    }
    if (e.k === 'bin' && ['add', 'sub', 'mul', 'div', 'min', 'max'].includes(e.op)) {
      const as = this.values(es.map((x) => (x as typeof e).a));
      const bs = this.values(es.map((x) => (x as typeof e).b));
      return as.map((a, c) => binaryText(e.op, a, bs[c]!));
    }
    return es.map((x) => this.value(x));
  }

  /** Print `f` into a nested block; index constants it needs may still be hoisted to enclosing scopes. */
  private block<T>(vars: ReadonlySet<string>, indent: string, f: () => T): { lines: string[]; value: T } {
    const lines: string[] = [];
    this.scopes.push({ lines, vars, temps: new Map(), indent });
    const value = f();
    this.scopes.pop();
    return { lines, value };
  }
}
