// index.html's script: load the folder with the backend `?backend=` names (wasm | gl | webgpu; `?threads=N` for
// wasm), classify the embedded test images as `tsc-nn predict` does (one grid cell each: the image, "predicted
// (label)" in green when right and red when wrong, the probability), time the batch, write the result JSON into
// <pre id="tsc-nn-result">, and classify an image the user picks or drops (resized to the model's input).
import { browser } from './browser.js';
import { argmax, loadCompiled, probability, type CompiledModel } from './tsc-nn-web.js';

interface El {
  textContent: string | null;
  className: string;
  innerHTML: string;
  style: Record<string, string>;
  appendChild(e: El): El;
  addEventListener(type: string, fn: (e: never) => void): void;
  classList: { add(c: string): void; remove(c: string): void };
}
interface Canvas extends El { width: number; height: number; getContext(kind: '2d', opts?: unknown): Ctx }
interface ImageDataLike { readonly data: Uint8ClampedArray; readonly width: number; readonly height: number }
interface Ctx {
  createImageData(w: number, h: number): ImageDataLike;
  putImageData(d: ImageDataLike, x: number, y: number): void;
  getImageData(x: number, y: number, w: number, h: number): ImageDataLike;
  drawImage(img: unknown, x: number, y: number, w: number, h: number): void;
  imageSmoothingQuality: string;
}
interface Doc { getElementById(id: string): El | null; createElement(tag: string): El }
interface PageGlobals { document: Doc; createImageBitmap(blob: unknown): Promise<unknown> }

const page = globalThis as unknown as PageGlobals;
const doc = page.document;
const $ = (id: string): El => doc.getElementById(id)!;

function status(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

/** A CHW uint8 image drawn on a canvas of its own size (CSS scales it up, pixelated). */
function drawChw(canvas: Canvas, chw: Uint8Array, size: number): void {
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(size, size);
  const plane = size * size;
  for (let p = 0; p < plane; p++) {
    img.data[4 * p] = chw[p]!;
    img.data[4 * p + 1] = chw[plane + p]!;
    img.data[4 * p + 2] = chw[2 * plane + p]!;
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function classifyEmbedded(net: CompiledModel, base: URL, summary: string[]): Promise<void> {
  const { plan } = net;
  const result: Record<string, unknown> = { backend: net.backend, threads: net.threads, crossOriginIsolated: net.crossOriginIsolated, device: net.device, loadMs: Math.round(net.loadMs) };
  if (!plan.images) {
    $('tsc-nn-result').textContent = JSON.stringify({ ...result, msPerBatch: null, predictions: [] });
    return;
  }
  const { count, side, labels } = plan.images;
  const r = await browser.fetch(new URL(plan.images.file, base));
  if (!r.ok) throw new Error(`${plan.images.file}: HTTP ${r.status}`);
  const images = new Uint8Array(await r.arrayBuffer());
  const predictions: { index: number; label: number; predicted: number; logits: number[] }[] = [];
  const times: number[] = [];
  let firstMs = 0;
  for (let first = 0; first < count; first += plan.batch) {
    const n = Math.min(plan.batch, count - first);
    const x = net.imagesToInput(images.subarray(first * 3 * side * side), n, side);
    const t = browser.performance.now();
    const { logits } = await net.run({ image: x });
    const ms = browser.performance.now() - t;
    if (first === 0) firstMs = ms;
    times.push(ms);
    for (let k = 0; k < n; k++) {
      const row = Array.from(logits.subarray(k * plan.classes, (k + 1) * plan.classes));
      predictions.push({ index: first + k, label: labels[first + k]!, predicted: argmax(row), logits: row });
    }
  }
  // The time per batch: the median of a few more runs of the first batch (the first run includes warm-up).
  const x = net.imagesToInput(images, Math.min(plan.batch, count), side);
  for (let rep = 0; rep < 5; rep++) {
    const t = browser.performance.now();
    await net.run({ image: x });
    times.push(browser.performance.now() - t);
  }
  const msPerBatch = median(times.slice(1));
  const grid = $('grid');
  grid.innerHTML = '';
  for (const p of predictions) {
    const fig = doc.createElement('figure');
    const canvas = doc.createElement('canvas') as Canvas;
    canvas.className = 'img';
    drawChw(canvas, images.subarray(p.index * 3 * side * side, (p.index + 1) * 3 * side * side), side);
    const cap = doc.createElement('figcaption');
    cap.className = p.predicted === p.label ? 'right' : 'wrong';
    const name = (c: number): string => plan.classNames[c] ?? `class ${c}`;
    cap.textContent = `${name(p.predicted)} (${name(p.label)}) ${(100 * probability(p.logits, p.predicted)).toFixed(1)}%`;
    fig.appendChild(canvas);
    fig.appendChild(cap);
    grid.appendChild(fig);
  }
  const right = predictions.filter((p) => p.predicted === p.label).length;
  summary.push(`${right} of ${predictions.length} right; first batch ${firstMs.toFixed(1)} ms, then ${msPerBatch.toFixed(1)} ms per batch of ${plan.batch}`);
  status(summary.join('\n'));
  $('tsc-nn-result').textContent = JSON.stringify({ ...result, firstBatchMs: Math.round(firstMs * 10) / 10, msPerBatch: Math.round(msPerBatch * 10) / 10, predictions });
}

/** The user's image: drawn at the model's input size (the browser's smooth resize), classified in slot 0. */
async function classifyUserImage(net: CompiledModel, file: unknown): Promise<void> {
  const side = net.plan.image.shape[2]!;
  const bitmap = await page.createImageBitmap(file);
  const canvas = $('user-canvas') as Canvas;
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, side, side);
  const rgba = ctx.getImageData(0, 0, side, side).data;
  const plane = side * side;
  const chw = new Uint8Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) chw[c * plane + p] = rgba[4 * p + c]!;
  const { logits } = await net.run({ image: net.imagesToInput(chw, 1, side) });
  const row = Array.from(logits.subarray(0, net.plan.classes));
  const order = row.map((_, c) => c).sort((a, b) => row[b]! - row[a]!).slice(0, 3);
  $('user-result').textContent = order.map((c) => `${net.plan.classNames[c] ?? `class ${c}`} ${(100 * probability(row, c)).toFixed(1)}%`).join(', ');
}

async function main(): Promise<void> {
  const params = new URLSearchParams(browser.location!.search);
  const backend = params.get('backend') ?? 'wasm';
  const threads = params.has('threads') ? Number(params.get('threads')) : undefined;
  const base = new URL('./', browser.location!.href);
  status(`loading the ${backend} backend...`);
  let net: CompiledModel;
  try {
    net = await loadCompiled(base, { backend, threads });
  } catch (e) {
    const message = `the ${backend} backend cannot start: ${(e as Error).message}`;
    status(message, true);
    $('tsc-nn-result').textContent = JSON.stringify({ backend, error: message });
    return;
  }
  const summary = [
    `backend ${net.backend}: ${net.device}; ${net.threads} thread${net.threads === 1 ? '' : 's'}`
      + (net.backend === 'wasm' && !net.crossOriginIsolated ? ' (this page is not cross-origin isolated, so the kernels run on one thread; same results)' : '')
      + `; loaded in ${net.loadMs.toFixed(0)} ms`,
  ];
  status(summary.join('\n'));
  try {
    await classifyEmbedded(net, base, summary);
  } catch (e) {
    status(`${summary.join('\n')}\nclassifying failed: ${(e as Error).message}`, true);
    $('tsc-nn-result').textContent = JSON.stringify({ backend, error: (e as Error).message });
    return;
  }
  const onFile = (file: unknown): void => {
    classifyUserImage(net, file).catch((e: Error) => { $('user-result').textContent = `cannot classify that image: ${e.message}`; });
  };
  const input = $('file') as El & { files?: ArrayLike<unknown> };
  input.addEventListener('change', () => { if (input.files?.[0]) onFile(input.files[0]); });
  const drop = $('drop');
  drop.addEventListener('dragover', (e: { preventDefault(): void }) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e: { preventDefault(): void; dataTransfer?: { files: ArrayLike<unknown> } }) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) onFile(f);
  });
}

void main();
