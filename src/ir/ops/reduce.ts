// Reductions over axes, and the broadcast/sum-to pair that gradients of broadcasting ops need.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, maximum, sum as sumOver, type E, type Ix } from '../te';
import { reshape } from './shape';

function normalizeAxes(axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => (a < 0 ? a + rank : a));
  check(out.every((a) => Number.isInteger(a) && a >= 0 && a < rank), `axes [${axes.join(', ')}] out of range for rank ${rank}`);
  check(new Set(out).size === out.length, `axes [${axes.join(', ')}] repeat an axis`);
  return out.sort((a, b) => a - b);
}

/** Output shape of a reduction (kept axes become 1 with keepdims) and how to read the input at (output, reduce) vars. */
function reduction(shape: readonly number[], axes: readonly number[], keepdims: boolean) {
  const ax = normalizeAxes(axes, shape.length);
  const outShape = shape.flatMap((d, i) => (ax.includes(i) ? (keepdims ? [1] : []) : [d]));
  const extents = ax.map((a) => shape[a]!);
  const index = (o: readonly E[], r: readonly E[]): Ix[] => {
    let oi = 0;
    return shape.map((_, i) => {
      const k = ax.indexOf(i);
      if (k >= 0) { if (keepdims) oi++; return r[k]!; }
      return o[oi++]!;
    });
  };
  return { outShape, extents, index };
}

interface ReduceAttrs { axes: readonly number[]; keepdims: boolean }

const sumOp = defineOp<ReduceAttrs>({
  name: 'sum',
  compute: ([x], { axes, keepdims }) => {
    const r = reduction(x!.shape, axes, keepdims);
    return compute(r.outShape, (...o) => sumOver(r.extents, (...rv) => x!.at(...r.index(o, rv))));
  },
  vjp: (g, [x], _out, { axes, keepdims }) => {
    const kept = keepdims ? g : reshape(g, reduction(x!.shape, axes, true).outShape);
    return [broadcastTo(kept, x!.shape)];
  },
});

const maxOp = defineOp<ReduceAttrs>({
  name: 'reduce_max',
  compute: ([x], { axes, keepdims }) => {
    const r = reduction(x!.shape, axes, keepdims);
    return compute(r.outShape, (...o) => maximum(r.extents, (...rv) => x!.at(...r.index(o, rv))));
  },
});

export const sum = (x: Tensor, axes: readonly number[], keepdims = false): Tensor => sumOp([x], { axes, keepdims });
/** Maximum over axes. It has no gradient rule: wrap uses in `stopGradient` where the value cancels. */
export const reduceMax = (x: Tensor, axes: readonly number[], keepdims = false): Tensor => maxOp([x], { axes, keepdims });

/** Sum a broadcast result back to `shape` (the gradient of broadcasting). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const off = x.rank - shape.length;
  const axes = x.shape.map((_, i) => i).filter((i) => i < off || (shape[i - off] === 1 && x.shape[i] !== 1));
  const summed = sum(x, axes, true);
  return reshape(summed, shape);
}

const broadcastOp = defineOp<{ shape: readonly number[] }>({
  name: 'broadcast',
  compute: ([x], { shape }) => {
    const off = shape.length - x!.rank;
    check(off >= 0 && x!.shape.every((d, i) => d === 1 || d === shape[off + i]), `cannot broadcast [${x!.shape.join(', ')}] to [${shape.join(', ')}]`);
    return compute(shape, (...o) => x!.at(...x!.shape.map((d, i) => (d === 1 ? 0 : o[off + i]!))));
  },
  vjp: (g, [x]) => [sumTo(g, x!.shape)],
});
export const broadcastTo = (x: Tensor, shape: readonly number[]): Tensor => {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  return broadcastOp([x], { shape });
};
