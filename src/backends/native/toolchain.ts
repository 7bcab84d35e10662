// The system C compiler the native backend builds with: found on PATH (`cc`, or $CC), its flags chosen by probing
// (-march=native for the machine's own vectors), and the widest float vector it targets.
// Probed once per process; a missing or broken compiler is a reason, never a silent fallback.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Toolchain {
  readonly cc: string;
  /** `cc --version`'s first line. */
  readonly version: string;
  /** Flags for building a kernel library (a shared object Node loads with process.dlopen). */
  readonly flags: readonly string[];
  /** Floats per vector: 16 with AVX-512, 8 with AVX2, 4 otherwise (SSE, NEON). */
  readonly maxLanes: number;
}

const BASE_FLAGS = ['-O3', '-funroll-loops', '-std=gnu11', '-fPIC', '-shared', '-pthread', '-fno-strict-aliasing', '-fno-math-errno', '-ffp-contract=fast'];

const PROBE_SOURCE = `
#include <pthread.h>
#include <stdatomic.h>
static _Atomic int calls;
static void *count(void *x) { atomic_fetch_add(&calls, 1); return x; }
int probe(void) { pthread_t t; pthread_create(&t, 0, count, 0); return pthread_join(t, 0); }
typedef float v4 __attribute__((vector_size(16)));
v4 twice(v4 a) { return a + a; }
/* The library calls Node-API functions that only the node binary defines: linking must leave them to load time. */
extern int napi_get_value_int32(void *, void *, int *);
int from_node(void) { int x = 0; return napi_get_value_int32(0, 0, &x); }
`;

let found: Toolchain | { error: string } | undefined;

const run = (cc: string, args: readonly string[], input?: string, timeout = 60_000): { ok: boolean; out: string } => {
  const r = spawnSync(cc, args, { input, encoding: 'utf8', timeout, maxBuffer: 64 * 2 ** 20 });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
};

function probe(): Toolchain | { error: string } {
  const cc = process.env.CC ?? 'cc';
  const version = run(cc, ['--version']);
  if (!version.ok) return { error: `no C compiler: \`${cc} --version\` failed (install gcc, e.g. Debian's build-essential, or set CC)` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-nn-cc-'));
  try {
    const src = path.join(dir, 'probe.c');
    fs.writeFileSync(src, PROBE_SOURCE);
    const builds = (flags: readonly string[]): boolean => run(cc, [...BASE_FLAGS, ...flags, src, '-o', path.join(dir, 'probe.so')]).ok;
    // macOS's linker rejects undefined symbols in a shared library unless told that the host process defines them.
    const host = process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [];
    const march = builds([...host, '-march=native']) ? ['-march=native'] : [];
    // TSC_NN_CFLAGS: extra flags after tsc-nn's (e.g. -O2, or -march=x86-64-v3 to build for other machines).
    const extra = (process.env.TSC_NN_CFLAGS ?? '').split(/\s+/).filter(Boolean);
    const flags = [...BASE_FLAGS, ...host, ...march, ...extra];
    if (!builds([...host, ...march, ...extra])) return { error: `${cc} cannot build a shared library with ${flags.join(' ')} (it needs C11 atomics, pthreads and vector extensions: GCC or Clang)` };
    const macros = run(cc, [...march, '-dM', '-E', '-x', 'c', '-'], '').out;
    const maxLanes = /__AVX512F__/.test(macros) ? 16 : /__AVX2__|__AVX__/.test(macros) ? 8 : 4;
    return { cc, version: version.out.split('\n')[0]!.trim(), flags, maxLanes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The compiler and its flags, or why there is none. */
export function toolchain(): Toolchain | { error: string } {
  found ??= probe();
  return found;
}

/** Build C files into the shared library `out`: each compiled to an object file, all at once, then linked. */
export function buildLibrary(tc: Toolchain, sources: readonly string[], out: string): void {
  const compileFlags = tc.flags.filter((f, i, all) => f !== '-shared' && f !== '-undefined' && all[i - 1] !== '-undefined');
  const objects = sources.map((src) => src.replace(/\.c$/, '.o'));
  const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  // One shell starts every compiler and waits for each (the cores compile the files in parallel).
  const script = [
    ...sources.map((src, i) => `${quote(tc.cc)} ${compileFlags.map(quote).join(' ')} -c ${quote(src)} -o ${quote(objects[i]!)} & p${i}=$!`),
    'status=0',
    ...sources.map((_, i) => `wait $p${i} || status=1`),
    'exit $status',
  ].join('\n');
  const compiled = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 2 ** 20 });
  const linked = compiled.status === 0 ? run(tc.cc, [...tc.flags, ...objects, '-o', out], undefined, 10 * 60_000) : undefined;
  for (const o of objects) fs.rmSync(o, { force: true });
  if (compiled.status !== 0 || !linked?.ok) {
    const text = compiled.status !== 0 ? `${compiled.stdout ?? ''}${compiled.stderr ?? ''}${compiled.error?.message ?? ''}` : linked!.out;
    const errors = text.split('\n').filter((l) => /error/.test(l)).slice(0, 3).join('; ');
    throw new Error(`${tc.cc} could not build ${sources.join(', ')}: ${errors || text.slice(0, 500)}`);
  }
}
