// What `tsc-nn compile --target web` writes into plan.json (src/export/web.ts writes this shape; this runtime
// imports nothing from the compiler), and the small pure helpers the page needs: the input transform of
// src/runtime/data/augment.ts (x / 255 normalised per channel, then bilinear resize with half-pixel centres) and
// the thread split of src/backends/arena.ts. They are restated here because the page loads no Node modules.

/**
 * One kernel as gpu.js source for one of its modes: `webgl2` computes 4 outputs per thread where the innermost
 * axis allows (as the gl backend in Node); `webgpu` one per thread, because gpu.js cannot pass an `Array(4)`
 * result between WebGPU kernels (as the webgpu backend in Node).
 */
export interface GpujsSource { readonly source: string; readonly output: readonly number[]; readonly loopMaxIterations: number }

/** plan.json: what the page's runtime needs to run the compiled program. */
export interface WebPlan {
  readonly format: 'tsc-nn-web/1';
  readonly model: string;
  readonly config: Record<string, unknown>;
  readonly checkpoint: string;
  readonly batch: number;
  readonly classes: number;
  readonly image: { readonly shape: readonly number[]; readonly byteOffset: number; readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly logits: { readonly byteOffset: number; readonly length: number };
  readonly wasm: {
    readonly file: string;
    readonly pages: number;
    readonly kernels: readonly { readonly name: string; readonly splitExtent: number; readonly splitAlign: number; readonly work: number }[];
  };
  readonly weights: { readonly file: string; readonly bytes: number; readonly tensors: readonly { readonly name: string; readonly node: number; readonly byteOffset: number; readonly blobOffset: number; readonly length: number }[] };
  readonly gpujs: {
    readonly imageNode: number;
    readonly logitsNode: number;
    readonly kernels: readonly { readonly node: number; readonly inputs: readonly number[]; readonly webgl2: GpujsSource; readonly webgpu: GpujsSource }[];
  };
  readonly images?: { readonly file: string; readonly count: number; readonly side: number; readonly labels: readonly number[]; readonly source: string };
  readonly classNames: readonly string[];
}

/** Rows [0, hi) of a kernel, run in chunks of `chunk` rows by every thread (chunk >= hi: on one thread). */
export interface Split { readonly chunk: number; readonly hi: number }

/** As src/backends/arena.ts: kernels doing less work than this are not worth a thread handoff. */
const MIN_PARALLEL_WORK = 32768;
const CHUNKS = 8;

/** How each kernel's split axis is cut into chunks for `threads` threads (src/backends/arena.ts splitKernels). */
export function splitKernels(plan: WebPlan, threads: number): Split[] {
  return plan.wasm.kernels.map((k) => {
    const hi = k.splitExtent || 1;
    const align = k.splitAlign || 1;
    const parallel = threads > 1 && hi >= 2 * align && k.work >= MIN_PARALLEL_WORK;
    return { chunk: parallel ? Math.ceil(hi / Math.min(CHUNKS, hi / align) / align) * align : hi, hi };
  });
}

/** Source taps of a 1-D linear resize with align_corners=false (half-pixel centres, clamped at the edges). */
function taps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w1: Float32Array } {
  const t = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w1: new Float32Array(outSize) };
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    t.i0[o] = i0;
    t.i1[o] = Math.min(i0 + 1, inSize - 1);
    t.w1[o] = src - i0;
  }
  return t;
}

/**
 * One square CHW uint8 image (side `size`) as the model's input at out[offset...]: (x / 255 - mean) / std per
 * channel, then a bilinear resize to `side` when it differs (the order and arithmetic of transformImage).
 */
export function imageToInput(src: Uint8Array, size: number, side: number, mean: readonly number[], std: readonly number[], out: Float32Array, offset: number): void {
  const plane = size * size;
  const norm = side === size ? out : new Float32Array(3 * plane);
  const base = side === size ? offset : 0;
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * std[c]!);
    const shift = mean[c]! / std[c]!;
    for (let k = c * plane; k < (c + 1) * plane; k++) norm[base + k] = src[k]! * scale - shift;
  }
  if (side === size) return;
  const ty = taps(size, side);
  const tx = taps(size, side);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < side; i++) {
      const r0 = c * plane + ty.i0[i]! * size;
      const r1 = c * plane + ty.i1[i]! * size;
      const wy = ty.w1[i]!;
      const dst = offset + (c * side + i) * side;
      for (let j = 0; j < side; j++) {
        const a = tx.i0[j]!;
        const b = tx.i1[j]!;
        const wx = tx.w1[j]!;
        const top = norm[r0 + a]! + (norm[r0 + b]! - norm[r0 + a]!) * wx;
        const bottom = norm[r1 + a]! + (norm[r1 + b]! - norm[r1 + a]!) * wx;
        out[dst + j] = top + (bottom - top) * wy;
      }
    }
  }
}

export const argmax = (row: ArrayLike<number>): number => {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
  return best;
};

/** Softmax probability of class `c`. */
export function probability(row: ArrayLike<number>, c: number): number {
  let max = -Infinity;
  for (let k = 0; k < row.length; k++) max = Math.max(max, row[k]!);
  let sum = 0;
  for (let k = 0; k < row.length; k++) sum += Math.exp(row[k]! - max);
  return Math.exp(row[c]! - max) / sum;
}

/**
 * The module with its memory import made unshared (limits flag 0x03 -> 0x01), for pages that are not
 * cross-origin isolated: there a shared WebAssembly.Memory cannot be created, and one thread needs none.
 */
export function unshareMemoryImport(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const leb = (p: number): [number, number] => {
    let v = 0;
    let shift = 0;
    for (;;) { const b = out[p++]!; v |= (b & 0x7f) << shift; shift += 7; if (!(b & 0x80)) return [v, p]; }
  };
  let p = 8;
  while (p < out.length) {
    const id = out[p]!;
    const [size, body] = leb(p + 1);
    if (id === 2) {
      let [count, q] = leb(body);
      for (; count > 0; count--) {
        let n: number;
        [n, q] = leb(q); q += n; // module name
        [n, q] = leb(q); q += n; // field name
        const kind = out[q++]!;
        if (kind === 2) {
          if (out[q] === 0x03) out[q] = 0x01;
          return out;
        }
        if (kind === 0) { [, q] = leb(q); } else throw new Error('unexpected import kind in model.wasm');
      }
    }
    p = body + size;
  }
  throw new Error('model.wasm imports no memory');
}
