// A custom op in the tsc-nn DSL: hard-swish, x * relu6(x + 3) / 6 (MobileNetV3), written as a tensor expression
// exactly like the built-in ops, then property-tested with: npx tsc-nn check-op examples/hard-swish.ts
import { compute, defineOp, defineOpCheck, type Tensor } from 'tsc-nn';

const hardSwishOp = defineOp<Record<string, never>>({
  name: 'hard_swish',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).mul(x!.at(...i).add(3).max(0).min(6)).div(6)),
});

export const hardSwish = (x: Tensor): Tensor => hardSwishOp([x], {});

export const hardSwishCheck = defineOpCheck({
  name: 'hard_swish',
  draw: (d) => ({ inputs: [[d(1, 4, 'batch'), d(1, 16, 'channels'), d(1, 8, 'height'), d(1, 8, 'width')]] }),
  apply: ([x]) => hardSwish(x!),
});
