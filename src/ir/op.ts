// Defining ops. An op is one function from input placeholders (and attributes) to a tensor expression, plus an
// optional vector-Jacobian rule written with other ops. Built-in ops and user ops use the same `defineOp`.
import { OpError } from './errors';
import { Graph, Tensor, type Attrs } from './graph';
import { callerLocation, formatLoc } from './location';
import { Placeholder, type TensorExpr } from './te';

/** Thrown by `check` inside an op definition; `applyOp` adds the op name and the model's source location. */
class CheckFailed extends Error {}

/** Assert a shape or attribute precondition inside an op definition. */
export function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new CheckFailed(message);
}

/** Gradient rule: given the output cotangent, return one cotangent per input (null: no gradient flows). */
export type VjpRule<A> = (g: Tensor, inputs: readonly Tensor[], out: Tensor, attrs: A) => readonly (Tensor | null)[];

export interface OpDef<A extends object = Attrs> {
  readonly name: string;
  /** The one definition: output shape and expression from the inputs' placeholders. */
  compute(inputs: readonly Placeholder[], attrs: A): TensorExpr;
  readonly vjp?: VjpRule<A>;
}

const registry = new Map<string, OpDef<any>>();

export function lookupOp(name: string): OpDef | undefined {
  return registry.get(name);
}

export type AppliedOp<A extends object> = (inputs: readonly Tensor[], attrs: A) => Tensor;

export function defineOp<A extends object>(def: OpDef<A>): AppliedOp<A> {
  const existing = registry.get(def.name);
  if (existing && existing !== def) throw new OpError(`op ${def.name} is defined twice: give the custom op another name`);
  registry.set(def.name, def);
  return (inputs, attrs) => applyOp(def, inputs, attrs);
}

export function applyOp<A extends object>(def: OpDef<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  if (inputs.length === 0) throw new Error(`op ${def.name} needs at least one input tensor`);
  const graph: Graph = inputs[0]!.graph;
  const loc = callerLocation();
  const fail = (msg: string): never => { throw new OpError(`${def.name} at ${formatLoc(loc)}: ${msg}`); };
  if (inputs.some((t) => t.graph !== graph)) fail('inputs come from different traces');
  let te: TensorExpr;
  try {
    te = def.compute(inputs.map((t, i) => new Placeholder(i, t.shape)), attrs);
  } catch (e) {
    if (e instanceof CheckFailed) return fail(e.message);
    throw e;
  }
  if (te.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    fail(`output shape [${te.shape.join(', ')}] is not made of positive integers (inputs ${inputs.map((t) => `[${t.shape.join(', ')}]`).join(', ')})`);
  }
  const node = graph.add({ op: def.name, attrs: attrs as Attrs, inputs: inputs.map((t) => t.id), shape: te.shape, expr: te.body, loc });
  return new Tensor(graph, node.id);
}
