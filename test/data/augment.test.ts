import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CIFAR10_MEAN, CIFAR10_STD, cropFlip, normalizeInto, resizeBilinearInto, transformImage } from '../../src/runtime/data/augment';
import { Rng } from '../../src/runtime/data/rng';

const SIDE = 8; // small images keep the properties fast; the code is size-generic

/** Straightforward reference: build the zero-padded image, cut the window, mirror each row. */
function referenceCropFlip(src: Uint8Array, side: number, pad: number, x: number, y: number, flip: boolean): Uint8Array {
  const out: number[] = [];
  for (let c = 0; c < 3; c++) {
    const padded: number[][] = Array.from({ length: side + 2 * pad }, () => Array(side + 2 * pad).fill(0));
    for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) padded[i + pad]![j + pad] = src[(c * side + i) * side + j]!;
    for (let i = 0; i < side; i++) {
      const row = padded[y + i]!.slice(x, x + side);
      out.push(...(flip ? row.reverse() : row));
    }
  }
  return Uint8Array.from(out);
}

/** PyTorch's align_corners=False formula evaluated per output pixel, in float64. */
function referenceResize(src: ArrayLike<number>, inH: number, inW: number, outH: number, outW: number): number[] {
  const out: number[] = [];
  const coord = (o: number, inS: number, outS: number) => {
    const s = Math.max((o + 0.5) * (inS / outS) - 0.5, 0);
    const i0 = Math.floor(s);
    return { i0, i1: Math.min(i0 + 1, inS - 1), l: s - i0 };
  };
  for (let c = 0; c < src.length / (inH * inW); c++) {
    for (let i = 0; i < outH; i++) {
      for (let j = 0; j < outW; j++) {
        const v = coord(i, inH, outH);
        const h = coord(j, inW, outW);
        const at = (r: number, q: number) => src[(c * inH + r) * inW + q]!;
        out.push((1 - v.l) * ((1 - h.l) * at(v.i0, h.i0) + h.l * at(v.i0, h.i1)) + v.l * ((1 - h.l) * at(v.i1, h.i0) + h.l * at(v.i1, h.i1)));
      }
    }
  }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
};

const image = (side: number) => fc.uint8Array({ minLength: 3 * side * side, maxLength: 3 * side * side });

describe('crop and flip', () => {
  it('matches pad-then-cut-then-mirror for every window', () => {
    fc.assert(
      fc.property(image(SIDE), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.boolean(), (src, x, y, flip) => {
        expect(cropFlip(src, SIDE, 4, { x, y, flip })).toEqual(referenceCropFlip(src, SIDE, 4, x, y, flip));
      }),
    );
  });

  it('is the identity at the centre window without flip', () => {
    const src = Uint8Array.from({ length: 3 * 32 * 32 }, (_, i) => i % 251);
    expect(cropFlip(src, 32, 4, { x: 4, y: 4, flip: false })).toEqual(src);
  });
});

describe('normalize', () => {
  it('computes (x/255 - mean) / std per channel', () => {
    fc.assert(
      fc.property(image(SIDE), (src) => {
        const out = new Float32Array(src.length + 5);
        normalizeInto(src, CIFAR10_MEAN, CIFAR10_STD, out, 5);
        const ref = Array.from(src, (v, k) => (v / 255 - CIFAR10_MEAN[Math.floor(k / (SIDE * SIDE))]!) / CIFAR10_STD[Math.floor(k / (SIDE * SIDE))]!);
        expect(maxDiff(out.subarray(5), ref)).toBeLessThan(1e-5);
      }),
    );
  });
});

describe('bilinear resize (align_corners=false)', () => {
  it('reproduces PyTorch on a 2x2 -> 4x4 example', () => {
    const out = new Float32Array(16);
    resizeBilinearInto(Float32Array.from([0, 1, 2, 3]), 1, 2, 2, 4, 4, out, 0);
    expect(Array.from(out)).toEqual([0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  });

  it('matches the per-pixel formula when enlarging and shrinking', () => {
    fc.assert(
      fc.property(image(SIDE), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), (src, outH, outW) => {
        const input = Float32Array.from(src);
        const out = new Float32Array(3 * outH * outW);
        resizeBilinearInto(input, 3, SIDE, SIDE, outH, outW, out, 0);
        const ref = referenceResize(input, SIDE, SIDE, outH, outW);
        expect(maxDiff(out, ref)).toBeLessThan(1e-3);
      }),
      { numRuns: 50 },
    );
  });
});

describe('transformImage', () => {
  it('equals the reference order crop/flip, resize, then normalize', () => {
    fc.assert(
      fc.property(image(SIDE), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.boolean(), fc.integer({ min: 4, max: 24 }), (src, x, y, flip, resize) => {
        const out = new Float32Array(3 * resize * resize);
        transformImage(src, SIDE, out, 0, { resize }, { pad: 4, params: { x, y, flip } });
        const resized = referenceResize(referenceCropFlip(src, SIDE, 4, x, y, flip), SIDE, SIDE, resize, resize);
        const ref = resized.map((v, k) => (v / 255 - CIFAR10_MEAN[Math.floor(k / (resize * resize))]!) / CIFAR10_STD[Math.floor(k / (resize * resize))]!);
        expect(maxDiff(out, ref)).toBeLessThan(1e-4);
      }),
      { numRuns: 40 },
    );
  });
});

describe('Rng', () => {
  it('resumes exactly from a saved state', () => {
    const rng = Rng.derive(42, 7);
    for (let i = 0; i < 10; i++) rng.nextU32();
    const saved = JSON.parse(JSON.stringify(rng.state())) as [number, number, number, number];
    const a = Array.from({ length: 100 }, () => rng.nextU32());
    const resumed = new Rng(saved);
    expect(Array.from({ length: 100 }, () => resumed.nextU32())).toEqual(a);
  });

  it('gives distinct streams per seed and path, and draws in range', () => {
    const first = (r: Rng) => Array.from({ length: 4 }, () => r.nextU32());
    expect(first(Rng.derive(1, 0))).not.toEqual(first(Rng.derive(2, 0)));
    expect(first(Rng.derive(1, 0))).not.toEqual(first(Rng.derive(1, 1)));
    expect(first(Rng.derive(1, 0, 1))).not.toEqual(first(Rng.derive(1, 1, 0)));
    expect(first(Rng.derive(1, 0))).toEqual(first(Rng.derive(1, 0)));
    const rng = Rng.derive(3);
    const counts = Array(9).fill(0) as number[];
    let inRange = true;
    for (let i = 0; i < 9000; i++) {
      const v = rng.int(9);
      const u = rng.next();
      inRange &&= Number.isInteger(v) && v >= 0 && v < 9 && u >= 0 && u < 1;
      counts[v]!++;
    }
    expect(inRange).toBe(true);
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
    expect(() => new Rng([0, 0, 0, 0])).toThrow();
    expect(() => rng.int(0)).toThrow(RangeError);
  });
});
