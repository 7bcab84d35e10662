// A custom op in the tsc-nn DSL: hard-swish, x * relu6(x + 3) / 6 (MobileNetV3), written as a tensor expression
// exactly like the built-in ops, with its gradient rule, then property-tested (forward on every backend, gradient
// against finite differences) with: npx tsc-nn check-op examples/hard-swish.ts
import { compute, defineOp, defineOpCheck, select, type Tensor } from 'tsc-nn';

// d/dx [x * relu6(x + 3) / 6] = relu6(x + 3) / 6 + x / 6 where 0 < x + 3 < 6, times the incoming gradient g.
const hardSwishGradOp = defineOp<Record<string, never>>({
  name: 'hard_swish_grad',
  compute: ([x, g]) => compute(x!.shape, (...i) => {
    const v = x!.at(...i);
    const slope = v.add(3).max(0).min(6).div(6).add(select(v.add(3).gt(0).and(v.add(3).lt(6)), v.div(6), 0));
    return g!.at(...i).mul(slope);
  }),
});

const hardSwishOp = defineOp<Record<string, never>>({
  name: 'hard_swish',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).mul(x!.at(...i).add(3).max(0).min(6)).div(6)),
  vjp: (g, [x]) => [hardSwishGradOp([x!, g], {})],
});

export const hardSwish = (x: Tensor): Tensor => hardSwishOp([x], {});

export const hardSwishCheck = defineOpCheck({
  name: 'hard_swish',
  draw: (d) => ({ inputs: [[d(1, 4, 'batch'), d(1, 16, 'channels'), d(1, 8, 'height'), d(1, 8, 'width')]] }),
  apply: ([x]) => hardSwish(x!),
});
