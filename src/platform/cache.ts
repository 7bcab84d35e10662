// Where tsc-nn caches compiled programs, assembled modules and downloads, and the version of the compiler that a
// cache entry must match.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const cacheDir = (): string => process.env.TSC_NN_CACHE ?? path.join(os.homedir(), '.cache', 'tsc-nn');

let compilerHash: string | undefined;
/** A hash of the compiler's own code (passes, IR, codegen), so a changed compiler never reuses stale programs. */
export function compilerVersion(): string {
  if (compilerHash) return compilerHash;
  const h = createHash('sha256');
  const root = path.resolve(__dirname, '..');
  for (const dir of ['ir', 'ir/ops', 'passes', 'codegen']) {
    const full = path.join(root, dir);
    for (const f of fs.readdirSync(full).filter((n) => /\.(ts|js)$/.test(n) && !n.endsWith('.d.ts')).sort()) h.update(fs.readFileSync(path.join(full, f)));
  }
  compilerHash = h.digest('hex');
  return compilerHash;
}
