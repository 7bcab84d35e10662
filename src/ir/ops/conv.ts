// 2-D convolution (NCHW, OIHW weights, groups including depthwise) and its two gradient convolutions.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, select, sum } from '../te';
import { add } from './elementwise';
import { reshape } from './shape';
import { windowAtTap } from './window';

export interface ConvAttrs {
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
}

/** Output size of a convolution or pooling window along one axis. */
export const convOutSize = (n: number, k: number, stride: number, padding: number): number =>
  Math.floor((n + 2 * padding - k) / stride) + 1;

function checkConv(x: readonly number[], w: readonly number[], { stride, padding, groups }: ConvAttrs) {
  check(x.length === 4, `input must be NCHW (rank 4), got [${x.join(', ')}]`);
  check(w.length === 4, `weight must be [out, in/groups, kh, kw], got [${w.join(', ')}]`);
  check(Number.isInteger(groups) && groups >= 1, `groups must be a positive integer, got ${groups}`);
  check(Number.isInteger(stride) && stride >= 1, `stride must be a positive integer, got ${stride}`);
  check(Number.isInteger(padding) && padding >= 0, `padding must be a non-negative integer, got ${padding}`);
  const [, C, H, W] = x as [number, number, number, number];
  const [O, Cg, KH, KW] = w as [number, number, number, number];
  check(C % groups === 0, `groups=${groups} does not divide the ${C} input channels`);
  check(O % groups === 0, `groups=${groups} does not divide the ${O} output channels`);
  check(Cg === C / groups, `channel mismatch: input has ${C} channels, so with groups=${groups} the weight needs ${C / groups} input channels, but it has ${Cg}`);
  check(KH <= H + 2 * padding && KW <= W + 2 * padding, `kernel ${KH}x${KW} is larger than the padded input ${H + 2 * padding}x${W + 2 * padding}`);
}

const conv2dOp = defineOp<ConvAttrs>({
  name: 'conv2d',
  compute: ([x, w], attrs) => {
    checkConv(x!.shape, w!.shape, attrs);
    const { stride: s, padding: p, groups: G } = attrs;
    const [N, , H, W] = x!.shape as [number, number, number, number];
    const [O, Cg, KH, KW] = w!.shape as [number, number, number, number];
    const Og = O / G;
    return compute([N, O, convOutSize(H, KH, s, p), convOutSize(W, KW, s, p)], (n, o, y, xx) =>
      sum([Cg, KH, KW], (c, ky, kx) =>
        x!.atOr(0, n, o.idiv(Og).mul(Cg).add(c), y.mul(s).add(ky).sub(p), xx.mul(s).add(kx).sub(p)).mul(w!.at(o, c, ky, kx))));
  },
  vjp: (g, [x, w], _out, attrs) => [conv2dGradInput(g, w!, x!.shape, attrs), conv2dGradWeight(g, x!, w!.shape, attrs)],
});

const conv2dGradInputOp = defineOp<ConvAttrs & { inputShape: readonly number[] }>({
  name: 'conv2d_grad_input',
  compute: ([g, w], { stride: s, padding: p, groups: G, inputShape }) => {
    const [N, C, H, W] = inputShape as [number, number, number, number];
    const [O, Cg, KH, KW] = w!.shape as [number, number, number, number];
    const [, , Ho, Wo] = g!.shape as [number, number, number, number];
    const Og = O / G;
    return compute([N, C, H, W], (n, c, i, j) =>
      sum([Og, KH, KW], (oo, ky, kx) => {
        const ty = windowAtTap(i, ky, s, p, Ho);
        const tx = windowAtTap(j, kx, s, p, Wo);
        const o = c.idiv(Cg).mul(Og).add(oo);
        return select(ty.ok.and(tx.ok), g!.at(n, o, ty.at, tx.at).mul(w!.at(o, c.mod(Cg), ky, kx)), 0);
      }));
  },
  // The transposed convolution is linear in both inputs: its adjoints are the forward conv and the weight gradient.
  vjp: (cot, [g, w], _out, a) => [conv2dOp([cot, w!], convAttrsOf(a)), conv2dGradWeight(g!, cot, w!.shape, a)],
});

const conv2dGradWeightOp = defineOp<ConvAttrs & { weightShape: readonly number[] }>({
  name: 'conv2d_grad_weight',
  compute: ([g, x], { stride: s, padding: p, groups: G, weightShape }) => {
    const [O, Cg, KH, KW] = weightShape as [number, number, number, number];
    const [N, , Ho, Wo] = g!.shape as [number, number, number, number];
    const Og = O / G;
    return compute([O, Cg, KH, KW], (o, c, ky, kx) =>
      sum([N, Ho, Wo], (n, y, xx) =>
        g!.at(n, o, y, xx).mul(x!.atOr(0, n, o.idiv(Og).mul(Cg).add(c), y.mul(s).add(ky).sub(p), xx.mul(s).add(kx).sub(p)))));
  },
  vjp: (cot, [g, x], _out, a) => [conv2dOp([x!, cot], convAttrsOf(a)), conv2dGradInput(g!, cot, x!.shape, a)],
});

const convAttrsOf = (a: ConvAttrs): ConvAttrs => ({ stride: a.stride, padding: a.padding, groups: a.groups });

export const conv2dGradInput = (g: Tensor, w: Tensor, inputShape: readonly number[], a: ConvAttrs): Tensor =>
  conv2dGradInputOp([g, w], { stride: a.stride, padding: a.padding, groups: a.groups, inputShape });
export const conv2dGradWeight = (g: Tensor, x: Tensor, weightShape: readonly number[], a: ConvAttrs): Tensor =>
  conv2dGradWeightOp([g, x], { stride: a.stride, padding: a.padding, groups: a.groups, weightShape });

/** conv2d(x, w) (+ bias): out[n,o,y,x] = sum_{c,ky,kx} x[n, group(o)*C/G + c, y*s+ky-p, x*s+kx-p] * w[o,c,ky,kx]. */
export function conv2d(x: Tensor, w: Tensor, opts: Partial<ConvAttrs> & { bias?: Tensor } = {}): Tensor {
  const attrs: ConvAttrs = { stride: opts.stride ?? 1, padding: opts.padding ?? 0, groups: opts.groups ?? 1 };
  const y = conv2dOp([x, w], attrs);
  return opts.bias ? add(y, reshape(opts.bias, [opts.bias.shape[0]!, 1, 1])) : y;
}
