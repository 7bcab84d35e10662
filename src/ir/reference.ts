// The float64 reference interpreter: evaluates every node's tensor expression with plain loops over its output
// coordinates. It is the oracle for every test. Each node's expression is transliterated once into JavaScript
// (one operator for one operator, bounds-checked reads, a function per reduction) and run in float64.
import type { Expr } from './expr';
import { isSource, outputKey, sizeOf, type Graph, type Node } from './graph';

const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
};

/**
 * JavaScript source for one node, translated node by node from its expression: every read goes through a
 * bounds-checked accessor, every reduction is a function of the loop variables around it, every operator is the
 * plain JavaScript one (float64). No hoisting, no scheduling: what this computes is what the expression says.
 */
function translate(node: Node, inputShapes: readonly (readonly number[])[]): string {
  const functions: string[] = [];
  const rank = node.shape.length;
  const axes = node.shape.map((_, i) => `i${i}`);
  const binary: Record<string, (a: string, b: string) => string> = {
    add: (a, b) => `(${a} + ${b})`, sub: (a, b) => `(${a} - ${b})`, mul: (a, b) => `(${a} * ${b})`, div: (a, b) => `(${a} / ${b})`,
    idiv: (a, b) => `Math.floor(${a} / ${b})`, mod: (a, b) => `mod(${a}, ${b})`, min: (a, b) => `Math.min(${a}, ${b})`,
    max: (a, b) => `Math.max(${a}, ${b})`, lt: (a, b) => `(${a} < ${b} ? 1 : 0)`, le: (a, b) => `(${a} <= ${b} ? 1 : 0)`,
    eq: (a, b) => `(${a} === ${b} ? 1 : 0)`, and: (a, b) => `(${a} !== 0 && ${b} !== 0 ? 1 : 0)`, or: (a, b) => `(${a} !== 0 || ${b} !== 0 ? 1 : 0)`,
  };
  const unary: Record<string, (a: string) => string> = {
    neg: (a) => `(-${a})`, exp: (a) => `Math.exp(${a})`, log: (a) => `Math.log(${a})`, sqrt: (a) => `Math.sqrt(${a})`, abs: (a) => `Math.abs(${a})`,
  };
  const lit = (v: number): string => (Number.isFinite(v) ? `(${v})` : v > 0 ? 'Infinity' : '(-Infinity)');
  const go = (e: Expr, rvars: readonly string[]): string => {
    switch (e.k) {
      case 'const': return lit(e.v);
      case 'axis': return `i${e.i}`;
      case 'rvar': return `r${e.id}`;
      case 'read': return `read${e.input}(${e.index.map((x) => go(x, rvars)).join(', ')})`;
      case 'bin': return binary[e.op]!(go(e.a, rvars), go(e.b, rvars));
      case 'un': return unary[e.op]!(go(e.a, rvars));
      case 'select': return `(${go(e.cond, rvars)} !== 0 ? ${go(e.a, rvars)} : ${go(e.b, rvars)})`;
      case 'reduce': {
        const own = e.vars.map((v) => `r${v.id}`);
        const params = [...axes, ...rvars].join(', ');
        const name = `reduce${functions.length}`;
        functions.push(''); // reserve the slot: nested reductions are numbered after this one
        const body = go(e.body, [...rvars, ...own]);
        const loops = e.vars.map((v) => `for (let r${v.id} = 0; r${v.id} < ${v.extent}; r${v.id}++)`).join(' ');
        const update = e.kind === 'sum' ? `acc += ${body};` : `acc = Math.max(acc, ${body});`;
        functions[Number(name.slice(6))] = `function ${name}(${params}) { let acc = ${e.kind === 'sum' ? 0 : '-Infinity'}; ${loops} { ${update} } return acc; }`;
        return `${name}(${params})`;
      }
    }
  };
  const value = go(node.expr!, []);
  const reads = inputShapes.map((shape, k) => {
    const strides = stridesOf(shape);
    const params = shape.map((_, d) => `x${d}`);
    const checks = shape.map((n, d) => `if (!(x${d} >= 0 && x${d} < ${n} && Number.isInteger(x${d}))) outside(${k}, ${d}, x${d}, ${n});`).join(' ');
    const flat = shape.map((_, d) => `x${d} * ${strides[d]}`).join(' + ') || '0';
    return `function read${k}(${params.join(', ')}) { ${checks} return in${k}[${flat}]; }`;
  });
  const loops = node.shape.map((n, d) => `for (let i${d} = 0; i${d} < ${n}; i${d}++)`).join(' ');
  return [
    ...inputShapes.map((_, k) => `const in${k} = inputs[${k}];`),
    'const mod = (a, b) => a - b * Math.floor(a / b);',
    ...reads, ...functions,
    `let flat = 0; ${rank ? loops : ''} { out[flat++] = ${value}; }`,
  ].join('\n');
}

/** Evaluate one node given its inputs' values. */
export function evaluateNode(node: Node, inputs: readonly Float64Array[], inputShapes: readonly (readonly number[])[]): Float64Array {
  const out = new Float64Array(sizeOf(node.shape));
  const outside = (k: number, d: number, v: number, n: number): never => {
    throw new Error(`%${node.id} ${node.op}: read of input ${k} at axis ${d} index ${v} outside [0, ${n})`);
  };
  new Function('inputs', 'out', 'outside', translate(node, inputShapes))(inputs, out, outside);
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
