// tsc-nn's browser entry: load a folder written by `tsc-nn compile --target web` and run it.
//
//   import { loadCompiled } from './tsc-nn-web.js';
//   const net = await loadCompiled('./');                    // the folder's URL (plan.json, model.wasm, weights.bin)
//   const { logits } = await net.run({ image });             // image: Float32Array [batch, 3, S, S], normalised
//
// Backends: `wasm` (default) runs tsc-nn's WebAssembly SIMD kernels in a dedicated worker, with helper workers
// over one shared memory when the page is cross-origin isolated and on that one worker otherwise; `gl` and
// `webgpu` run the gpu.js kernels on the page's WebGL2 context or WebGPU device. A backend that cannot start
// rejects with the reason: there is no fallback to another backend.
import { browser, type ResponseLike, type WorkerLike } from './browser.js';
import { GpujsExecutor, type GpujsMode } from './gpujs.js';
import { imageToInput, splitKernels, unshareMemoryImport, type WebPlan } from './plan.js';
import type { InitMessage } from './tsc-nn-worker.js';

export { argmax, imageToInput, probability, type WebPlan } from './plan.js';

export type WebBackend = 'wasm' | 'gl' | 'webgpu';
export const WEB_BACKENDS: readonly string[] = ['wasm', 'gl', 'webgpu'];

/** The gpu.js mode each GPU backend runs in. */
const GPUJS_MODES: Readonly<Record<string, GpujsMode>> = { gl: 'webgl2', webgpu: 'webgpu' };

export interface LoadOptions {
  /** `wasm` (default), `gl` or `webgpu`. */
  readonly backend?: string;
  /** wasm: threads (default: the browser's hardwareConcurrency, at most 8, when cross-origin isolated; else 1). */
  readonly threads?: number;
}

export interface CompiledModel {
  readonly plan: WebPlan;
  readonly backend: WebBackend;
  /** Threads the kernels run on (gl, webgpu: 1, the page's thread driving the GPU). */
  readonly threads: number;
  readonly crossOriginIsolated: boolean;
  /** What runs the kernels, in words. */
  readonly device: string;
  /** The input: [batch, 3, side, side]. */
  readonly inputs: { readonly image: readonly number[] };
  /** Milliseconds from loadCompiled's call to ready. */
  readonly loadMs: number;
  /** Logits [batch x classes] of one batch of normalised images (the same contract as compileModel's run in Node). */
  run(inputs: { readonly image: Float32Array }): Promise<{ logits: Float32Array }>;
  /** CHW uint8 images (side `size`) as the normalised, resized input batch (missing images stay zero). */
  imagesToInput(images: Uint8Array, count: number, size: number): Float32Array;
  close(): void;
}

async function fetchOk(url: URL): Promise<ResponseLike> {
  const r = await browser.fetch(url);
  if (!r.ok) throw new Error(`${url.href}: HTTP ${r.status}`);
  return r;
}

function readyOf(w: WorkerLike, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => {
      const d = e.data as { type: string; message?: string };
      if (d.type === 'ready') resolve();
      else reject(new Error(`${what}: ${d.message ?? d.type}`));
    };
    w.onerror = (e) => reject(new Error(`${what} failed to start: ${e.message ?? 'error'} ${e.filename ?? ''}:${e.lineno ?? ''}`));
  });
}

export async function loadCompiled(url: string | URL, opts: LoadOptions = {}): Promise<CompiledModel> {
  const t0 = browser.performance.now();
  const base = new URL(String(url).endsWith('/') || String(url) === '' ? String(url) : `${String(url)}/`, browser.location?.href);
  const backend = opts.backend ?? 'wasm';
  if (!WEB_BACKENDS.includes(backend)) throw new Error(`unknown backend ${backend}: this page runs ${WEB_BACKENDS.join(', ')}`);
  const plan = (await (await fetchOk(new URL('plan.json', base))).json()) as WebPlan;
  if (plan.format !== 'tsc-nn-web/1') throw new Error(`plan.json: format ${String(plan.format)} is not tsc-nn-web/1`);
  const weights = await (await fetchOk(new URL(plan.weights.file, base))).arrayBuffer();
  const isolated = browser.crossOriginIsolated === true;
  const inputLength = plan.image.shape.reduce((a, b) => a * b, 1);
  const side = plan.image.shape[2]!;
  const imagesToInput = (images: Uint8Array, count: number, size: number): Float32Array => {
    const x = new Float32Array(inputLength);
    const per = 3 * side * side;
    for (let k = 0; k < Math.min(count, plan.batch); k++) imageToInput(images.subarray(k * 3 * size * size, (k + 1) * 3 * size * size), size, side, plan.image.mean, plan.image.std, x, k * per);
    return x;
  };
  const checkImage = (image: Float32Array): void => {
    if (!(image instanceof Float32Array) || image.length !== inputLength) throw new Error(`run: image must be a Float32Array of ${inputLength} values [${plan.image.shape.join(', ')}]`);
  };
  const common = { plan, crossOriginIsolated: isolated, inputs: { image: plan.image.shape }, imagesToInput };

  const mode = GPUJS_MODES[backend];
  if (mode) {
    const gpu = await GpujsExecutor.create(plan, base, weights, mode);
    return {
      ...common, backend: backend as WebBackend, threads: 1, device: gpu.device, loadMs: browser.performance.now() - t0,
      run: async ({ image }) => { checkImage(image); return { logits: await gpu.run(image) }; },
      close: () => gpu.close(),
    };
  }

  const wanted = opts.threads ?? (isolated ? Math.min(8, browser.navigator?.hardwareConcurrency ?? 2) : 1);
  if (wanted > 1 && !isolated) throw new Error(`${wanted} threads need a cross-origin isolated page (COOP/COEP headers; tsc-nn serve sends them)`);
  const threads = Math.max(1, Math.floor(wanted));
  let bytes: Uint8Array = new Uint8Array(await (await fetchOk(new URL(plan.wasm.file, base))).arrayBuffer());
  if (threads === 1) bytes = unshareMemoryImport(bytes);
  const module = await browser.WebAssembly.compile(bytes);
  const memory = threads > 1 ? new browser.WebAssembly.Memory({ initial: plan.wasm.pages, maximum: plan.wasm.pages, shared: true }) : undefined;
  const control = threads > 1 ? new SharedArrayBuffer(16) : undefined;
  const splits = splitKernels(plan, threads);
  const names = plan.wasm.kernels.map((k) => k.name);
  const workerUrl = new URL('tsc-nn-worker.js', base);
  const workers: WorkerLike[] = [];
  const spawn = (role: 'executor' | 'helper', extra: Partial<InitMessage>): Promise<void> => {
    const w = new browser.Worker(workerUrl, { type: 'module', name: `tsc-nn ${role}` });
    workers.push(w);
    const ready = readyOf(w, `the wasm ${role} worker`);
    const msg: InitMessage = { type: 'init', role, module, memory, pages: plan.wasm.pages, names, splits, control, helpers: threads - 1, ...extra };
    w.postMessage(msg);
    return ready;
  };
  const executorReady = spawn('executor', { weights, tensors: plan.weights.tensors, image: { byteOffset: plan.image.byteOffset, length: inputLength }, logits: plan.logits });
  try {
    await Promise.all([executorReady, ...Array.from({ length: threads - 1 }, () => spawn('helper', {}))]);
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
  const executor = workers[0]!;
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: { logits: Float32Array }) => void; reject: (e: Error) => void }>();
  executor.onmessage = (e) => {
    const d = e.data as { type: string; id: number; logits?: Float32Array; message?: string };
    const p = pending.get(d.id);
    if (!p) return;
    pending.delete(d.id);
    if (d.type === 'result') p.resolve({ logits: d.logits! });
    else p.reject(new Error(d.message ?? 'the wasm worker failed'));
  };
  let closed = false;
  return {
    ...common, backend: 'wasm', threads, loadMs: browser.performance.now() - t0,
    device: threads > 1 ? `WebAssembly SIMD, ${threads} workers over one shared memory` : 'WebAssembly SIMD, one worker',
    run({ image }) {
      if (closed) return Promise.reject(new Error('run: the compiled model was closed'));
      try { checkImage(image); } catch (e) { return Promise.reject(e); }
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const copy = image.slice();
        executor.postMessage({ type: 'run', id, image: copy }, [copy.buffer]);
      });
    },
    imagesToInput,
    close() {
      if (closed) return;
      closed = true;
      executor.postMessage({ type: 'close' });
      for (const w of workers) w.terminate();
    },
  };
}
