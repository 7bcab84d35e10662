// Matrix multiplication and the dense (fully connected) layer, PyTorch style: y = x W^T + b.
import { defineOp, check } from '../op';
import type { Tensor } from '../graph';
import { compute, sum } from '../te';
import { add } from './elementwise';

interface MatmulAttrs { readonly transA: boolean; readonly transB: boolean }

const matmulOp = defineOp<MatmulAttrs>({
  name: 'matmul',
  compute: ([a, b], { transA, transB }) => {
    check(a!.rank === 2 && b!.rank === 2, `matmul needs rank-2 inputs, got [${a!.shape.join(', ')}] and [${b!.shape.join(', ')}]`);
    const [M, K] = transA ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [K2, N] = transB ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    check(K === K2, `inner sizes differ: ${K} and ${K2} (shapes [${a!.shape.join(', ')}] and [${b!.shape.join(', ')}])`);
    return compute([M, N], (i, j) => sum([K], (k) => (transA ? a!.at(k, i) : a!.at(i, k)).mul(transB ? b!.at(j, k) : b!.at(k, j))));
  },
  vjp: (g, [a, b], _out, { transA, transB }) => [
    transA ? matmul(b!, g, { transA: transB, transB: true }) : matmul(g, b!, { transA: false, transB: !transB }),
    transB ? matmul(g, a!, { transA: true, transB: transA }) : matmul(a!, g, { transA: !transA, transB: false }),
  ],
});

export const matmul = (a: Tensor, b: Tensor, opts: Partial<MatmulAttrs> = {}): Tensor =>
  matmulOp([a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false });

/** Dense layer: x [N, in], weight [out, in], bias [out]. */
export function dense(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight, { transB: true });
  return bias ? add(y, bias) : y;
}
