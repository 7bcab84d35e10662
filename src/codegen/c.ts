// The native CPU target: the vector printer's schedule (vector-printer.ts) spelled as C with GCC/Clang vector
// extensions, W = 16, 8 or 4 float lanes per kernel (the machine's widest vector the kernel's axis fills), over one
// memory `M` of byte addresses like the WebAssembly target's. The program adds a driver that runs every kernel in
// order, a split kernel's chunks shared by a small thread pool, and a Node-API entry point, so the compiled
// library loads into Node with process.dlopen and runs the arena of a Float32Array in place.
import type { LoweredKernel } from './lower';
import { printVectorKernel, type ArithOp, type CompareOp, type KernelAddresses, type ValueType, type VectorKernelSource, type VectorSyntax } from './vector-printer';

/** Vector widths (floats) a C kernel may use, widest first. */
export const C_WIDTHS = [16, 8, 4] as const;

export interface CTarget {
  /** The machine's widest float vector, in lanes (16 with AVX-512, 8 with AVX2, 4 otherwise). */
  readonly maxLanes: number;
}

const float = (v: number): string => {
  if (v === Infinity) return '3.4028234663852886e+38f';
  if (v === -Infinity) return '(-3.4028234663852886e+38f)';
  if (Number.isNaN(v)) throw new Error('NaN constant in a kernel expression');
  const s = String(v);
  const literal = `${s}${/[.e]/.test(s) ? '' : '.0'}f`;
  return v < 0 ? `(${literal})` : literal;
};
/** Kernels have external linkage inside the library (hidden), so a program's kernels can be split over several files. */
const KERNEL_ATTRIBUTES = '__attribute__((noipa, visibility("hidden")))';
const infix: Record<CompareOp, string> = { lt: '<', le: '<=', eq: '==', ne: '!=' };
const arithInfix: Partial<Record<ArithOp, string>> = { add: '+', sub: '-', mul: '*', div: '/' };

function cSyntax(W: number): VectorSyntax {
  const vf = `vf${W}`;
  const vi = `vi${W}`;
  const type: Record<ValueType, string> = { int: 'int', float: 'float', ivec: vi, fvec: vf };
  const at = (address: string, offset: number): string => `M + ${address}${offset ? ` + ${offset}` : ''}`;
  return {
    lanes: W,
    lo: 'lo',
    hi: 'hi',
    isSimple: (code) => /^[A-Za-z_]\w*$/.test(code) || /^\(?-?\d[\d.e+-]*f?\)?$/.test(code),
    name: (base) => base,
    get: (name) => name,
    set: (name, code) => `${name} = ${code};`,
    declare: (name, t) => `${type[t]} ${name};`,
    loop: (_id, v, start, end, step, _runsOnce, body) => [`for (${v} = ${start}; ${v} < ${end}; ${v} += ${step}) {`, ...body, '}'],
    iconst: (n) => (n < 0 ? `(${n})` : String(n)),
    iadd: (a, b) => `(${a} + ${b})`,
    isub: (a, b) => `(${a} - ${b})`,
    imul: (a, k) => `(${a} * ${k})`,
    idiv: (a, d) => `(${a} / ${d})`,
    floorAdjust: (n, d) => `(${n} - ((${n} >> 31) & ${d - 1}))`,
    iminmax: (kind, a, b) => `(${a} ${kind === 'min' ? '<' : '>'} ${b} ? ${a} : ${b})`,
    icmp: (op, a, b) => `(${a} ${infix[op]} ${b})`,
    ivecSplat: (code) => `((${vi}){} + ${code})`,
    ivecAdd: (a, b) => `(${a} + ${b})`,
    ivecConst: (values) => `((${vi}){${values.join(', ')}})`,
    ivecOf: (codes) => `((${vi}){${codes.join(', ')}})`,
    fconst: float,
    fsplat: (code) => `((${vf}){} + ${code})`,
    maskSplat: (code) => `((${vi}){} - ${code})`,
    fvecOf: (codes) => `((${vf}){${codes.join(', ')}})`,
    load: (address, offset, _nonNegative, vec) => `(*(const ${vec ? `vfu${W}` : 'float'} *)(${at(address, offset)}))`,
    shuffle: (first, second, picked) => `__builtin_shuffle(${first}, ${second}, ((${vi}){${picked.join(', ')}}))`,
    store: (address, offset, value, vec) => `*(${vec ? `vfu${W}` : 'float'} *)(${at(address, offset)}) = ${value};`,
    arith: (op, a, b, vec) => {
      const sym = arithInfix[op];
      if (sym) return `(${a} ${sym} ${b})`;
      return vec ? `v${op}${W}(${a}, ${b})` : `(${a} ${op === 'min' ? '<' : '>'} ${b} ? ${a} : ${b})`;
    },
    // GCC and Clang contract a * b + c into a fused multiply-add themselves (-ffp-contract=fast).
    fma: undefined,
    unary: (op, a, vec) => {
      if (op === 'neg') return `(-${a})`;
      if (vec) return `v${op}${W}(${a})`;
      // exp and log in double, rounded once, as the reference and the WebAssembly target compute them.
      return op === 'abs' ? `__builtin_fabsf(${a})` : op === 'sqrt' ? `__builtin_sqrtf(${a})` : `((float)__builtin_${op}((double)${a}))`;
    },
    convert: (code, vec) => (vec ? `__builtin_convertvector(${code}, ${vf})` : `((float)${code})`),
    fselect: (a, b, mask, vec) => (vec ? `vsel${W}(${a}, ${b}, ${mask})` : `(${mask} ? ${a} : ${b})`),
    fcmp: (op, a, b) => `(${a} ${infix[op]} ${b})`,
    mlogic: (op, a, b) => `(${a} ${op === 'and' ? '&' : '|'} ${b})`,
    hreduce: (kind, v) => `h${kind}${W}(${v})`,
    lane: (v, i) => `${v}[${i}]`,
    // noipa: each kernel is compiled on its own. Interprocedural analysis over the driver and the Node-API entry
    // point dropped a kernel called from kernel(arena, i, lo, hi) (GCC 12, -O3): kernels gain nothing from it.
    func: (name, declarations, body) => [`${KERNEL_ATTRIBUTES} void ${name}(char *restrict M, int lo, int hi) {`, ...declarations, ...body, '}'].join('\n'),
  };
}

export function printCKernel(k: LoweredKernel, at: KernelAddresses, target: CTarget): VectorKernelSource {
  // 32 vector registers (AVX-512; 16 with AVX2): 16 accumulators as 4 vectors x 4 channels, 2 x 8 or 1 x 16, and a
  // weight gradient's 4 x 4; 16-lane accumulators of a few thousand elements need no per-row partial sums.
  const wide = target.maxLanes >= 16;
  return printVectorKernel(k, at, {
    widths: C_WIDTHS.filter((w) => w <= target.maxLanes), unrolls: [4, 2], registerBlock: (u) => (wide ? 16 : 8) / u, anyBlockDivisor: true,
    laneReduceOuter: wide ? 4 : 2, rowsAbove: 4096, syntax: cSyntax, mergePlanes: true,
  });
}

/** Vector types and the lane-wise helpers the kernels call, for one width. */
function vectorHelpers(W: number): string {
  const vf = `vf${W}`;
  const vi = `vi${W}`;
  const lanewise = (name: string, expr: string): string =>
    `static inline ${vf} ${name}${W}(${vf} a) { ${vf} r; for (int i = 0; i < ${W}; i++) r[i] = ${expr}; return r; }`;
  return [
    `typedef float ${vf} __attribute__((vector_size(${4 * W})));`,
    `typedef int ${vi} __attribute__((vector_size(${4 * W})));`,
    `typedef float vfu${W} __attribute__((vector_size(${4 * W}), aligned(4)));`,
    `static inline ${vf} vsel${W}(${vf} a, ${vf} b, ${vi} m) { return (${vf})(((${vi})a & m) | ((${vi})b & ~m)); }`,
    `static inline ${vf} vmin${W}(${vf} a, ${vf} b) { return vsel${W}(a, b, a < b); }`,
    `static inline ${vf} vmax${W}(${vf} a, ${vf} b) { return vsel${W}(a, b, a > b); }`,
    `static inline ${vf} vabs${W}(${vf} a) { return (${vf})((${vi})a & 0x7fffffff); }`,
    lanewise('vsqrt', '__builtin_sqrtf(a[i])'),
    lanewise('vexp', '(float)__builtin_exp((double)a[i])'),
    lanewise('vlog', '(float)__builtin_log((double)a[i])'),
    `static inline float hsum${W}(${vf} a) { float s = 0; for (int i = 0; i < ${W}; i++) s += a[i]; return s; }`,
    `static inline float hmax${W}(${vf} a) { float s = a[0]; for (int i = 1; i < ${W}; i++) s = s > a[i] ? s : a[i]; return s; }`,
  ].join('\n');
}

// Node-API, declared here (its ABI is stable) so that building needs no Node headers.
const NODE_API = `
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
extern napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
extern napi_status napi_get_typedarray_info(napi_env, napi_value, int *, size_t *, void **, napi_value *, size_t *);
extern napi_status napi_get_value_int32(napi_env, napi_value, int32_t *);
extern napi_status napi_create_int32(napi_env, int32_t, napi_value *);
extern napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
extern napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);

/* The arena argument: a Float32Array's bytes (its byte offset included). */
static char *arena_of(napi_env env, napi_value v) {
  void *data = 0;
  napi_get_typedarray_info(env, v, 0, 0, &data, 0, 0);
  return (char *)data;
}

/* run(arena, threads): every kernel in order. */
static napi_value js_run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t threads = 1;
  napi_get_cb_info(env, info, &argc, argv, 0, 0);
  napi_get_value_int32(env, argv[1], &threads);
  tsc_run(arena_of(env, argv[0]), threads);
  return 0;
}

/* skew(arena): floats from the arena's start to the next 64-byte boundary (the memory plan aligns to it). */
static napi_value js_skew(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_get_cb_info(env, info, &argc, argv, 0, 0);
  napi_create_int32(env, (int32_t)((64 - (uintptr_t)arena_of(env, argv[0]) % 64) % 64 / 4), &result);
  return result;
}

/* profile(times): add each kernel's milliseconds in later runs to times[k] (a Float64Array); an empty one stops. */
static napi_value js_profile(napi_env env, napi_callback_info info) {
  size_t argc = 1, length = 0;
  napi_value argv[1];
  void *data = 0;
  napi_get_cb_info(env, info, &argc, argv, 0, 0);
  napi_get_typedarray_info(env, argv[0], 0, &length, &data, 0, 0);
  profile_ms = length >= KERNELS ? (double *)data : 0;
  return 0;
}

/* kernel(arena, index, lo, hi): rows [lo, hi) of one kernel on this thread. */
static napi_value js_kernel(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t i = 0, lo = 0, hi = 0;
  napi_get_cb_info(env, info, &argc, argv, 0, 0);
  napi_get_value_int32(env, argv[1], &i);
  napi_get_value_int32(env, argv[2], &lo);
  napi_get_value_int32(env, argv[3], &hi);
  if (i >= 0 && i < KERNELS) kernels[i](arena_of(env, argv[0]), lo, hi);
  return 0;
}

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "run", 3, js_run, 0, &f);
  napi_set_named_property(env, exports, "run", f);
  napi_create_function(env, "skew", 4, js_skew, 0, &f);
  napi_set_named_property(env, exports, "skew", f);
  napi_create_function(env, "profile", 7, js_profile, 0, &f);
  napi_set_named_property(env, exports, "profile", f);
  napi_create_function(env, "kernel", 6, js_kernel, 0, &f);
  napi_set_named_property(env, exports, "kernel", f);
  return exports;
}
`;

/** How the driver runs one kernel: rows [0, rows) in chunks of `chunk` rows (chunk >= rows: on one thread). */
export interface CKernelRun { readonly chunk: number; readonly rows: number }

// The thread pool. A split kernel is one generation: the calling thread publishes it in `state` (generation << 32 |
// next chunk), every thread claims chunks by compare-and-swap until none is left, and the caller waits until the
// chunks *claimed* are done, not for every thread to check in: a helper the OS has not scheduled (a shared or busy
// machine) never holds up a kernel it took no part in. Helpers spin briefly for the next kernel, then sleep.
const THREAD_POOL = `
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif
#define SPIN 20000

static _Atomic unsigned long long state;
static _Atomic int job_kernel, job_count, done, sleepers;
static char *_Atomic job_arena;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int helpers;

/* Claim and run chunks of the current generation until none is left. */
static void work(void) {
  for (;;) {
    unsigned long long s = atomic_load(&state);
    int next = (int)(s & 0xffffffffu), k = atomic_load(&job_kernel), count = atomic_load(&job_count);
    char *M = atomic_load(&job_arena);
    if (next >= count) return;
    if (!atomic_compare_exchange_weak(&state, &s, s + 1)) continue;
    const int lo = next * chunks[k];
    kernels[k](M, lo, lo + chunks[k] < rows[k] ? lo + chunks[k] : rows[k]);
    atomic_fetch_add(&done, 1);
  }
}

static void *helper(void *unused) {
  (void)unused;
  unsigned long long seen = atomic_load(&state) >> 32;
  for (;;) {
    for (int i = 0; i < SPIN && (atomic_load(&state) >> 32) == seen; i++) PAUSE();
    if ((atomic_load(&state) >> 32) == seen) {
      pthread_mutex_lock(&lock);
      atomic_fetch_add(&sleepers, 1);
      while ((atomic_load(&state) >> 32) == seen) pthread_cond_wait(&wake, &lock);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&lock);
    }
    seen = atomic_load(&state) >> 32;
    work();
  }
  return 0;
}

static void run_split(int k, char *M) {
  const int count = (rows[k] + chunks[k] - 1) / chunks[k];
  atomic_store(&done, 0);
  atomic_store(&job_kernel, k);
  atomic_store(&job_count, count);
  atomic_store(&job_arena, M);
  atomic_store(&state, ((atomic_load(&state) >> 32) + 1) << 32);
  if (atomic_load(&sleepers)) {
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
  }
  work();
  for (int i = 0; atomic_load(&done) < count; i++) {
    if (i < SPIN) PAUSE(); else sched_yield();
  }
}

/* Milliseconds each kernel took inside runs, added up while profiling (profile() sets it). */
static double *profile_ms;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Every kernel in order; split kernels shared with threads - 1 helpers (started on the first call). */
static void tsc_run(char *M, int threads) {
  for (; helpers < threads - 1; helpers++) {
    pthread_t t;
    if (pthread_create(&t, 0, helper, 0) != 0) break;
    pthread_detach(t);
  }
  for (int k = 0; k < KERNELS; k++) {
    const double start = profile_ms ? now_ms() : 0;
    if (chunks[k] < rows[k] && helpers > 0) run_split(k, M);
    else kernels[k](M, 0, rows[k]);
    if (profile_ms) profile_ms[k] += now_ms() - start;
  }
}
`;

/** A program as C files: `parts` files of kernels (compiled in parallel) and the driver with the Node-API entry point. */
export interface CProgram { readonly kernelFiles: readonly string[]; readonly driver: string }

const PRELUDE = ['/* Generated by tsc-nn: the kernels of one compiled program, for the native backend. */', '#include <stddef.h>', '#include <stdint.h>', ...C_WIDTHS.map(vectorHelpers)];

/** The program split into at most `parts` kernel files of similar size, plus the driver (thread pool, Node-API entry). */
export function cProgram(kernels: readonly VectorKernelSource[], runs: readonly CKernelRun[], parts = 1): CProgram {
  const n = kernels.length;
  const count = Math.max(1, Math.min(parts, n));
  const files: string[][] = Array.from({ length: count }, () => [...PRELUDE]);
  const sizes = new Array<number>(count).fill(0);
  for (const k of kernels) {
    const smallest = sizes.indexOf(Math.min(...sizes));
    files[smallest]!.push(k.text);
    sizes[smallest]! += k.text.length;
  }
  const driver = [
    ...PRELUDE,
    ...kernels.map((k) => `${KERNEL_ATTRIBUTES} void ${k.name}(char *restrict M, int lo, int hi);`),
    'typedef void (*kernel_fn)(char *restrict, int, int);',
    `#define KERNELS ${n}`,
    `static const kernel_fn kernels[${Math.max(1, n)}] = { ${kernels.map((k) => k.name).join(', ') || '0'} };`,
    `static const int chunks[${Math.max(1, n)}] = { ${runs.map((r) => r.chunk).join(', ') || '0'} };`,
    `static const int rows[${Math.max(1, n)}] = { ${runs.map((r) => r.rows).join(', ') || '0'} };`,
    THREAD_POOL,
    NODE_API,
  ].join('\n');
  return { kernelFiles: files.map((f) => f.join('\n')), driver };
}
