// Average and max pooling over NCHW windows, with TensorFlow/MindSpore `same` padding or explicit padding.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, lit, maximum, select, sum, type E, type Placeholder, type TensorExpr } from '../te';
import { mean } from './mean';
import { holdingWindow, windowsPerInput } from './window';

export interface PoolAttrs {
  readonly kernel: number;
  readonly stride: number;
  /** `same`: output ceil(n / stride), the odd padding row/column at the end (TensorFlow, MindSpore). */
  readonly padding: number | 'same';
}

/** Output size and leading padding of a pooling window along an axis of size n. */
export function poolGeometry(n: number, { kernel: k, stride: s, padding }: PoolAttrs): { out: number; before: number } {
  if (padding === 'same') {
    const out = Math.ceil(n / s);
    return { out, before: Math.floor(Math.max((out - 1) * s + k - n, 0) / 2) };
  }
  return { out: Math.floor((n + 2 * padding - k) / s) + 1, before: padding };
}

function checkPool(x: readonly number[], a: PoolAttrs): void {
  check(x.length === 4, `input must be NCHW (rank 4), got [${x.join(', ')}]`);
  check(Number.isInteger(a.kernel) && a.kernel >= 1 && Number.isInteger(a.stride) && a.stride >= 1, `kernel and stride must be positive integers, got ${a.kernel} and ${a.stride}`);
  if (a.padding !== 'same') {
    check(Number.isInteger(a.padding) && a.padding >= 0 && a.padding < a.kernel, `padding must be an integer in [0, kernel), got ${a.padding}`);
    check(a.kernel <= x[2]! + 2 * a.padding && a.kernel <= x[3]! + 2 * a.padding, `kernel ${a.kernel} is larger than the padded input ${x[2]! + 2 * a.padding}x${x[3]! + 2 * a.padding}`);
  }
}

/** Number of window positions inside the input along one axis (averages count valid elements only). */
const validCount = (start: E, k: number, n: number): E => start.add(k).min(n).sub(start.max(0));

/** The window of output coordinate `o` starts at `o * s - before`; input `i` is tap `i - start`. */
const windowStart = (o: E, s: number, before: number): E => o.mul(s).sub(before);

/** A pooling op's output: `window(n, c, ys, xs)` for each output position, its window starting at (ys, xs). */
function pooled(x: Placeholder, a: PoolAttrs, window: (n: E, c: E, ys: E, xs: E) => E): TensorExpr {
  checkPool(x.shape, a);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const gy = poolGeometry(H, a);
  const gx = poolGeometry(W, a);
  return compute([N, C, gy.out, gx.out], (n, c, y, xx) =>
    window(n, c, windowStart(y, a.stride, gy.before), windowStart(xx, a.stride, gx.before)));
}

/** The number of input elements averaged by the window starting at (ys, xs). */
const windowCount = (ys: E, xs: E, a: PoolAttrs, H: number, W: number): E =>
  validCount(ys, a.kernel, H).mul(validCount(xs, a.kernel, W));

const avgPoolOp = defineOp<PoolAttrs>({
  name: 'avg_pool2d',
  compute: ([x], a) => pooled(x!, a, (n, c, ys, xs) =>
    sum([a.kernel, a.kernel], (ky, kx) => x!.atOr(0, n, c, ys.add(ky), xs.add(kx))).div(windowCount(ys, xs, a, x!.shape[2]!, x!.shape[3]!))),
  // Each window's gradient is divided by its count once, on the pooled grid, before it is spread over the window.
  vjp: (g, [x], _out, a) => [avgPoolSpreadOp([windowMeanGradOp([g], { ...a, inputShape: x!.shape })], { ...a, inputShape: x!.shape })],
});

type PoolGradAttrs = PoolAttrs & { inputShape: readonly number[] };

// The gradient of a window mean: g divided by the window's count, per pooled position.
const windowMeanGradOp = defineOp<PoolGradAttrs>({
  name: 'avg_pool2d_grad_scale',
  compute: ([g], { inputShape, ...a }) => {
    const [, , H, W] = inputShape as [number, number, number, number];
    const gy = poolGeometry(H, a);
    const gx = poolGeometry(W, a);
    return compute(g!.shape, (n, c, y, x) =>
      g!.at(n, c, y, x).div(windowCount(windowStart(y, a.stride, gy.before), windowStart(x, a.stride, gx.before), a, H, W)));
  },
});

// Each input element receives the (count-divided) gradient of every window that holds it.
const avgPoolSpreadOp = defineOp<PoolGradAttrs>({
  name: 'avg_pool2d_grad',
  compute: ([g], { inputShape, ...a }) => {
    const [N, C, H, W] = inputShape as [number, number, number, number];
    const gy = poolGeometry(H, a);
    const gx = poolGeometry(W, a);
    const T = windowsPerInput(a.kernel, a.stride);
    return compute([N, C, H, W], (n, c, i, j) =>
      sum([T, T], (t, u) => {
        const ty = holdingWindow(i, t, a.stride, a.kernel, gy.before, gy.out);
        const tx = holdingWindow(j, u, a.stride, a.kernel, gx.before, gx.out);
        return select(ty.ok.and(tx.ok), g!.at(n, c, ty.at, tx.at), 0);
      }));
  },
});

const maxPoolOp = defineOp<PoolAttrs>({
  name: 'max_pool2d',
  compute: ([x], a) => pooled(x!, a, (n, c, ys, xs) =>
    maximum([a.kernel, a.kernel], (ky, kx) => x!.atOr(-Infinity, n, c, ys.add(ky), xs.add(kx)))),
  vjp: (g, [x], out, a) => [maxPoolGradOp([x!, out, g], a)],
});

// The gradient goes to the first maximum of each window in raster order (as PyTorch and TensorFlow do).
const maxPoolGradOp = defineOp<PoolAttrs>({
  name: 'max_pool2d_grad',
  compute: ([x, y, g], a) => {
    const [N, C, H, W] = x!.shape as [number, number, number, number];
    const gy = poolGeometry(H, a);
    const gx = poolGeometry(W, a);
    const k = a.kernel;
    const T = windowsPerInput(k, a.stride);
    return compute([N, C, H, W], (n, c, i, j) =>
      sum([T, T], (t, u) => {
        const ty = holdingWindow(i, t, a.stride, k, gy.before, gy.out);
        const tx = holdingWindow(j, u, a.stride, k, gx.before, gx.out);
        const best = y!.at(n, c, ty.at, tx.at);
        const ys = windowStart(ty.at, a.stride, gy.before);
        const xs = windowStart(tx.at, a.stride, gx.before);
        const earlierTies = sum([k, k], (ky2, kx2) =>
          select(ky2.mul(k).add(kx2).lt(ty.tap.mul(k).add(tx.tap)), x!.atOr(-Infinity, n, c, ys.add(ky2), xs.add(kx2)).eq(best), 0));
        const isFirstMax = x!.at(n, c, i, j).eq(best).and(earlierTies.eq(0));
        return select(ty.ok.and(tx.ok), select(isFirstMax, g!.at(n, c, ty.at, tx.at), lit(0)), 0);
      }));
  },
});

export const avgPool2d = (x: Tensor, a: PoolAttrs): Tensor => avgPoolOp([x], a);
export const maxPool2d = (x: Tensor, a: PoolAttrs): Tensor => maxPoolOp([x], a);
/** Mean over the spatial axes: [N, C, H, W] -> [N, C]. */
export const globalAvgPool = (x: Tensor): Tensor => mean(x, [2, 3]);
