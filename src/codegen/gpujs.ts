// Prints a lowered kernel as gpu.js kernel source: readable JavaScript over `this.thread`, shapes as literal
// constants, reductions as loops with constant bounds. Index arithmetic avoids gpu.js's float32 traps: flat
// indices stay below 2^24 (larger tensors use 2-D views), and floor division is corrected to be exact even where
// the target's division is approximate (GLSL).
import type { Expr } from '../ir/expr';
import { sizeOf } from '../ir/graph';
import type { LoweredKernel, TensorLayout } from './lower';
import { ExprPrinter, stridesOf } from './printer';

export interface GpujsKernelSource {
  readonly name: string;
  /** `function (a0, a1, ...) { ... }`, accepted by gpu.js's createKernel. */
  readonly source: string;
  /** gpu.js output size: [n] for a flat layout, [cols, rows] for a 2-D one. */
  readonly output: readonly number[];
  readonly loopMaxIterations: number;
}

class GpujsPrinter extends ExprPrinter {
  protected floorDivText(a: Expr, n: string, b: number): string {
    const q = this.bindIndex(a, `Math.floor(${n} / ${b})`, 'q');
    return `${q} - (${q} * ${b} > ${n} ? 1 : 0) + ((${q} + 1) * ${b} <= ${n} ? 1 : 0)`;
  }

  protected read(input: number, index: readonly Expr[]): string {
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

export function printGpujsKernel(k: LoweredKernel): GpujsKernelSource {
  const lines: string[] = [];
  const output = threadAxes(k.output, lines);
  const axes = new Set(k.output.shape.map((_, i) => `i${i}`));
  const result = new GpujsPrinter(k).printInto([{ lines, vars: axes, temps: new Map(), indent: '  ' }]);
  const params = k.inputs.map((_, i) => `a${i}`).join(', ');
  const header = `// ${k.name}: ${k.ops.join(' > ')} -> [${k.output.shape.join(', ')}]`;
  const source = `function (${params}) {\n  ${header}\n${lines.join('\n')}\n  return ${result};\n}`;
  return { name: k.name, source, output, loopMaxIterations: k.maxLoopExtent + 1 };
}
