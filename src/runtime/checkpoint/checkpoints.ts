// Checkpoint file names and rotation: names carry (epoch, step) so order never depends on file times.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

const PATTERN = /^(.+)-(\d+)_(\d+)\.safetensors$/;

/** The built-in ShuffleNet's checkpoints keep the seed's file names; other models use their own name. */
export const DEFAULT_CHECKPOINT_PREFIX = 'shufflenetv1';

export interface CheckpointFile {
  file: string;
  epoch: number;
  step: number;
}

export function checkpointName(epoch: number, step: number, prefix = DEFAULT_CHECKPOINT_PREFIX): string {
  return `${prefix}-${epoch}_${step}.safetensors`;
}

export function parseCheckpointName(name: string, prefix = DEFAULT_CHECKPOINT_PREFIX): { epoch: number; step: number } | undefined {
  const m = PATTERN.exec(name);
  return m === null || m[1] !== prefix ? undefined : { epoch: Number(m[2]), step: Number(m[3]) };
}

/** The folder's checkpoints, oldest first by (epoch, step); other files are ignored. */
export async function listCheckpoints(dir: string, prefix = DEFAULT_CHECKPOINT_PREFIX): Promise<CheckpointFile[]> {
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  return names
    .flatMap((name) => {
      const p = parseCheckpointName(name, prefix);
      return p === undefined ? [] : [{ file: path.join(dir, name), ...p }];
    })
    .sort((a, b) => a.epoch - b.epoch || a.step - b.step);
}

export async function latestCheckpoint(dir: string, prefix = DEFAULT_CHECKPOINT_PREFIX): Promise<CheckpointFile | undefined> {
  return (await listCheckpoints(dir, prefix)).at(-1);
}

/** Deletes all but the newest `keep` checkpoints; returns the deleted ones. */
export async function pruneCheckpoints(dir: string, keep: number, prefix = DEFAULT_CHECKPOINT_PREFIX): Promise<CheckpointFile[]> {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a positive integer, got ${keep}`);
  const all = await listCheckpoints(dir, prefix);
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const c of old) await fsp.rm(c.file, { force: true });
  return old;
}
