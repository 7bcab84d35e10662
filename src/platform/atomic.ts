// Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over the target, fsync
// the folder. A reader sees the old file or the new one, never a mix; a failed write leaves the old one intact.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** The file operations atomicWrite needs, injectable so tests can simulate a full disk. */
export interface AtomicWriteIo {
  writeFile(file: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  syncDir(dir: string): Promise<void>;
}

export const nodeAtomicWriteIo: AtomicWriteIo = {
  async writeFile(file, data) {
    const handle = await fsp.open(file, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (file) => fsp.unlink(file),
  async syncDir(dir) {
    // Makes the rename itself durable. Some platforms (Windows) cannot open a folder for fsync: skip there.
    const handle = await fsp.open(dir, 'r').catch(() => undefined);
    if (handle === undefined) return;
    try {
      await handle.sync().catch(() => undefined);
    } finally {
      await handle.close();
    }
  },
};

export async function atomicWrite(file: string, data: Uint8Array, io: AtomicWriteIo = nodeAtomicWriteIo): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await io.writeFile(temp, data);
    await io.rename(temp, file);
  } catch (e) {
    await io.unlink(temp).catch(() => undefined);
    throw e;
  }
  await io.syncDir(dir);
}
