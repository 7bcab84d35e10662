// Checkpoint file names and rotation: names carry (epoch, step) so order never depends on file times.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

const PATTERN = /^shufflenetv1-(\d+)_(\d+)\.safetensors$/;

export interface CheckpointFile {
  file: string;
  epoch: number;
  step: number;
}

export function checkpointName(epoch: number, step: number): string {
  return `shufflenetv1-${epoch}_${step}.safetensors`;
}

export function parseCheckpointName(name: string): { epoch: number; step: number } | undefined {
  const m = PATTERN.exec(name);
  return m === null ? undefined : { epoch: Number(m[1]), step: Number(m[2]) };
}

/** The folder's checkpoints, oldest first by (epoch, step); other files are ignored. */
export async function listCheckpoints(dir: string): Promise<CheckpointFile[]> {
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  return names
    .flatMap((name) => {
      const p = parseCheckpointName(name);
      return p === undefined ? [] : [{ file: path.join(dir, name), ...p }];
    })
    .sort((a, b) => a.epoch - b.epoch || a.step - b.step);
}

export async function latestCheckpoint(dir: string): Promise<CheckpointFile | undefined> {
  return (await listCheckpoints(dir)).at(-1);
}

/** Deletes all but the newest `keep` checkpoints; returns the deleted ones. */
export async function pruneCheckpoints(dir: string, keep: number): Promise<CheckpointFile[]> {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a positive integer, got ${keep}`);
  const all = await listCheckpoints(dir);
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const c of old) await fsp.rm(c.file, { force: true });
  return old;
}
