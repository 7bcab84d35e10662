import { inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { drawText, hasGlyph, textWidth } from '../../src/runtime/report/font';
import { createImage, crc32, encodePng, type Rgb, type RgbImage } from '../../src/runtime/report/png';
import { lossCurveSvg, predictionGrid, RIGHT_COLOR, WRONG_COLOR } from '../../src/runtime/report/plots';

/** Bit-by-bit CRC-32, independent of the table-driven one under test. */
function slowCrc(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Minimal PNG decoder for what the encoder may legally emit (RGB8, any IDAT split, filter 0 lines). */
function decodePng(png: Buffer): RgbImage {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let at = 8;
  const types: string[] = [];
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('ascii', at + 4, at + 8);
    const body = png.subarray(at + 8, at + 8 + length);
    expect(png.readUInt32BE(at + 8 + length)).toBe(slowCrc(png.subarray(at + 4, at + 8 + length)));
    types.push(type);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      expect([...body.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(body);
    at += 12 + length;
  }
  expect(types[0]).toBe('IHDR');
  expect(types.at(-1)).toBe('IEND');
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe(height * (width * 3 + 1));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width * 3 + 1)]).toBe(0);
    data.set(raw.subarray(y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1)), y * width * 3);
  }
  return { width, height, data };
}

const pixel = (img: RgbImage, x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

function inkIn(img: RgbImage, x0: number, y0: number, x1: number, y1: number, color: Rgb): number {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (pixel(img, x, y).join() === color.join()) n++;
  return n;
}

describe('PNG encoder', () => {
  it('matches the known CRC-32 check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('IEND'))).toBe(0xae426082);
  });

  it('round-trips any RGB image through an independent decoder', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 9 }), fc.infiniteStream(fc.integer({ min: 0, max: 255 })), (w, h, values) => {
        const img: RgbImage = { width: w, height: h, data: Uint8Array.from(values.take(w * h * 3)) };
        expect(decodePng(encodePng(img))).toEqual(img);
      }),
      { numRuns: 50 },
    );
    expect(() => encodePng({ width: 2, height: 2, data: new Uint8Array(5) })).toThrow(RangeError);
  });
});

describe('bitmap font', () => {
  it('covers letters, digits and common punctuation', () => {
    for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_()[]/%=+!?\'<>*#') expect(hasGlyph(ch)).toBe(true);
    expect(textWidth('cat', 2)).toBe(34);
  });

  it('draws ink of the given colour inside the text box only, glyphs distinct', () => {
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;-_()[]/%=+!?\'<>*#';
    const shapes = new Set<string>();
    for (const ch of chars) {
      const img = createImage(12, 14);
      drawText(img, ch, 1, 2, [255, 0, 0]);
      const total = inkIn(img, 0, 0, 12, 14, [255, 0, 0]);
      expect(total).toBeGreaterThan(0);
      expect(inkIn(img, 1, 2, 6, 10, [255, 0, 0])).toBe(total);
      shapes.add(Buffer.from(img.data).toString('hex'));
    }
    expect(shapes.size).toBe(chars.length);
  });

  it('scales and clips', () => {
    const img = createImage(20, 10);
    drawText(img, 'W', 15, -4, [0, 0, 255], 2);
    expect(inkIn(img, 0, 0, 20, 10, [0, 0, 255])).toBeGreaterThan(0);
    expect(inkIn(img, 0, 0, 15, 10, [0, 0, 255])).toBe(0);
  });
});

describe('predictionGrid', () => {
  const side = 32;
  const images = Uint8Array.from({ length: 3 * 3 * side * side }, (_, i) => (i * 7) % 256);
  const grid = predictionGrid(images, ['cat', 'automobile', 'ship'], [RIGHT_COLOR, WRONG_COLOR, RIGHT_COLOR], { cols: 2, scale: 4 });

  it('enlarges each image by nearest neighbour below its title', () => {
    // Cell layout: gap 8, title 8*2+4 = 20 px, image 128 px.
    expect(grid.width).toBe(2 * 128 + 3 * 8);
    expect(grid.height).toBe(2 * (20 + 128) + 3 * 8);
    const top = 8 + 20;
    for (const [k, left, t] of [[0, 8, top], [1, 8 + 128 + 8, top], [2, 8, top + 128 + 20 + 8]] as const) {
      for (const [sx, sy] of [[0, 0], [31, 31], [5, 17]] as const) {
        const src = k * 3 * 1024 + sy * 32 + sx;
        const expected = [images[src], images[src + 1024], images[src + 2048]];
        expect(pixel(grid, left + sx * 4, t + sy * 4)).toEqual(expected);
        expect(pixel(grid, left + sx * 4 + 3, t + sy * 4 + 3)).toEqual(expected);
      }
    }
  });

  it('draws titles in green when right and red when wrong', () => {
    const green = inkIn(grid, 8, 8, 8 + 128, 28, RIGHT_COLOR);
    expect(green).toBeGreaterThan(20);
    expect(inkIn(grid, 8, 8, 8 + 128, 28, WRONG_COLOR)).toBe(0);
    expect(inkIn(grid, 144, 8, 144 + 128, 28, WRONG_COLOR)).toBeGreaterThan(green);
    const decoded = decodePng(encodePng(grid));
    expect([decoded.width, decoded.height]).toEqual([grid.width, grid.height]);
    expect(Buffer.from(decoded.data).equals(grid.data)).toBe(true);
  });

  it('breaks a title that does not fit into two lines instead of cutting it ("automobile (automobile)")', () => {
    const long = predictionGrid(images.subarray(0, 3 * side * side), ['automobile (automobile)'], [WRONG_COLOR], { cols: 1, scale: 4 });
    // One line at scale 1 is 8 + 2 px: two lines and the 2 px margin make 22 px of title above the image.
    expect(long.height).toBe(22 + 128 + 2 * 8);
    const inkColumns = (y0: number, y1: number): number[] => {
      const xs: number[] = [];
      for (let x = 0; x < long.width; x++) if (inkIn(long, x, y0, x + 1, y1, WRONG_COLOR) > 0) xs.push(x);
      return xs;
    };
    for (const [text, y0] of [['automobile', 8 + 2], ['(automobile)', 8 + 2 + 10]] as const) {
      const xs = inkColumns(y0, y0 + 8);
      // The whole line is drawn: its ink spans the text's width (the last column of a glyph may be blank).
      expect(xs.at(-1)! - xs[0]! + 1).toBeGreaterThanOrEqual(textWidth(text, 1) - 2);
      expect(xs.at(-1)! - xs[0]! + 1).toBeLessThanOrEqual(textWidth(text, 1));
    }
  });
});

/** Well-formedness: every tag closes in order, attributes are quoted, '&' only starts an entity. */
function expectWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (const m of xml.matchAll(tag)) {
    const text = xml.slice(last, m.index);
    expect(text).not.toMatch(/[<>]/);
    expect(text.replace(/&(#\d+|amp|lt|gt|quot|apos);/g, '')).not.toContain('&');
    if (m[1]) expect(stack.pop()).toBe(m[2]);
    else if (!m[4]) stack.push(m[2]!);
    last = m.index + m[0].length;
  }
  expect(xml.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
}

describe('lossCurveSvg', () => {
  const series = [
    { name: 'train loss', points: Array.from({ length: 50 }, (_, i) => [i, 2.3 * Math.exp(-i / 20)] as [number, number]) },
    { name: 'eval <acc> & more', points: [[0, 0.1], [10, 0.4], [20, Number.NaN], [30, 0.7], [40, 0.8]] as [number, number][] },
  ];
  const svg = lossCurveSvg(series, { title: 'ShuffleNetV1 on CIFAR-10', xLabel: 'epoch', yLabel: 'loss / accuracy' });

  it('is well-formed XML with title, labels and escaped series names', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expectWellFormedXml(svg);
    for (const s of ['ShuffleNetV1 on CIFAR-10', 'epoch', 'loss / accuracy', 'train loss', 'eval &#60;acc&#62; &#38; more']) expect(svg).toContain(s);
  });

  it('draws one path per series, a gap at non-finite points, all inside the plot', () => {
    const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1]!);
    expect(paths).toHaveLength(2);
    expect(paths[0]!.match(/[ML]/g)).toHaveLength(50);
    expect(paths[1]!.match(/M/g)).toHaveLength(2);
    expect(paths[1]!.match(/L/g)).toHaveLength(2);
    for (const [, x, y] of paths.join('').matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)) {
      expect(Number(x)).toBeGreaterThanOrEqual(70);
      expect(Number(x)).toBeLessThanOrEqual(620);
      expect(Number(y)).toBeGreaterThanOrEqual(40);
      expect(Number(y)).toBeLessThanOrEqual(350);
    }
  });

  it('copes with no points and a single point', () => {
    expectWellFormedXml(lossCurveSvg([], { title: 't', xLabel: 'x', yLabel: 'y' }));
    const one = lossCurveSvg([{ name: 'a', points: [[3, 0.5]] }], { title: 't', xLabel: 'x', yLabel: 'y' });
    expectWellFormedXml(one);
    expect(one).not.toMatch(/NaN|Infinity/);
  });
});
