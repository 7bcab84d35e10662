// The plain-JavaScript target: a kernel is a loop nest over its output coordinates in row-major order, writing
// into a preallocated buffer. JavaScript numbers are float64, so integer indices are exact, and no read or
// arithmetic can trap, so every loop-invariant subexpression is hoisted out of inner loops.
// Schedule: a kernel whose value is one reduction (plus an epilogue) over an output with a long innermost axis
// runs the reduction loops outside a loop over that axis, accumulating a row at a time (loop interchange):
// the innermost loop then streams contiguous inputs with invariant weights and guards hoisted.
import { bin, cst, visitExpr, type Expr } from '../ir/expr';
import type { LoweredKernel } from './lower';
import { ExprPrinter, num, stridesOf, type Scope } from './printer';

export interface JsKernelSource {
  readonly name: string;
  /** The body of `function (out, a0, a1, ..., lo, hi)`. */
  readonly body: string;
  readonly params: readonly string[];
  /**
   * Extent of the outermost output axis when the kernel can compute any slice [lo, hi) of it (threads split it);
   * 0 when it always computes the whole output.
   */
  readonly splitExtent: number;
}

/** Shortest innermost axis worth the row schedule. */
const MIN_ROW = 8;

class JsPrinter extends ExprPrinter {
  /** In the epilogue of the row schedule, the reduction's value is the accumulator row. */
  row?: { readonly node: Expr; readonly text: string };

  constructor(k: LoweredKernel) {
    super(k);
    this.hoistValues = true;
  }

  protected override valueText(e: Expr): string {
    return this.row && e === this.row.node ? this.row.text : super.valueText(e);
  }

  protected floorDivText(_a: Expr, n: string, b: number): string {
    return `Math.floor(${n} / ${b})`;
  }

  protected read(input: number, index: readonly Expr[]): string {
    // The flat index as an expression, outer axes first: its loop-invariant prefix is hoisted like any other.
    const strides = stridesOf(this.k.inputs[input]!.layout.shape);
    const flat = index.reduce<Expr>((acc, x, d) => bin('add', acc, bin('mul', x, cst(strides[d]!))), cst(0));
    return `a${input}[${this.value(flat)}]`;
  }
}

/** The kernel's single reduction when it is not under a select or another reduction, else undefined. */
function rowReduction(k: LoweredKernel): Extract<Expr, { k: 'reduce' }> | undefined {
  const shape = k.output.shape;
  if (shape.length === 0 || shape[shape.length - 1]! < MIN_ROW) return undefined;
  let count = 0;
  visitExpr(k.body, (x) => { if (x.k === 'reduce') count++; });
  if (count !== 1) return undefined;
  const top = (e: Expr): Extract<Expr, { k: 'reduce' }> | undefined => {
    switch (e.k) {
      case 'reduce': return e;
      case 'bin': return top(e.a) ?? top(e.b);
      case 'un': return top(e.a);
      default: return undefined;
    }
  };
  return top(k.body);
}

const scope = (vars: readonly string[], depth: number): Scope =>
  ({ lines: [], vars: new Set(vars), temps: new Map(), indent: `  ${'  '.repeat(depth)}` });

export function printJsKernel(k: LoweredKernel): JsKernelSource {
  const shape = k.output.shape;
  const rank = shape.length;
  const axes = shape.map((_, i) => `i${i}`);
  const printer = new JsPrinter(k);
  const reduction = rowReduction(k);
  const nest = reduction ? rank - 1 : rank;
  // One block per output axis of the loop nest, each inside the previous: hoisted temps land in the right loop.
  const top = scope([], 0);
  const blocks = Array.from({ length: nest }, (_, d) => scope(axes.slice(0, d + 1), d + 1));
  // The outermost loop of the nest runs over [lo, hi), so threads can share a kernel.
  const splitExtent = nest >= 1 ? shape[0]! : 0;
  const perOuter = shape.slice(1).reduce((a, b) => a * b, 1);
  const out: string[] = [`  // ${k.name}: ${k.ops.join(' > ')} -> [${shape.join(', ')}]`, splitExtent ? `  let o = lo * ${perOuter};` : '  let o = 0;'];
  const inner: string[] = [];
  if (!reduction) {
    const result = printer.printInto([top, ...blocks]);
    inner.push(...blocks[nest - 1]?.lines ?? [], `${'  '.repeat(nest + 1)}out[o++] = ${result};`);
  } else {
    const last = `i${rank - 1}`;
    const width = shape[rank - 1]!;
    const isSum = reduction.kind === 'sum';
    const rvars = reduction.vars.map((v) => `r${v.id}`);
    const d = nest + 1;
    const rScope = scope([...axes.slice(0, nest), ...rvars], d + rvars.length - 1);
    const rowScope = scope([...axes.slice(0, nest), ...rvars, last], d + rvars.length);
    const body = printer.printIn([top, ...blocks, rScope, rowScope], reduction.body);
    printer.row = { node: reduction, text: `acc[${last}]` };
    const epilogueScope = scope([...axes.slice(0, nest), last], d);
    const result = printer.printIn([top, ...blocks, epilogueScope], k.body);
    const pad = (n: number): string => '  '.repeat(n);
    top.lines.unshift(`  const acc = new Float64Array(${width});`);
    inner.push(...(blocks[nest - 1]?.lines ?? []), `${pad(d)}acc.fill(${isSum ? 0 : num(-Infinity)});`);
    reduction.vars.forEach((v, i) => inner.push(`${pad(d + i)}for (let r${v.id} = 0; r${v.id} < ${v.extent}; r${v.id}++) {`));
    inner.push(...rScope.lines, `${pad(d + rvars.length)}for (let ${last} = 0; ${last} < ${width}; ${last}++) {`, ...rowScope.lines,
      `${pad(d + rvars.length + 1)}${isSum ? `acc[${last}] += ${body};` : `acc[${last}] = Math.max(acc[${last}], ${body});`}`,
      `${pad(d + rvars.length)}}`);
    for (let i = rvars.length - 1; i >= 0; i--) inner.push(`${pad(d + i)}}`);
    inner.push(`${pad(d)}for (let ${last} = 0; ${last} < ${width}; ${last}++) {`, ...epilogueScope.lines, `${pad(d + 1)}out[o++] = ${result};`, `${pad(d)}}`);
  }
  out.push(...top.lines);
  for (let d = 0; d < nest; d++) {
    out.push(d === 0 ? '  for (let i0 = lo; i0 < hi; i0++) {' : `${'  '.repeat(d + 1)}for (let i${d} = 0; i${d} < ${shape[d]}; i${d}++) {`);
    if (d < nest - 1) out.push(...blocks[d]!.lines);
  }
  out.push(...inner);
  for (let d = nest - 1; d >= 0; d--) out.push(`${'  '.repeat(d + 1)}}`);
  return { name: k.name, body: out.join('\n'), params: ['out', ...k.inputs.map((_, i) => `a${i}`), 'lo', 'hi'], splitExtent };
}
