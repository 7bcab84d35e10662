// Per-image transforms of the reference recipe: random crop (zero padding) + horizontal flip for training,
// optional bilinear resize, then x/255 normalized by the CIFAR-10 mean/std, all in CHW.
import type { Rng } from './rng';

export const CIFAR10_MEAN: readonly number[] = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD: readonly number[] = [0.2023, 0.1994, 0.201];
const CHANNELS = 3;

/** Where the crop window starts in the padded image (0..2*pad each way), and whether to mirror it. */
export interface CropFlip {
  x: number;
  y: number;
  flip: boolean;
}

export interface TransformOptions {
  /** Output side; omitted or equal to the input side means no resize. */
  resize?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

export function sampleCropFlip(rng: Rng, pad: number): CropFlip {
  const y = rng.int(2 * pad + 1);
  const x = rng.int(2 * pad + 1);
  return { x, y, flip: rng.next() < 0.5 };
}

/** Crops a size x size window from the image padded with `pad` zeros on each side, mirrored if asked. */
export function cropFlip(src: Uint8Array, size: number, pad: number, p: CropFlip): Uint8Array {
  const out = new Uint8Array(CHANNELS * size * size);
  for (let c = 0; c < CHANNELS; c++) {
    for (let i = 0; i < size; i++) {
      const sy = p.y + i - pad;
      if (sy < 0 || sy >= size) continue;
      const row = (c * size + sy) * size;
      const dst = (c * size + i) * size;
      for (let j = 0; j < size; j++) {
        const sx = p.x + (p.flip ? size - 1 - j : j) - pad;
        if (sx >= 0 && sx < size) out[dst + j] = src[row + sx]!;
      }
    }
  }
  return out;
}

/** (x/255 - mean[c]) / std[c] per channel, written at out[offset...]. */
export function normalizeInto(src: Uint8Array, mean: readonly number[], std: readonly number[], out: Float32Array, offset: number): void {
  const plane = src.length / CHANNELS;
  for (let c = 0; c < CHANNELS; c++) {
    const scale = 1 / (255 * std[c]!);
    const shift = mean[c]! / std[c]!;
    for (let k = c * plane; k < (c + 1) * plane; k++) out[offset + k] = src[k]! * scale - shift;
  }
}

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

const tapCache = new Map<string, Taps>();

/** Source taps of a 1-D linear resize with align_corners=false (half-pixel centres, clamped at the edges). */
function taps(inSize: number, outSize: number): Taps {
  const key = `${inSize}>${outSize}`;
  let t = tapCache.get(key);
  if (t === undefined) {
    t = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w1: new Float32Array(outSize) };
    const scale = inSize / outSize;
    for (let o = 0; o < outSize; o++) {
      const src = Math.max((o + 0.5) * scale - 0.5, 0);
      const i0 = Math.min(Math.floor(src), inSize - 1);
      t.i0[o] = i0;
      t.i1[o] = Math.min(i0 + 1, inSize - 1);
      t.w1[o] = src - i0;
    }
    tapCache.set(key, t);
  }
  return t;
}

/** Bilinear resize of a CHW float image (align_corners=false, as PyTorch's and OpenCV's defaults). */
export function resizeBilinearInto(
  src: Float32Array, channels: number, inH: number, inW: number, outH: number, outW: number, out: Float32Array, offset: number,
): void {
  const ty = taps(inH, outH);
  const tx = taps(inW, outW);
  for (let c = 0; c < channels; c++) {
    const plane = c * inH * inW;
    for (let i = 0; i < outH; i++) {
      const r0 = plane + ty.i0[i]! * inW;
      const r1 = plane + ty.i1[i]! * inW;
      const wy = ty.w1[i]!;
      const dst = offset + (c * outH + i) * outW;
      for (let j = 0; j < outW; j++) {
        const a = tx.i0[j]!;
        const b = tx.i1[j]!;
        const wx = tx.w1[j]!;
        const top = src[r0 + a]! + (src[r0 + b]! - src[r0 + a]!) * wx;
        const bottom = src[r1 + a]! + (src[r1 + b]! - src[r1 + a]!) * wx;
        out[dst + j] = top + (bottom - top) * wy;
      }
    }
  }
}

/**
 * One square CHW uint8 image to normalized floats at out[offset...]: crop/flip (when given), normalize, resize.
 * Normalizing before resizing gives the same values as the reference order (resize, then normalize) because
 * bilinear weights sum to one, and touches 49x fewer pixels at 224; no intermediate uint8 rounding is done.
 */
export function transformImage(src: Uint8Array, size: number, out: Float32Array, offset: number, options: TransformOptions, crop?: { pad: number; params: CropFlip }): void {
  const image = crop === undefined ? src : cropFlip(src, size, crop.pad, crop.params);
  const mean = options.mean ?? CIFAR10_MEAN;
  const std = options.std ?? CIFAR10_STD;
  const side = options.resize ?? size;
  if (side === size) {
    normalizeInto(image, mean, std, out, offset);
    return;
  }
  const small = new Float32Array(image.length);
  normalizeInto(image, mean, std, small, 0);
  resizeBilinearInto(small, CHANNELS, size, size, side, side, out, offset);
}
