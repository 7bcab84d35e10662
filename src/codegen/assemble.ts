// WAT text -> WebAssembly binary with wabt (the WebAssembly Binary Toolkit, compiled to wasm). wabt only loads
// asynchronously, while executors are built synchronously, so a short-lived worker assembles and the caller waits
// on an Atomics flag; binaries are cached on disk under a key the caller derives, so a warm start skips wabt.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';

const ASSEMBLER = `
const { workerData } = require('node:worker_threads');
const { wabtPath, wat, out, control, port } = workerData;
const ctrl = new Int32Array(control);
require(wabtPath)().then((wabt) => {
  const module = wabt.parseWat('kernels.wat', wat, { simd: true, threads: true, relaxed_simd: true });
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

/**
 * A module from the on-disk cache in `dir` under `key` (its binary and the JSON metadata stored with it), or built,
 * assembled and stored. The key must identify the text `build` would produce (the caller hashes what determines
 * it), so a warm start neither prints nor assembles the kernels.
 */
export function cachedModule<M>(dir: string | undefined, key: string, build: () => { wat: string; meta: M }): { bytes: Uint8Array; meta: M } {
  const file = dir ? path.join(dir, `${key}.wasm`) : undefined;
  if (file) {
    try {
      const bytes = new Uint8Array(fs.readFileSync(file));
      const meta = JSON.parse(fs.readFileSync(`${file}.json`, 'utf8')) as M;
      if (WebAssembly.validate(bytes)) return { bytes, meta };
    } catch {
      // Not cached yet (or unreadable): build.
    }
  }
  const { wat, meta } = build();
  const bytes = assembleWat(wat);
  if (file) {
    try {
      fs.mkdirSync(dir!, { recursive: true });
      // Metadata first: a binary on disk always has its metadata.
      for (const [target, data] of [[`${file}.json`, JSON.stringify(meta)], [file, bytes]] as const) {
        const tmp = `${target}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, data);
        fs.renameSync(tmp, target);
      }
    } catch {
      // A read-only or full cache directory only costs the next start an assembly.
    }
  }
  return { bytes, meta };
}
