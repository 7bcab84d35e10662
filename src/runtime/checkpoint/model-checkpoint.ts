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

export interface LoadedCheckpoint extends CheckpointMeta {
  readonly tensors: TensorMap;
  readonly shapes: ReadonlyMap<string, readonly number[]>;
}

export async function loadCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const content = await readSafetensors(file);
  const json = (key: string): Record<string, unknown> | undefined => {
    const raw = content.metadata[key];
    if (raw === undefined) return undefined;
    try { return JSON.parse(raw) as Record<string, unknown>; } catch { throw new UserError(`${file}: metadata ${key} is not valid JSON`); }
  };
  const config = json('tsc-nn.config');
  if (!config) throw new UserError(`${file}: not a tsc-nn checkpoint (no tsc-nn.config metadata)`);
  const tensors: TensorMap = new Map();
  const shapes = new Map<string, readonly number[]>();
  for (const [name, t] of content.tensors) {
    if (t.dtype !== 'F32') throw new UserError(`${file}: tensor ${name} is ${t.dtype}, expected F32`);
    tensors.set(name, t.data as Float32Array);
    shapes.set(name, t.shape);
  }
  return { config, epoch: Number(content.metadata['tsc-nn.epoch'] ?? 0), step: Number(content.metadata['tsc-nn.step'] ?? 0), training: json('tsc-nn.training'), tensors, shapes };
}

/** Every expected tensor must be present with its shape; a mismatch lists the offending tensors. */
export function checkTensors(file: string, loaded: LoadedCheckpoint, expected: ReadonlyMap<string, readonly number[]>): void {
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const got = loaded.shapes.get(name);
    if (!got) problems.push(`${name} missing`);
    else if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) problems.push(`${name} is [${got.join(', ')}], the model needs [${shape.join(', ')}]`);
  }
  if (problems.length) {
    const shown = problems.slice(0, 6).join('; ');
    throw new UserError(`${file} does not match the model (config ${JSON.stringify(loaded.config)}): ${problems.length} tensors differ: ${shown}${problems.length > 6 ? '; ...' : ''}`);
  }
}
