// The mean over axes: a sum scaled by one over the count (its gradient follows from theirs).
import type { Tensor } from '../graph';
import { scale } from './elementwise';
import { sum } from './reduce';

export function mean(x: Tensor, axes: readonly number[], keepdims = false): Tensor {
  const count = axes.reduce((p, a) => p * x.shape[a < 0 ? a + x.rank : a]!, 1);
  return scale(sum(x, axes, keepdims), 1 / count);
}
