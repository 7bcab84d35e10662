// WAT text -> WebAssembly binary with wabt (the WebAssembly Binary Toolkit, compiled to wasm). wabt only loads
// asynchronously, while executors are built synchronously, so a short-lived worker assembles and the caller waits
// on an Atomics flag; binaries are cached on disk by the hash of their text, so a warm start skips wabt entirely.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';

const ASSEMBLER = `
const { workerData } = require('node:worker_threads');
const { wabtPath, wat, out, control, port } = workerData;
const ctrl = new Int32Array(control);
require(wabtPath)().then((wabt) => {
  const module = wabt.parseWat('kernels.wat', wat, { simd: true, threads: true });
  const { buffer } = module.toBinary({});
  module.destroy();
  new Uint8Array(out).set(buffer);
  ctrl[1] = buffer.length;
  Atomics.store(ctrl, 0, 1);
}).catch((e) => {
  port.postMessage(String(e && e.message || e));
  Atomics.store(ctrl, 0, -1);
}).finally(() => Atomics.notify(ctrl, 0));
`;

/** Assemble a WAT module (SIMD and threads enabled) into its binary. */
export function assembleWat(wat: string): Uint8Array {
  const control = new Int32Array(new SharedArrayBuffer(8));
  // A binary is always smaller than its text.
  const out = new SharedArrayBuffer(Buffer.byteLength(wat) + 1024);
  const { port1, port2 } = new MessageChannel();
  const wabtPath = createRequire(__filename).resolve('wabt');
  const worker = new Worker(ASSEMBLER, { eval: true, workerData: { wabtPath, wat, out, control: control.buffer, port: port2 }, transferList: [port2] });
  while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 100);
  void worker.terminate();
  if (control[0]! < 0) throw new Error(`wabt could not assemble the generated kernels: ${String(receiveMessageOnPort(port1)?.message)}`);
  port1.close();
  return new Uint8Array(out, 0, control[1]!).slice();
}

/** `assembleWat` with an on-disk cache in `dir` (no cache when undefined). */
export function assembleWatCached(wat: string, dir: string | undefined): Uint8Array {
  if (!dir) return assembleWat(wat);
  const file = path.join(dir, `${createHash('sha256').update(wat).digest('hex').slice(0, 24)}.wasm`);
  try {
    const bytes = new Uint8Array(fs.readFileSync(file));
    if (WebAssembly.validate(bytes)) return bytes;
  } catch {
    // Not cached yet (or unreadable): assemble.
  }
  const bytes = assembleWat(wat);
  try {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch {
    // A read-only or full cache directory only costs the next start an assembly.
  }
  return bytes;
}
