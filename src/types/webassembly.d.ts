// The part of the WebAssembly JavaScript API that tsc-nn uses. Node has it as a global; TypeScript declares it only
// in the DOM library, which does not belong in a Node.js program.
declare namespace WebAssembly {
  class Module { constructor(bytes: Uint8Array) }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  }
  function validate(bytes: Uint8Array): boolean;
}
