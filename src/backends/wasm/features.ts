// What the WebAssembly engine offers the wasm target. Relaxed SIMD (f32x4.relaxed_madd: a fused multiply-add on
// CPUs with FMA) is standard WebAssembly and on by default from V8 11.4 (Node.js 22); Node.js 20's V8 has it
// complete behind --experimental-wasm-relaxed-simd, which is turned on here when the engine does not accept it
// as it is. Without it, sums of products are a multiply and an add.
import * as v8 from 'node:v8';
import type { WasmTarget } from '../../codegen/wasm';

// (module (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))
const RELAXED_MADD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11,
]);

let target: WasmTarget | undefined;

/** The engine's features (probed once per process; V8 flags are process-wide, so helper threads share them). */
export function wasmTarget(): WasmTarget {
  if (target) return target;
  if (!WebAssembly.validate(RELAXED_MADD_PROBE) && process.env.TSC_NN_WASM_FMA !== '0') v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  target = { fma: process.env.TSC_NN_WASM_FMA !== '0' && WebAssembly.validate(RELAXED_MADD_PROBE) };
  return target;
}
