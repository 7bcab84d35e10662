// The float64 reference interpreter: evaluates every node's tensor expression with plain loops over its output
// coordinates. It is the oracle for every test. Expressions are turned into closures once per node (a direct
// structural translation), then called for each output element.
import { evalBinary, evalUnary, type Expr } from './expr';
import { isSource, outputKey, sizeOf, type Graph, type Node } from './graph';

type Scalar = (axes: Int32Array, rv: Float64Array) => number;

const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
};

function compileExpr(e: Expr, inputs: readonly { data: Float64Array; shape: readonly number[] }[], slots: Map<number, number>, where: string): Scalar {
  const c = (x: Expr): Scalar => compileExpr(x, inputs, slots, where);
  switch (e.k) {
    case 'const': { const v = e.v; return () => v; }
    case 'axis': { const i = e.i; return (ax) => ax[i]!; }
    case 'rvar': { const s = slots.get(e.id)!; return (_ax, rv) => rv[s]!; }
    case 'read': {
      const { data, shape } = inputs[e.input]!;
      const strides = stridesOf(shape);
      const idx = e.index.map(c);
      return (ax, rv) => {
        let flat = 0;
        for (let d = 0; d < idx.length; d++) {
          const v = idx[d]!(ax, rv);
          if (!(v >= 0 && v < shape[d]! && Number.isInteger(v))) {
            throw new Error(`${where}: read of input ${e.input} at axis ${d} index ${v} outside [0, ${shape[d]})`);
          }
          flat += v * strides[d]!;
        }
        return data[flat]!;
      };
    }
    case 'bin': { const a = c(e.a); const b = c(e.b); const op = e.op; return (ax, rv) => evalBinary(op, a(ax, rv), b(ax, rv)); }
    case 'un': { const a = c(e.a); const op = e.op; return (ax, rv) => evalUnary(op, a(ax, rv)); }
    case 'select': {
      const cond = c(e.cond); const a = c(e.a); const b = c(e.b);
      return (ax, rv) => (cond(ax, rv) !== 0 ? a(ax, rv) : b(ax, rv));
    }
    case 'reduce': {
      for (const v of e.vars) if (!slots.has(v.id)) slots.set(v.id, slots.size);
      const body = c(e.body);
      const vars = e.vars.map((v) => ({ slot: slots.get(v.id)!, extent: v.extent }));
      const isSum = e.kind === 'sum';
      return (ax, rv) => {
        let acc = isSum ? 0 : -Infinity;
        const loop = (d: number): void => {
          if (d === vars.length) { const v = body(ax, rv); acc = isSum ? acc + v : Math.max(acc, v); return; }
          const { slot, extent } = vars[d]!;
          for (let i = 0; i < extent; i++) { rv[slot] = i; loop(d + 1); }
        };
        loop(0);
        return acc;
      };
    }
  }
}

/** Evaluate one node given its inputs' values. */
export function evaluateNode(node: Node, inputs: readonly Float64Array[], inputShapes: readonly (readonly number[])[]): Float64Array {
  const slots = new Map<number, number>();
  const f = compileExpr(node.expr!, inputs.map((data, i) => ({ data, shape: inputShapes[i]! })), slots, `%${node.id} ${node.op}`);
  const out = new Float64Array(sizeOf(node.shape));
  const rank = node.shape.length;
  const ax = new Int32Array(rank);
  const rv = new Float64Array(Math.max(1, slots.size));
  for (let flat = 0; flat < out.length; flat++) {
    let r = flat;
    for (let d = rank - 1; d >= 0; d--) { ax[d] = r % node.shape[d]!; r = Math.floor(r / node.shape[d]!); }
    out[flat] = f(ax, rv);
  }
  return out;
}

/** Run the whole graph in float64. `feeds` gives every source by name; returns every node's value. */
export function evaluate(graph: Graph, feeds: Readonly<Record<string, ArrayLike<number>>>): Float64Array[] {
  const values: Float64Array[] = [];
  for (const node of graph.nodes) {
    if (isSource(node)) {
      const v = feeds[node.name!];
      if (!v) throw new Error(`no value fed for ${node.op} ${node.name}`);
      if (v.length !== sizeOf(node.shape)) throw new Error(`${node.name}: fed ${v.length} values, shape [${node.shape.join(', ')}] needs ${sizeOf(node.shape)}`);
      values.push(Float64Array.from(v));
    } else {
      values.push(evaluateNode(node, node.inputs.map((i) => values[i]!), node.inputs.map((i) => graph.node(i).shape)));
    }
  }
  return values;
}

/** Evaluate and return the graph outputs by name. */
export function evaluateOutputs(graph: Graph, feeds: Readonly<Record<string, ArrayLike<number>>>): Record<string, Float64Array> {
  const values = evaluate(graph, feeds);
  return Object.fromEntries(graph.outputs.map((o) => [outputKey(o), values[o.node]!]));
}
