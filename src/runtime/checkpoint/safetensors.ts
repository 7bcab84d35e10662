// The safetensors format: u64 little-endian header length N, N bytes of JSON header (name -> dtype, shape,
// data_offsets; optional "__metadata__" of strings), then the raw little-endian tensor bytes.
// Typed arrays use the host byte order, which is little-endian on every platform Node supports in practice.
import { promises as fsp } from 'node:fs';
import { UserError } from '../../ir/errors';
import { atomicWrite, type AtomicWriteIo } from '../../platform/atomic';

const DTYPES = {
  F64: Float64Array,
  F32: Float32Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
} as const;

export type Dtype = keyof typeof DTYPES;
export type TensorArray = InstanceType<(typeof DTYPES)[Dtype]>;

export interface StoredTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorArray;
}

export interface SafetensorsContent {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

const METADATA_KEY = '__metadata__';

function elements(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.hasOwn(DTYPES, s);
}

/** Serializes tensors (widest element first, so every tensor stays aligned to its element size). */
export function encodeSafetensors(tensors: ReadonlyMap<string, StoredTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const entries = [...tensors].sort(([, a], [, b]) => DTYPES[b.dtype].BYTES_PER_ELEMENT - DTYPES[a.dtype].BYTES_PER_ELEMENT);
  // No prototype: a tensor named "__proto__" must become a key, not a prototype.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) throw new UserError(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!(t.data instanceof DTYPES[t.dtype])) throw new UserError(`safetensors: tensor "${name}" is declared ${t.dtype} but holds a ${t.data.constructor.name}`);
    if (t.data.length !== elements(t.shape)) throw new UserError(`safetensors: tensor "${name}" has ${t.data.length} elements, shape [${t.shape.join(', ')}] needs ${elements(t.shape)}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Parses a safetensors image; `file` only names it in errors. Tensor data is copied (and so aligned). */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsContent {
  const fail = (why: string): never => {
    throw new UserError(`safetensors: ${file}: ${why}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) fail(`header length ${n} runs past the end of the file (${bytes.length} bytes): bad header or truncated file`);
  const headerEnd = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerEnd - 8).toString('utf8'));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
  const dataLength = bytes.length - headerEnd;
  const tensors = new Map<string, StoredTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(value, fail);
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof entry !== 'object' || entry === null) return fail(`tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDtype(dtype)) return fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const size = elements(shape as number[]) * DTYPES[dtype].BYTES_PER_ELEMENT;
    if (end < begin || end - begin !== size) fail(`tensor "${name}": data_offsets [${begin}, ${end}] out of range for ${dtype} shape [${shape.join(', ')}] (${size} bytes)`);
    if (end > dataLength) fail(`tensor "${name}" needs data bytes [${begin}, ${end}) but the data section has ${dataLength}: truncated file`);
    // A fresh Uint8Array, not bytes.slice: on a Buffer (readFile's result) slice is a view of the whole file.
    const copy = new Uint8Array(bytes.subarray(headerEnd + begin, headerEnd + end));
    tensors.set(name, { dtype, shape: shape as number[], data: new DTYPES[dtype](copy.buffer, 0, size / DTYPES[dtype].BYTES_PER_ELEMENT) });
  }
  return { tensors, metadata };
}

function parseMetadata(value: unknown, fail: (why: string) => never): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    return fail(`"${METADATA_KEY}" is not an object of strings`);
  }
  return { ...(value as Record<string, string>) };
}

export async function readSafetensors(file: string): Promise<SafetensorsContent> {
  const bytes = await fsp.readFile(file).catch((e: Error) => {
    throw new UserError(`safetensors: cannot read ${file}: ${e.message}`);
  });
  return decodeSafetensors(bytes, file);
}

/** Writes atomically: on any failure the previous file (if any) is left as it was and no temp file remains. */
export async function writeSafetensors(
  file: string, tensors: ReadonlyMap<string, StoredTensor>, metadata: Record<string, string> = {}, io?: AtomicWriteIo,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  await atomicWrite(file, bytes, io).catch((e: Error) => {
    throw new UserError(`safetensors: cannot write ${file}: ${e.message}`);
  });
}
