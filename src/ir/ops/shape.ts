// Index-remapping ops: reshape, transpose, concat, slice, pad (broadcast lives with its gradient, sum-to, in reduce.ts). Their expressions contain no arithmetic
// on values, so the inliner can substitute them into their readers (this is how the channel shuffle disappears).
import { defineOp, check } from '../op';
import { sizeOf, type Tensor } from '../graph';
import { compute, select, type E, type Ix } from '../te';

/**
 * Split a reshape into groups of consecutive axes whose sizes multiply to the same number on both sides, so the
 * index map only flattens and unflattens inside each group (a channel split stays `c = i * (C/g) + j`).
 */
function reshapeGroups(from: readonly number[], to: readonly number[]): Array<{ from: number[]; to: number[] }> {
  const groups: Array<{ from: number[]; to: number[] }> = [];
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    const g = { from: [] as number[], to: [] as number[] };
    let pf = 1;
    let pt = 1;
    do {
      if ((pf <= pt && i < from.length) || j >= to.length) { g.from.push(i); pf *= from[i++]!; }
      else { g.to.push(j); pt *= to[j++]!; }
    } while (pf !== pt);
    groups.push(g);
  }
  return groups;
}

const reshapeOp = defineOp<{ shape: readonly number[] }>({
  name: 'reshape',
  compute: ([x], { shape }) => {
    check(sizeOf(shape) === sizeOf(x!.shape), `cannot reshape [${x!.shape.join(', ')}] to [${shape.join(', ')}]`);
    const groups = reshapeGroups(x!.shape, shape);
    return compute(shape, (...o) => {
      const idx: Ix[] = new Array(x!.rank).fill(0);
      for (const g of groups) {
        let flat: E | number = 0;
        for (const j of g.to) flat = typeof flat === 'number' ? o[j]!.add(flat * shape[j]!) : flat.mul(shape[j]!).add(o[j]!);
        let stride = 1;
        for (let k = g.from.length - 1; k >= 0; k--) {
          const a = g.from[k]!;
          const d = x!.shape[a]!;
          idx[a] = typeof flat === 'number' ? 0 : k === 0 ? flat.idiv(stride) : flat.idiv(stride).mod(d);
          stride *= d;
        }
      }
      return x!.at(...idx);
    });
  },
  vjp: (g, [x]) => [reshape(g, x!.shape)],
});
export const reshape = (x: Tensor, shape: readonly number[]): Tensor => {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  return reshapeOp([x], { shape });
};

const transposeOp = defineOp<{ perm: readonly number[] }>({
  name: 'transpose',
  compute: ([x], { perm }) => {
    check(perm.length === x!.rank && [...perm].sort().every((p, i) => p === i), `perm [${perm.join(', ')}] is not a permutation of ${x!.rank} axes`);
    return compute(perm.map((p) => x!.shape[p]!), (...o) => {
      const idx: E[] = new Array(x!.rank);
      perm.forEach((p, i) => { idx[p] = o[i]!; });
      return x!.at(...idx);
    });
  },
  vjp: (g, _x, _out, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => { inv[p] = i; });
    return [transpose(g, inv)];
  },
});
export const transpose = (x: Tensor, perm: readonly number[]): Tensor => transposeOp([x], { perm });

const concatOp = defineOp<{ axis: number }>({
  name: 'concat',
  compute: (xs, { axis }) => {
    const first = xs[0]!;
    check(axis >= 0 && axis < first.rank, `axis ${axis} out of range for rank ${first.rank}`);
    for (const x of xs) {
      check(x.rank === first.rank && x.shape.every((d, i) => i === axis || d === first.shape[i]),
        `shapes ${xs.map((t) => `[${t.shape.join(', ')}]`).join(' and ')} differ outside axis ${axis}`);
    }
    const shape = [...first.shape];
    shape[axis] = xs.reduce((p, x) => p + x.shape[axis]!, 0);
    return compute(shape, (...o) => {
      // Last input first, so the chain of selects tests offsets from the front.
      let offset = shape[axis]!;
      let e: E | null = null;
      for (let k = xs.length - 1; k >= 0; k--) {
        const x = xs[k]!;
        offset -= x.shape[axis]!;
        const idx = o.map((v, i) => (i === axis ? v.sub(offset) : v));
        e = e === null ? x.at(...idx) : select(o[axis]!.lt(offset + x.shape[axis]!), x.at(...idx), e);
      }
      return e!;
    });
  },
  vjp: (g, xs, _out, { axis }) => {
    let offset = 0;
    return xs.map((x) => { const s = slice(g, axis, offset, x.shape[axis]!); offset += x.shape[axis]!; return s; });
  },
});
export const concat = (xs: readonly Tensor[], axis: number): Tensor => concatOp(xs, { axis });

const sliceOp = defineOp<{ axis: number; start: number; size: number }>({
  name: 'slice',
  compute: ([x], { axis, start, size }) => {
    check(axis >= 0 && axis < x!.rank && start >= 0 && start + size <= x!.shape[axis]!, `slice [${start}, ${start + size}) of axis ${axis} is outside [${x!.shape.join(', ')}]`);
    const shape = [...x!.shape];
    shape[axis] = size;
    return compute(shape, (...o) => x!.at(...o.map((v, i) => (i === axis ? v.add(start) : v))));
  },
  vjp: (g, [x], _out, { axis, start, size }) => [pad(g, axis, start, x!.shape[axis]! - start - size)],
});
export const slice = (x: Tensor, axis: number, start: number, size: number): Tensor => sliceOp([x], { axis, start, size });

const padOp = defineOp<{ axis: number; before: number; after: number }>({
  name: 'pad',
  compute: ([x], { axis, before, after }) => {
    check(axis >= 0 && axis < x!.rank && before >= 0 && after >= 0, `bad pad of axis ${axis} by (${before}, ${after})`);
    const shape = [...x!.shape];
    shape[axis] = shape[axis]! + before + after;
    return compute(shape, (...o) => x!.atOr(0, ...o.map((v, i) => (i === axis ? v.sub(before) : v))));
  },
  vjp: (g, [x], _out, { axis, before }) => [slice(g, axis, before, x!.shape[axis]!)],
});
/** Zero-pad one axis. */
export const pad = (x: Tensor, axis: number, before: number, after: number): Tensor => padOp([x], { axis, before, after });
