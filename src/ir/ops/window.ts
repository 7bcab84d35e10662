// Which sliding windows hold an input element: the geometry shared by the gradients of convolutions and poolings
// (transposed windows). The window of output o starts at input o * s - before and spans k inputs. Two forms:
// by tap (a reduction over the k taps, each testing whether its window exists) and by window (a reduction over
// the ceil(k / s) windows that can hold the input). A pooling gradient reads by window: half the taps at stride 2.
// A convolution's input gradient reads by tap: its weight then depends on the reduction variable alone, one value
// for all vector lanes, where by window it would depend on each lane's parity (measured 5.1 -> 6.2 ms on the
// stride-2 depthwise input gradient of ShuffleNet 0.5x).
import type { E } from '../te';

/** How many windows (of k inputs, stride s) can hold one input: ceil(k / s). */
export const windowsPerInput = (k: number, s: number): number => Math.ceil(k / s);

/**
 * The t-th window holding input i (t < windowsPerInput): the window at (i + before) // s - t, where i is tap
 * (i + before) % s + s t. Stride-aware: a stride-2 3-tap window visits 2 candidates per axis, not 3 with a parity
 * test each, and no division or parity depends on the reduction variable.
 */
export function holdingWindow(i: E, t: E, s: number, k: number, before: number, outSize: number): { ok: E; at: E; tap: E } {
  const shifted = i.add(before);
  const at = s === 1 ? shifted.sub(t) : shifted.idiv(s).sub(t);
  const tap = s === 1 ? t : shifted.mod(s).add(t.mul(s));
  const inRange = at.ge(0).and(at.lt(outSize));
  // With s = 1 (or s dividing k) every candidate tap is inside the kernel.
  return { ok: k % s === 0 ? inRange : inRange.and(tap.lt(k)), at, tap };
}

/** The window holding input i at tap k, when there is one: (i + before - k) / s, if it divides and is in range. */
export function windowAtTap(i: E, k: E, s: number, before: number, outSize: number): { ok: E; at: E } {
  const t = i.add(before).sub(k);
  const at = s === 1 ? t : t.idiv(s);
  const divides = s === 1 ? t.ge(0) : t.mod(s).eq(0).and(t.ge(0));
  return { ok: divides.and(at.lt(outSize)), at };
}
