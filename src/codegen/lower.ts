// Lowering: decide how each compute node becomes a kernel (its memory layouts, its work), independent of the
// language the kernel is printed in. Every target prints the same LoweredKernel.
import { reduceWork, visitExpr, type Expr } from '../ir/expr';
import { isSource, sizeOf, type Graph, type Node } from '../ir/graph';
import { simplify } from '../ir/simplify';

/** Float32 represents every integer up to 2^24 exactly; larger flat indices must be split in two. */
export const EXACT_INDEX_LIMIT = 2 ** 24;

/**
 * How a tensor is addressed: `split` 0 is one flat index; otherwise a 2-D view [rows, cols] with
 * rows = prod(shape[:split]) and cols = prod(shape[split:]), each below the exact-index limit.
 */
export interface TensorLayout { readonly shape: readonly number[]; readonly split: number }

/**
 * The 2-D view is the most balanced split (smallest larger half): a GPU dispatches each view dimension on its own
 * grid axis, and WebGPU caps one axis at 65,535 workgroups (8 threads each for gpu.js's 2-D kernels).
 */
export function layoutFor(shape: readonly number[]): TensorLayout {
  if (sizeOf(shape) <= EXACT_INDEX_LIMIT) return { shape, split: 0 };
  let best: TensorLayout | undefined;
  let bestExtent = EXACT_INDEX_LIMIT + 1;
  for (let split = 1; split < shape.length; split++) {
    const extent = Math.max(sizeOf(shape.slice(0, split)), sizeOf(shape.slice(split)));
    if (extent < bestExtent) { best = { shape, split }; bestExtent = extent; }
  }
  if (!best) throw new Error(`tensor [${shape.join(', ')}] cannot be indexed exactly in float32: no axis split keeps both halves below 2^24`);
  return best;
}

export interface LoweredKernel {
  readonly name: string;
  readonly node: number;
  /** The ops this kernel computes (more than one after fusion). */
  readonly ops: readonly string[];
  readonly inputs: readonly { readonly node: number; readonly layout: TensorLayout }[];
  readonly output: TensorLayout;
  readonly body: Expr;
  /** Largest reduction extent: loops run to constant bounds, and gpu.js's loop cap is set above this. */
  readonly maxLoopExtent: number;
  /** Multiply-adds (or reduction steps) for the whole output. */
  readonly macs: number;
}

export function lowerNode(g: Graph, n: Node): LoweredKernel {
  const body = simplify(n.expr!, n.shape);
  let maxLoopExtent = 1;
  visitExpr(body, (e) => { if (e.k === 'reduce') for (const v of e.vars) maxLoopExtent = Math.max(maxLoopExtent, v.extent); });
  const ops = n.fused ?? [n.op];
  return {
    name: `k${n.id}_${ops[ops.length - 1]}`,
    node: n.id,
    ops,
    inputs: n.inputs.map((i) => ({ node: i, layout: layoutFor(g.node(i).shape) })),
    output: layoutFor(n.shape),
    body,
    maxLoopExtent,
    macs: sizeOf(n.shape) * reduceWork(body),
  };
}

/** One kernel per compute node, in execution order. */
export const lowerGraph = (g: Graph): LoweredKernel[] => g.nodes.filter((n) => !isSource(n)).map((n) => lowerNode(g, n));
