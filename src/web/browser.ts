// The browser APIs the page runtime uses, typed here so the same files type-check in the Node build
// (tsconfig.json: no DOM library) and in the browser build (tsconfig.web.json). Only what tsc-nn needs.

export interface WasmModule { readonly __module?: never }
export interface WasmMemory { readonly buffer: ArrayBuffer | SharedArrayBuffer }
export interface WasmInstance { readonly exports: Record<string, unknown> }

export interface WasmApi {
  compile(bytes: ArrayBuffer | Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

export interface MessageEventLike<T = unknown> { readonly data: T }

export interface WorkerLike {
  postMessage(message: unknown, transfer?: unknown[]): void;
  terminate(): void;
  onmessage: ((e: MessageEventLike) => void) | null;
  onerror: ((e: { message?: string; filename?: string; lineno?: number }) => void) | null;
}

export interface WorkerScope {
  postMessage(message: unknown, transfer?: unknown[]): void;
  onmessage: ((e: MessageEventLike) => void) | null;
}

export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  json(): Promise<unknown>;
}

/** navigator.gpu, as far as the webgpu backend asks it before gpu.js starts. */
export interface WebGpuLike {
  requestAdapter(): Promise<{ readonly info?: { readonly vendor?: string; readonly architecture?: string; readonly description?: string; readonly isFallbackAdapter?: boolean } } | null>;
}

export interface BrowserGlobals {
  readonly WebAssembly: WasmApi;
  readonly Worker: new (url: string | URL, options?: { type?: 'module' | 'classic'; name?: string }) => WorkerLike;
  readonly crossOriginIsolated?: boolean;
  readonly navigator?: { readonly hardwareConcurrency?: number; readonly gpu?: WebGpuLike };
  readonly location?: { readonly href: string; readonly search: string };
  fetch(url: string | URL): Promise<ResponseLike>;
  readonly performance: { now(): number };
  readonly document?: unknown;
  GPU?: unknown;
}

export const browser = globalThis as unknown as BrowserGlobals;
