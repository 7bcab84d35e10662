// Prints a lowered kernel as gpu.js kernel source: readable JavaScript over `this.thread`, shapes as literal
// constants, reductions as loops with constant bounds. Index arithmetic avoids gpu.js's float32 traps: flat
// indices stay below 2^24 (larger tensors use 2-D views), and floor division is corrected to be exact even where
// the target's division is approximate (GLSL).
import { mapExpr, type Expr } from '../ir/expr';
import { sizeOf } from '../ir/graph';
import { simplify } from '../ir/simplify';
import type { LoweredKernel, TensorLayout } from './lower';
import { ExprPrinter, stridesOf } from './printer';

/** Outputs a packed kernel computes per thread: 4 consecutive elements, returned as one `Array(4)` texel. */
export const PACK = 4;

export interface GpujsPacking {
  /** Compute PACK consecutive outputs per thread (when the innermost output axis allows; see `packable`). */
  readonly output: boolean;
  /** Which inputs arrive packed (PACK elements per texel). */
  readonly inputs: readonly boolean[];
}

/** A kernel can be packed when its flat output's innermost axis is a multiple of PACK. */
export const packable = (k: LoweredKernel): boolean =>
  k.output.split === 0 && k.output.shape.length > 0 && k.output.shape[k.output.shape.length - 1]! % PACK === 0;

export interface GpujsKernelSource {
  readonly name: string;
  /** `function (a0, a1, ...) { ... }`, accepted by gpu.js's createKernel. */
  readonly source: string;
  /** gpu.js output size: [n] for a flat layout, [cols, rows] for a 2-D one. */
  readonly output: readonly number[];
  readonly loopMaxIterations: number;
}

class GpujsPrinter extends ExprPrinter {
  constructor(k: LoweredKernel, private readonly packedInputs: readonly boolean[] = []) { super(k); }

  protected floorDivText(a: Expr, n: string, b: number): string {
    const q = this.bindIndex(a, `Math.floor(${n} / ${b})`, 'q');
    return `${q} - (${q} * ${b} > ${n} ? 1 : 0) + ((${q} + 1) * ${b} <= ${n} ? 1 : 0)`;
  }

  protected read(input: number, index: readonly Expr[]): string {
    const layout = this.k.inputs[input]!.layout;
    const part = (from: number, to: number): string => {
      const strides = stridesOf(layout.shape.slice(from, to));
      const axes = index.slice(from, to);
      // A constant index is printed as one integer literal: gpu.js types an expression of literals as a float.
      if (axes.every((x) => x.k === 'const')) return String(axes.reduce((sum, x, d) => sum + (x as { v: number }).v * strides[d]!, 0));
      const terms = axes.map((x, d) => {
        const v = this.value(x);
        return strides[d] === 1 ? v : `${v} * ${strides[d]}`;
      }).filter((t) => t !== '0' && !/^0 \*/.test(t));
      return terms.length ? terms.join(' + ') : '0';
    };
    if (layout.split === 0 && this.packedInputs[input]) {
      // Element f of a packed tensor is component f % 4 of texel f // 4 (exact: a power of two below 2^24).
      const read: Expr = { k: 'read', input, index };
      const f = this.bindIndex(read, part(0, layout.shape.length), 'f');
      const texel = this.bindIndex(read, `Math.floor(${f} / ${PACK})`, 'q');
      const lane = this.bindIndex(read, `${f} - ${texel} * ${PACK}`, 'l');
      const v = this.bindIndex(read, `a${input}[${texel}]`, 'p');
      return `(${lane} == 0 ? ${v}[0] : (${lane} == 1 ? ${v}[1] : (${lane} == 2 ? ${v}[2] : ${v}[3])))`;
    }
    if (layout.split === 0) return `a${input}[${part(0, layout.shape.length)}]`;
    return `a${input}[${part(0, layout.split)}][${part(layout.split, layout.shape.length)}]`;
  }
}

/** Statements that compute each output coordinate from the thread ids, and the output size gpu.js needs. */
function threadAxes(out: TensorLayout, lines: string[]): number[] {
  const rank = out.shape.length;
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
  if (rank === 0) return [1];
  if (out.split === 0) {
    lines.push('  const t = this.thread.x;');
    decompose(0, rank, 't');
    return [sizeOf(out.shape)];
  }
  lines.push('  const row = this.thread.y;', '  const col = this.thread.x;');
  decompose(0, out.split, 'row');
  decompose(out.split, rank, 'col');
  return [sizeOf(out.shape.slice(out.split)), sizeOf(out.shape.slice(0, out.split))];
}

export function printGpujsKernel(k: LoweredKernel, packing: GpujsPacking = { output: false, inputs: [] }): GpujsKernelSource {
  const lines: string[] = [];
  const pack = packing.output && packable(k);
  const rank = k.output.shape.length;
  // Packed: thread t computes elements 4t .. 4t+3, the innermost axis x of copy j being 4 x' + j.
  const shape = pack ? k.output.shape.map((n, d) => (d === rank - 1 ? n / PACK : n)) : k.output.shape;
  const output = threadAxes({ shape, split: k.output.split }, lines);
  const axes = new Set(shape.map((_, i) => `i${i}`));
  const printer = new GpujsPrinter(k, packing.inputs);
  const scope = { lines, vars: axes, temps: new Map<string, string>(), indent: '  ' };
  let result: string;
  if (pack) {
    const copies = Array.from({ length: PACK }, (_, j) => simplify(mapExpr(k.body, (x) => (x.k === 'axis' && x.i === rank - 1
      ? { k: 'bin', op: 'add', a: { k: 'bin', op: 'mul', a: x, b: { k: 'const', v: PACK } }, b: { k: 'const', v: j } }
      : x)), shape));
    result = `[${printer.printCopies([scope], copies).join(', ')}]`;
  } else {
    result = printer.printInto([scope]);
  }
  const params = k.inputs.map((_, i) => `a${i}`).join(', ');
  const header = `// ${k.name}: ${k.ops.join(' > ')} -> [${k.output.shape.join(', ')}]${pack ? `, ${PACK} outputs per thread` : ''}`;
  const source = `function (${params}) {\n  ${header}\n${lines.join('\n')}\n  return ${result};\n}`;
  return { name: k.name, source, output, loopMaxIterations: k.maxLoopExtent + 1 };
}
