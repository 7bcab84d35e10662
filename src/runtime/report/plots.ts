// Report figures: a grid of predictions with coloured titles (PNG pixels) and loss/accuracy curves (SVG text).
import { drawText, GLYPH_HEIGHT, GLYPH_WIDTH, textWidth } from './font';
import { createImage, type Rgb, type RgbImage } from './png';

/** Title colours of the reference notebook's figures (matplotlib 'green' and 'red'). */
export const RIGHT_COLOR: Rgb = [0, 128, 0];
export const WRONG_COLOR: Rgb = [255, 0, 0];

export interface GridOptions {
  cols: number;
  /** Nearest-neighbour enlargement of each image; default 4. */
  scale?: number;
  /** Side of the square input images; default 32. */
  side?: number;
  /** Font pixel size; default 2 when every title fits the cell at 2, else 1. */
  textScale?: number;
}

/** Lays out titles.length CHW uint8 images (images holds them back to back) with each title above its image. */
export function predictionGrid(images: Uint8Array, titles: readonly string[], colors: readonly Rgb[], options: GridOptions): RgbImage {
  const n = titles.length;
  const side = options.side ?? 32;
  const scale = options.scale ?? 4;
  const plane = side * side;
  if (images.length !== n * 3 * plane) throw new RangeError(`${images.length} image bytes do not hold ${n} images of 3x${side}x${side}`);
  if (colors.length !== n) throw new RangeError(`${colors.length} colours for ${n} titles`);
  const cols = Math.max(1, Math.min(options.cols, n));
  const rows = Math.ceil(n / cols);
  const cell = side * scale;
  // A title that does not fit the cell on one line breaks before its " (": "automobile" over "(automobile)".
  const fits = (t: string, scale: number): boolean => textWidth(t, scale) <= cell;
  const textScale = options.textScale ?? (titles.every((t) => fits(t, 2)) ? 2 : 1);
  const lines = titles.map((t) => {
    const cut = t.indexOf(' (');
    return fits(t, textScale) || cut < 0 ? [t] : [t.slice(0, cut), t.slice(cut + 1)];
  });
  const lineHeight = GLYPH_HEIGHT * textScale + 2;
  const gap = 2 * scale;
  const titleHeight = Math.max(...lines.map((l) => l.length)) * lineHeight + 2;
  const out = createImage(cols * cell + (cols + 1) * gap, rows * (titleHeight + cell) + (rows + 1) * gap);
  const maxChars = Math.floor((cell + textScale) / ((GLYPH_WIDTH + 1) * textScale));
  for (let k = 0; k < n; k++) {
    const left = gap + (k % cols) * (cell + gap);
    const top = gap + Math.floor(k / cols) * (titleHeight + cell + gap);
    lines[k]!.forEach((line, i) => {
      // Still too long (a very long class name): cut to the cell rather than overlap the neighbour.
      const text = [...line].slice(0, maxChars).join('');
      drawText(out, text, left + Math.floor((cell - textWidth(text, textScale)) / 2), top + 2 + i * lineHeight, colors[k]!, textScale);
    });
    const src = k * 3 * plane;
    for (let y = 0; y < cell; y++) {
      const sy = Math.floor(y / scale) * side;
      const row = ((top + titleHeight + y) * out.width + left) * 3;
      for (let x = 0; x < cell; x++) {
        const s = src + sy + Math.floor(x / scale);
        out.data[row + 3 * x] = images[s]!;
        out.data[row + 3 * x + 1] = images[s + plane]!;
        out.data[row + 3 * x + 2] = images[s + 2 * plane]!;
      }
    }
  }
  return out;
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface CurveOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatTick(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/** About `count` round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count: number): number[] {
  if (hi <= lo) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let i = Math.floor(lo / step); i <= Math.ceil(hi / step); i++) ticks.push(i * step);
  return ticks;
}

/** Line plot of the series (non-finite points leave gaps), with axes, ticks, a legend and a title. */
export function lossCurveSvg(series: readonly Series[], options: CurveOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const m = { left: 70, right: 20, top: 40, bottom: 50 };
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  const xTicks = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 6);
  const yTicks = niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 5);
  const [x0, x1] = [xTicks[0]!, xTicks.at(-1)!];
  const [y0, y1] = [yTicks[0]!, yTicks.at(-1)!];
  const px = (x: number) => (m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right)).toFixed(2);
  const py = (y: number) => (height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom)).toFixed(2);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(options.title)}</text>`,
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="16" y="${(m.top + height - m.bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.top + height - m.bottom) / 2})">${escapeXml(options.yLabel)}</text>`,
  ];
  for (const t of xTicks) {
    parts.push(`<line x1="${px(t)}" y1="${m.top}" x2="${px(t)}" y2="${height - m.bottom}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${px(t)}" y="${height - m.bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  for (const t of yTicks) {
    parts.push(`<line x1="${m.left}" y1="${py(t)}" x2="${width - m.right}" y2="${py(t)}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${m.left - 6}" y="${py(t)}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="black"/>`);
  // The legend goes last, on a translucent box, so curves passing under it stay readable.
  const legend = series.length === 0 ? [] : [`<rect x="${width - m.right - 156}" y="${m.top + 4}" width="150" height="${16 * series.length + 4}" fill="white" fill-opacity="0.8" stroke="#c0c0c0"/>`];
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    let d = '';
    let pen = 'M';
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) {
        d += `${pen}${px(x)},${py(y)}`;
        pen = 'L';
      } else {
        pen = 'M';
      }
    }
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5" data-series="${escapeXml(s.name)}"/>`);
    const ly = m.top + 14 + 16 * i;
    legend.push(`<line x1="${width - m.right - 150}" y1="${ly}" x2="${width - m.right - 130}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    legend.push(`<text x="${width - m.right - 124}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  parts.push(...legend, '</svg>');
  return parts.join('\n');
}
