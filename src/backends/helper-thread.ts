// A second thread for the executors: it holds the same kernels over the same shared memory. A split kernel's rows
// are cut into chunks that both threads take from a shared counter until none is left (dynamic scheduling: on a
// shared virtual machine one core is often slower than the other, and a fixed half would leave the faster one
// waiting); the two meet at an Atomics barrier (a round trip costs 0.02-0.06 ms here). `setup` is the body of a
// worker function that builds the kernels from `workerData` and returns `run(kernelIndex, lo, hi)`.
import type { Split } from './types';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

/**
 * Both sides spin this many times on the flag before sleeping in Atomics.wait: a futex wake-up costs tens of
 * microseconds, and a training step hands over hundreds of kernels.
 */
const SPIN = 10_000;

const LOOP = `
const ctrl = new Int32Array(workerData.control);
const splits = workerData.splits;
let run;
try {
  run = (() => { SETUP })();
} catch (e) {
  workerData.port.postMessage(String(e && e.stack || e));
  Atomics.store(ctrl, 2, -2);
  Atomics.notify(ctrl, 2);
  throw e;
}
Atomics.store(ctrl, 2, 0);
Atomics.notify(ctrl, 2);
let seen = 0;
for (;;) {
  for (let spin = 0; spin < SPIN && Atomics.load(ctrl, 0) === seen; spin++);
  Atomics.wait(ctrl, 0, seen);
  const seq = Atomics.load(ctrl, 0);
  if (seq < 0) break;
  seen = seq;
  const i = Atomics.load(ctrl, 1);
  const { chunk, hi } = splits[i];
  for (let lo = Atomics.add(ctrl, 3, 1) * chunk; lo < hi; lo = Atomics.add(ctrl, 3, 1) * chunk) run(i, lo, Math.min(hi, lo + chunk));
  Atomics.store(ctrl, 2, seq);
  Atomics.notify(ctrl, 2);
}
`;

export class HelperThread {
  /** [sequence number, kernel index, finished sequence number, next chunk] */
  private readonly control = new Int32Array(new SharedArrayBuffer(16));
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private seq = 0;

  constructor(setup: string, workerData: Record<string, unknown>, private readonly splits: readonly Split[]) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    Atomics.store(this.control, 2, -1);
    const source = `const { workerData } = require('node:worker_threads');\nconst SPIN = ${SPIN};\n${LOOP.replace('SETUP', setup)}`;
    this.worker = new Worker(source, { eval: true, workerData: { ...workerData, splits, control: this.control.buffer, port: port2 }, transferList: [port2] });
    this.worker.unref();
    // Wait until the worker has its kernels (or report why it could not build them).
    while (Atomics.load(this.control, 2) === -1) Atomics.wait(this.control, 2, -1, 50);
    if (Atomics.load(this.control, 2) === -2) {
      const why = receiveMessageOnPort(this.port)?.message;
      void this.worker.terminate();
      throw new Error(`the helper thread could not start: ${String(why)}`);
    }
  }

  /** Run kernel `index` on both threads: `run(lo, hi)` runs a chunk on this one. Returns when all chunks are done. */
  runSplit(index: number, run: (lo: number, hi: number) => void): void {
    const seq = ++this.seq;
    Atomics.store(this.control, 3, 0);
    Atomics.store(this.control, 1, index);
    Atomics.store(this.control, 0, seq);
    Atomics.notify(this.control, 0);
    const { chunk, hi } = this.splits[index]!;
    for (let lo = Atomics.add(this.control, 3, 1) * chunk; lo < hi; lo = Atomics.add(this.control, 3, 1) * chunk) run(lo, Math.min(hi, lo + chunk));
    this.join();
  }

  private join(): void {
    const seq = this.seq;
    for (let spin = 0; spin < SPIN && Atomics.load(this.control, 2) !== seq; spin++);
    while (Atomics.load(this.control, 2) !== seq) Atomics.wait(this.control, 2, seq - 1, 50);
  }

  close(): void {
    Atomics.store(this.control, 0, -1);
    Atomics.notify(this.control, 0);
    this.port.close();
    void this.worker.terminate();
  }
}
