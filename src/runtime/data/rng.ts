// xoshiro128**: a small, fast PRNG whose whole state is four uint32s, so a checkpoint can store it and resume exactly.

export type RngState = [number, number, number, number];

/** splitmix32 step: spreads any seed over all 32 bits so nearby seeds give unrelated streams. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export class Rng {
  private s: RngState;

  constructor(state: RngState) {
    if (state.every((v) => v >>> 0 === 0)) throw new Error('xoshiro128** state must not be all zero');
    this.s = state.map((v) => v >>> 0) as RngState;
  }

  /**
   * A generator for a seed and a path of integers (e.g. [tag, epoch, step]): each path gets its own stream,
   * so any (epoch, step) can be regenerated without replaying the ones before it.
   */
  static derive(seed: number, ...path: number[]): Rng {
    let h = mix32(seed >>> 0);
    for (const p of path) h = mix32(h ^ (p >>> 0));
    const state: RngState = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) state[i] = h = mix32(h + i);
    return new Rng(state);
  }

  state(): RngState {
    return this.s.map((v) => v >>> 0) as RngState;
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new RangeError(`Rng.int needs an integer in 1..2^32, got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.nextU32();
    while (x >= limit);
    return x % n;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
