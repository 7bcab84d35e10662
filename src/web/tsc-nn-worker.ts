// The page's WebAssembly worker (a module worker; the page's main thread may not Atomics.wait). One worker is the
// executor: it holds the arena (one WebAssembly.Memory), feeds the weights once, and per batch writes the image,
// runs every kernel in order and posts the logits back. When the page is cross-origin isolated the memory is
// shared and helper workers (the same script) run over it: a split kernel's chunks are taken from a shared
// counter by every thread until none is left, and the executor waits until each helper reports the kernel done,
// the protocol of src/backends/helper-thread.ts for any number of helpers.
import { browser, type WasmMemory, type WorkerScope } from './browser.js';
import type { Split } from './plan.js';

/** Both sides spin this many times on a flag before sleeping in Atomics.wait (a wake-up costs tens of microseconds). */
const SPIN = 10_000;
const PAGE_BYTES = 65536;

// Control words: [sequence number (-1: stop), kernel index, helpers finished with this sequence, next chunk].
const SEQ = 0;
const KERNEL = 1;
const FINISHED = 2;
const NEXT = 3;

type KernelFn = (lo: number, hi: number) => void;

export interface InitMessage {
  readonly type: 'init';
  readonly role: 'executor' | 'helper';
  readonly module: unknown;
  /** The shared memory (isolated pages); the executor creates an unshared one when absent. */
  readonly memory?: WasmMemory;
  readonly pages: number;
  readonly names: readonly string[];
  readonly splits: readonly Split[];
  readonly control?: SharedArrayBuffer;
  readonly helpers: number;
  /** Executor only: weights.bin and where each tensor goes. */
  readonly weights?: ArrayBuffer;
  readonly tensors?: readonly { readonly byteOffset: number; readonly blobOffset: number; readonly length: number }[];
  readonly image?: { readonly byteOffset: number; readonly length: number };
  readonly logits?: { readonly byteOffset: number; readonly length: number };
}

export interface RunMessage { readonly type: 'run'; readonly id: number; readonly image: Float32Array }

const scope = globalThis as unknown as WorkerScope;

let fns: KernelFn[] = [];
let floats: Float32Array;
let init: InitMessage;
let ctrl: Int32Array | undefined;
let seq = 0;

async function instantiate(msg: InitMessage, memory: WasmMemory): Promise<void> {
  const instance = await browser.WebAssembly.instantiate(msg.module as never, { env: { memory, exp: Math.exp, log: Math.log } });
  fns = msg.names.map((n) => instance.exports[n] as KernelFn);
}

/** Rows of kernel i from the shared chunk counter until none is left. */
function takeChunks(c: Int32Array, i: number): void {
  const { chunk, hi } = init.splits[i]!;
  const fn = fns[i]!;
  for (let lo = Atomics.add(c, NEXT, 1) * chunk; lo < hi; lo = Atomics.add(c, NEXT, 1) * chunk) fn(lo, Math.min(hi, lo + chunk));
}

function helperLoop(c: Int32Array): void {
  let seen = 0;
  for (;;) {
    for (let spin = 0; spin < SPIN && Atomics.load(c, SEQ) === seen; spin++);
    Atomics.wait(c, SEQ, seen);
    const s = Atomics.load(c, SEQ);
    if (s < 0) return;
    if (s === seen) continue;
    seen = s;
    takeChunks(c, Atomics.load(c, KERNEL));
    Atomics.add(c, FINISHED, 1);
    Atomics.notify(c, FINISHED);
  }
}

function runKernels(): void {
  const { splits, helpers } = init;
  for (let i = 0; i < fns.length; i++) {
    const { chunk, hi } = splits[i]!;
    if (!ctrl || helpers === 0 || chunk >= hi) { fns[i]!(0, hi); continue; }
    const c = ctrl;
    Atomics.store(c, FINISHED, 0);
    Atomics.store(c, NEXT, 0);
    Atomics.store(c, KERNEL, i);
    Atomics.store(c, SEQ, ++seq);
    Atomics.notify(c, SEQ);
    takeChunks(c, i);
    for (let spin = 0; spin < SPIN && Atomics.load(c, FINISHED) !== helpers; spin++);
    for (let done = Atomics.load(c, FINISHED); done !== helpers; done = Atomics.load(c, FINISHED)) Atomics.wait(c, FINISHED, done, 50);
  }
}

scope.onmessage = (e) => {
  const msg = e.data as InitMessage | RunMessage | { type: 'close' };
  if (msg.type === 'init') {
    init = msg;
    ctrl = msg.control ? new Int32Array(msg.control) : undefined;
    const memory = msg.memory ?? new browser.WebAssembly.Memory({ initial: msg.pages, maximum: msg.pages });
    if (memory.buffer.byteLength < msg.pages * PAGE_BYTES) throw new Error('memory too small for the module');
    floats = new Float32Array(memory.buffer);
    instantiate(msg, memory).then(() => {
      if (msg.role === 'helper') {
        scope.postMessage({ type: 'ready' });
        helperLoop(ctrl!);
        return;
      }
      const blob = new Float32Array(msg.weights!);
      for (const t of msg.tensors!) floats.set(blob.subarray(t.blobOffset / 4, t.blobOffset / 4 + t.length), t.byteOffset / 4);
      scope.postMessage({ type: 'ready' });
    }, (err: unknown) => scope.postMessage({ type: 'error', message: String((err as Error)?.message ?? err) }));
    return;
  }
  if (msg.type === 'run') {
    try {
      const { image, logits } = init;
      if (msg.image.length !== image!.length) throw new Error(`image has ${msg.image.length} values, the model takes ${image!.length}`);
      floats.set(msg.image, image!.byteOffset / 4);
      const t0 = browser.performance.now();
      runKernels();
      const ms = browser.performance.now() - t0;
      const out = floats.slice(logits!.byteOffset / 4, logits!.byteOffset / 4 + logits!.length);
      scope.postMessage({ type: 'result', id: msg.id, logits: out, ms }, [out.buffer]);
    } catch (err) {
      scope.postMessage({ type: 'error', id: msg.id, message: String((err as Error)?.message ?? err) });
    }
    return;
  }
  if (msg.type === 'close' && ctrl) {
    Atomics.store(ctrl, SEQ, -1);
    Atomics.notify(ctrl, SEQ);
  }
};
