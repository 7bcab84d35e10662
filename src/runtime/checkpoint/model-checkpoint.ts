// Model checkpoints in safetensors: parameters (the seed's PyTorch-style names), BN running statistics and
// momentum buffers as F32 tensors; the configuration and progress as metadata (`tsc-nn.config` is JSON).
import { UserError } from '../../ir/errors';
import type { TensorMap } from '../session';
import { readSafetensors, writeSafetensors, type StoredTensor } from './safetensors';

export interface CheckpointMeta {
  /** e.g. {"model":"shufflenet","size":"0.5x","group":3,"classes":10,"stem":"cifar"} */
  readonly config: Readonly<Record<string, unknown>>;
  readonly epoch: number;
  readonly step: number;
  /** Training settings needed to resume exactly (seed, batch, schedule); the data order derives from them. */
  readonly training?: Readonly<Record<string, unknown>>;
}

export async function saveCheckpoint(file: string, tensors: TensorMap, shapes: ReadonlyMap<string, readonly number[]>, meta: CheckpointMeta): Promise<void> {
  const stored = new Map<string, StoredTensor>();
  for (const [name, data] of tensors) stored.set(name, { dtype: 'F32', shape: [...(shapes.get(name) ?? [data.length])], data: data as Float32Array<ArrayBuffer> });
  await writeSafetensors(file, stored, {
    'tsc-nn.config': JSON.stringify(meta.config),
    'tsc-nn.epoch': String(meta.epoch),
    'tsc-nn.step': String(meta.step),
    ...(meta.training ? { 'tsc-nn.training': JSON.stringify(meta.training) } : {}),
  });
}

export interface LoadedCheckpoint extends Omit<CheckpointMeta, 'config'> {
  /** The stored configuration; undefined for a plain state_dict (PyTorch's `save_file(model.state_dict())`). */
  readonly config: Readonly<Record<string, unknown>> | undefined;
  readonly tensors: TensorMap;
  readonly shapes: ReadonlyMap<string, readonly number[]>;
}

/** PyTorch's BatchNorm counts its batches in an I64 tensor; tsc-nn has no use for it and never writes it. */
const isBatchCounter = (name: string): boolean => name.endsWith('.num_batches_tracked');

export async function loadCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const content = await readSafetensors(file);
  const json = (key: string): Record<string, unknown> | undefined => {
    const raw = content.metadata[key];
    if (raw === undefined) return undefined;
    try { return JSON.parse(raw) as Record<string, unknown>; } catch { throw new UserError(`${file}: metadata ${key} is not valid JSON`); }
  };
  const tensors: TensorMap = new Map();
  const shapes = new Map<string, readonly number[]>();
  for (const [name, t] of content.tensors) {
    if (t.dtype === 'I64' && isBatchCounter(name)) continue;
    if (t.dtype !== 'F32') throw new UserError(`${file}: tensor ${name} is ${t.dtype}, expected F32 (save the state_dict in float32)`);
    tensors.set(name, t.data as Float32Array);
    shapes.set(name, t.shape);
  }
  return { config: json('tsc-nn.config'), epoch: Number(content.metadata['tsc-nn.epoch'] ?? 0), step: Number(content.metadata['tsc-nn.step'] ?? 0), training: json('tsc-nn.training'), tensors, shapes };
}

/**
 * Every expected tensor must be present with its shape, and nothing else may be there but what `optional` allows
 * (momentum buffers); a mismatch is one error listing the missing, extra and mis-shaped tensors.
 */
export function checkTensors(file: string, loaded: LoadedCheckpoint, expected: ReadonlyMap<string, readonly number[]>, optional: (name: string) => boolean = () => false): void {
  const missing: string[] = [];
  const misShaped: string[] = [];
  for (const [name, shape] of expected) {
    const got = loaded.shapes.get(name);
    if (!got) missing.push(name);
    else if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) misShaped.push(`${name} is [${got.join(', ')}], the model needs [${shape.join(', ')}]`);
  }
  const extra = [...loaded.shapes.keys()].filter((n) => !expected.has(n) && !optional(n));
  if (missing.length + extra.length + misShaped.length === 0) return;
  const list = (what: string, names: string[]): string => (names.length ? `${what} (${names.length}): ${names.slice(0, 6).join(', ')}${names.length > 6 ? ', ...' : ''}` : '');
  const parts = [list('missing', missing), list('extra', extra), list('mis-shaped', misShaped)].filter(Boolean).join('; ');
  const what = loaded.config ? `config ${JSON.stringify(loaded.config)}` : 'a state_dict without tsc-nn metadata';
  throw new UserError(`${file} does not match the model (${what}): ${parts}`);
}
