// Elementwise ops with NumPy broadcasting, unary maths, and scalar affine ops.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, lit, select, type E, type Placeholder } from '../te';
import { sumTo } from './reduce';

/** NumPy broadcasting of two shapes (aligned at the right). */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    check(da === db || da === 1 || db === 1, `shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** Read `x` at output coordinates `idx` of a broadcast result. */
export function readBroadcast(x: Placeholder, idx: readonly E[]): E {
  const off = idx.length - x.rank;
  return x.at(...x.shape.map((d, i) => (d === 1 ? 0 : idx[off + i]!)));
}

type Bin = 'add' | 'sub' | 'mul' | 'div';
function binaryOp(name: Bin, vjp: (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor, Tensor]) {
  return defineOp<Record<string, never>>({
    name,
    compute: ([a, b]) => compute(broadcastShapes(a!.shape, b!.shape), (...i) => readBroadcast(a!, i)[name](readBroadcast(b!, i))),
    vjp: (g, [a, b], out) => {
      const [ga, gb] = vjp(g, a!, b!, out);
      return [sumTo(ga, a!.shape), sumTo(gb, b!.shape)];
    },
  });
}

const addOp = binaryOp('add', (g) => [g, g]);
const subOp = binaryOp('sub', (g) => [g, neg(g)]);
const mulOp = binaryOp('mul', (g, a, b) => [mul(g, b), mul(g, a)]);
const divOp = binaryOp('div', (g, _a, b, out) => [div(g, b), neg(div(mul(g, out), b))]);

export const add = (a: Tensor, b: Tensor): Tensor => addOp([a, b], {});
export const sub = (a: Tensor, b: Tensor): Tensor => subOp([a, b], {});
export const mul = (a: Tensor, b: Tensor): Tensor => mulOp([a, b], {});
export const div = (a: Tensor, b: Tensor): Tensor => divOp([a, b], {});

const reluGradOp = defineOp<Record<string, never>>({
  name: 'relu_grad',
  compute: ([x, g]) => compute(x!.shape, (...i) => select(x!.at(...i).gt(0), g!.at(...i), 0)),
  // Linear in g; piecewise constant in x, so x gets no gradient.
  vjp: (cot, [x]) => [null, reluGrad(x!, cot)],
});
const reluOp = defineOp<Record<string, never>>({
  name: 'relu',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).max(0)),
  // relu(x) > 0 exactly where x > 0: masking with the output lets the backward pass keep only relu's result, so
  // relu fuses into its producer (BN apply, the residual add) and that input is never stored.
  vjp: (g, _x, y) => [reluGrad(y, g)],
});
/** The gradient of relu: g where x > 0, else 0 (x may be relu's input or its output). */
export const reluGrad = (x: Tensor, g: Tensor): Tensor => reluGradOp([x, g], {});
export const relu = (x: Tensor): Tensor => reluOp([x], {});

const negOp = defineOp<Record<string, never>>({
  name: 'neg',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).neg()),
  vjp: (g) => [neg(g)],
});
export const neg = (x: Tensor): Tensor => negOp([x], {});

const expOp = defineOp<Record<string, never>>({
  name: 'exp',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).exp()),
  vjp: (g, _x, out) => [mul(g, out)],
});
export const exp = (x: Tensor): Tensor => expOp([x], {});

const logOp = defineOp<Record<string, never>>({
  name: 'log',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).log()),
  vjp: (g, [x]) => [div(g, x!)],
});
export const log = (x: Tensor): Tensor => logOp([x], {});

const rsqrtOp = defineOp<Record<string, never>>({
  name: 'rsqrt',
  compute: ([x]) => compute(x!.shape, (...i) => lit(1).div(x!.at(...i).sqrt())),
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 out^3
  vjp: (g, _x, out) => [mul(g, scale(mul(out, mul(out, out)), -0.5))],
});
export const rsqrt = (x: Tensor): Tensor => rsqrtOp([x], {});

const affineOp = defineOp<{ scale: number; shift: number }>({
  name: 'affine',
  compute: ([x], { scale: s, shift: b }) => compute(x!.shape, (...i) => x!.at(...i).mul(s).add(b)),
  vjp: (g, _x, _out, { scale: s }) => [scale(g, s)],
});
/** x * s */
export const scale = (x: Tensor, s: number): Tensor => affineOp([x], { scale: s, shift: 0 });
/** x * s + b with scalar constants. */
export const affine = (x: Tensor, s: number, b: number): Tensor => affineOp([x], { scale: s, shift: b });

const stopGradientOp = defineOp<Record<string, never>>({
  name: 'stop_gradient',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i)),
  vjp: () => [null],
});
/** Identity whose gradient is zero: for values that cancel analytically (the max in log-softmax). */
export const stopGradient = (x: Tensor): Tensor => stopGradientOp([x], {});

const fillOp = defineOp<{ value: number }>({
  name: 'fill',
  compute: ([like], { value }) => compute(like!.shape, () => value),
  vjp: () => [null],
});
/** A tensor of `like`'s shape filled with a constant (its data is not read). */
export const fill = (like: Tensor, value: number): Tensor => fillOp([like], { value });
