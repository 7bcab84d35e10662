// The helper thread shares a split kernel's chunks with the calling thread through a counter: every chunk runs
// exactly once, and when one thread is slower the other takes more chunks (a fixed half would make it wait).
import { describe, expect, it } from 'vitest';
import { HelperThread } from '../src/backends/helper-thread';

// On the helper: record which thread ran each row (2) into a shared array.
const SETUP = `
const owner = new Int32Array(workerData.owner);
return (i, lo, hi) => { for (let r = lo; r < hi; r++) Atomics.add(owner, r, 2); };
`;

describe('dynamic chunks on two threads', () => {
  it('every chunk runs once; a slow calling thread leaves most chunks to the helper', () => {
    const rows = 64;
    const owner = new Int32Array(new SharedArrayBuffer(rows * 4));
    const helper = new HelperThread(SETUP, { owner: owner.buffer }, [{ chunk: 8, hi: rows }]);
    try {
      let mine = 0;
      helper.runSplit(0, (lo, hi) => {
        const until = performance.now() + 20; // this thread is slow: 20 ms per chunk
        while (performance.now() < until);
        for (let r = lo; r < hi; r++) Atomics.add(owner, r, 1);
        mine += hi - lo;
      });
      // Each row was run by exactly one thread (1: this one, 2: the helper).
      expect([...owner].every((v) => v === 1 || v === 2)).toBe(true);
      expect(owner.filter((v) => v === 1).length).toBe(mine);
      expect(mine).toBeLessThanOrEqual(rows / 2 - 8);
    } finally {
      helper.close();
    }
  });
});
