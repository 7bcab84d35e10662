// Prints a lowered kernel as gpu.js kernel source: readable JavaScript over `this.thread`, shapes as literal
// constants, reductions as loops with constant bounds. Index arithmetic avoids gpu.js's float32 traps: flat
// indices stay below 2^24 (larger tensors use 2-D views), and floor division is corrected to be exact even where
// the target's division is approximate (GLSL).
import { visitExpr, type Expr } from '../ir/expr';
import { sizeOf } from '../ir/graph';
import type { LoweredKernel, TensorLayout } from './lower';

export interface GpujsKernelSource {
  readonly name: string;
  /** `function (a0, a1, ...) { ... }`, accepted by gpu.js's createKernel. */
  readonly source: string;
  /** gpu.js output size: [n] for a flat layout, [cols, rows] for a 2-D one. */
  readonly output: readonly number[];
  readonly loopMaxIterations: number;
}

const num = (v: number): string => {
  if (v === Infinity) return '3.4028234663852886e+38';
  if (v === -Infinity) return '-3.4028234663852886e+38';
  if (Number.isNaN(v)) throw new Error('NaN constant in a kernel expression');
  return v < 0 ? `(${v})` : String(v);
};

const stridesOf = (shape: readonly number[]): number[] => {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
};

function freeReduceVars(e: Expr): Set<number> {
  const bound = new Set<number>();
  const used = new Set<number>();
  visitExpr(e, (x) => {
    if (x.k === 'reduce') x.vars.forEach((v) => bound.add(v.id));
    if (x.k === 'rvar') used.add(x.id);
  });
  return new Set([...used].filter((v) => !bound.has(v)));
}

const hasReduce = (e: Expr): boolean => { let r = false; visitExpr(e, (x) => { if (x.k === 'reduce') r = true; }); return r; };
const hasRead = (e: Expr): boolean => { let r = false; visitExpr(e, (x) => { if (x.k === 'read') r = true; }); return r; };

interface Scope { readonly lines: string[]; readonly vars: ReadonlySet<number>; readonly temps: Map<string, string>; readonly indent: string }

class Printer {
  private tmp = 0;
  private readonly scopes: Scope[] = [];
  constructor(private readonly k: LoweredKernel, private readonly axisNames: readonly string[]) {}

  run(top: string[]): string {
    this.scopes.push({ lines: top, vars: new Set(), temps: new Map(), indent: '  ' });
    return this.value(this.k.body);
  }

  private get scope(): Scope { return this.scopes[this.scopes.length - 1]!; }
  private fresh(prefix: string): string { return `${prefix}${this.tmp++}`; }

  /** Bind an index expression to a constant in the outermost scope where its reduction variables exist. */
  private bindIndex(e: Expr, text: string, prefix = 't'): string {
    if (/^[\w.]+$/.test(text)) return text;
    const free = freeReduceVars(e);
    const target = this.scopes.find((s) => [...free].every((v) => s.vars.has(v))) ?? this.scope;
    const cached = this.scopes.slice(0, this.scopes.indexOf(target) + 1).map((s) => s.temps.get(text)).find((x) => x);
    if (cached) return cached;
    const name = this.fresh(prefix);
    target.lines.push(`${target.indent}const ${name} = ${text};`);
    target.temps.set(text, name);
    return name;
  }

  /** Exact floor(a / b) for integer a and a positive constant b. */
  private floorDiv(a: Expr, b: number): string {
    const n = this.bindIndex(a, this.value(a));
    const q = this.bindIndex(a, `Math.floor(${n} / ${b})`, 'q');
    return this.bindIndex(a, `${q} - (${q} * ${b} > ${n} ? 1 : 0) + ((${q} + 1) * ${b} <= ${n} ? 1 : 0)`, 'd');
  }

  cond(e: Expr): string {
    if (e.k === 'bin') {
      const rel = { lt: '<', le: '<=', eq: '==' } as const;
      if (e.op === 'lt' || e.op === 'le' || e.op === 'eq') return `(${this.value(e.a)} ${rel[e.op]} ${this.value(e.b)})`;
      if (e.op === 'and' || e.op === 'or') return `(${this.cond(e.a)} ${e.op === 'and' ? '&&' : '||'} ${this.cond(e.b)})`;
    }
    if (e.k === 'const') return e.v !== 0 ? 'true' : 'false';
    return `(${this.value(e)} != 0)`;
  }

  value(e: Expr): string {
    switch (e.k) {
      case 'const': return num(e.v);
      case 'axis': return this.axisNames[e.i]!;
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
          case 'add': return `(${a()} + ${b()})`;
          case 'sub': return `(${a()} - ${b()})`;
          case 'mul': return `(${a()} * ${b()})`;
          case 'div': return `(${a()} / ${b()})`;
          case 'min': return `Math.min(${a()}, ${b()})`;
          case 'max': return `Math.max(${a()}, ${b()})`;
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
      case 'reduce': {
        const outer = this.scope;
        const isSum = e.kind === 'sum';
        const inner = `${outer.indent}${'  '.repeat(e.vars.length)}`;
        const body = this.block(new Set([...outer.vars, ...e.vars.map((v) => v.id)]), inner, () => this.value(e.body));
        const acc = this.fresh('acc');
        outer.lines.push(`${outer.indent}let ${acc} = ${isSum ? '0' : num(-Infinity)};`);
        e.vars.forEach((v, i) => outer.lines.push(`${outer.indent}${'  '.repeat(i)}for (let r${v.id} = 0; r${v.id} < ${v.extent}; r${v.id}++) {`));
        outer.lines.push(...body.lines, `${inner}${isSum ? `${acc} += ${body.value};` : `${acc} = Math.max(${acc}, ${body.value});`}`);
        for (let i = e.vars.length - 1; i >= 0; i--) outer.lines.push(`${outer.indent}${'  '.repeat(i)}}`);
        return acc;
      }
    }
  }

  /** Print `f` into a nested block; index constants it needs may still be hoisted to enclosing scopes. */
  private block(vars: ReadonlySet<number>, indent: string, f: () => string): { lines: string[]; value: string } {
    const lines: string[] = [];
    this.scopes.push({ lines, vars, temps: new Map(), indent });
    const value = f();
    this.scopes.pop();
    return { lines, value };
  }

  private read(input: number, index: readonly Expr[]): string {
    const layout = this.k.inputs[input]!.layout;
    const part = (from: number, to: number): string => {
      const strides = stridesOf(layout.shape.slice(from, to));
      const terms = index.slice(from, to).map((x, d) => {
        const v = this.value(x);
        return strides[d] === 1 ? v : `${v} * ${strides[d]}`;
      }).filter((t) => t !== '0' && !/^0 \*/.test(t));
      return terms.length ? terms.join(' + ') : '0';
    };
    if (layout.split === 0) return `a${input}[${part(0, layout.shape.length)}]`;
    return `a${input}[${part(0, layout.split)}][${part(layout.split, layout.shape.length)}]`;
  }
}

/** Statements that compute each output coordinate from the thread ids, and the output size gpu.js needs. */
function threadAxes(out: TensorLayout, lines: string[]): { axes: string[]; output: number[] } {
  const rank = out.shape.length;
  const axes = out.shape.map((_, i) => `i${i}`);
  const decompose = (from: number, to: number, thread: string): void => {
    // Peel axes from the innermost: axis = rem - q * size, rem = q, with exact floor division.
    let rem = thread;
    for (let d = to - 1; d >= from; d--) {
      const size = out.shape[d]!;
      if (d === from) { lines.push(`  const i${d} = ${rem};`); break; }
      lines.push(`  const tq${d} = Math.floor(${rem} / ${size});`);
      lines.push(`  const tp${d} = tq${d} - (tq${d} * ${size} > ${rem} ? 1 : 0) + ((tq${d} + 1) * ${size} <= ${rem} ? 1 : 0);`);
      lines.push(`  const i${d} = ${rem} - tp${d} * ${size};`);
      rem = `tp${d}`;
    }
  };
  if (rank === 0) return { axes, output: [1] };
  if (out.split === 0) {
    lines.push('  const t = this.thread.x;');
    decompose(0, rank, 't');
    return { axes, output: [sizeOf(out.shape)] };
  }
  lines.push('  const row = this.thread.y;', '  const col = this.thread.x;');
  decompose(0, out.split, 'row');
  decompose(out.split, rank, 'col');
  return { axes, output: [sizeOf(out.shape.slice(out.split)), sizeOf(out.shape.slice(0, out.split))] };
}

export function printGpujsKernel(k: LoweredKernel): GpujsKernelSource {
  const lines: string[] = [];
  const { axes, output } = threadAxes(k.output, lines);
  const result = new Printer(k, axes).run(lines);
  const params = k.inputs.map((_, i) => `a${i}`).join(', ');
  const header = `// ${k.name}: ${k.ops.join(' > ')} -> [${k.output.shape.join(', ')}]`;
  const source = `function (${params}) {\n  ${header}\n${lines.join('\n')}\n  return ${result};\n}`;
  return { name: k.name, source, output, loopMaxIterations: k.maxLoopExtent + 1 };
}
