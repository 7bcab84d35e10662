// Tracing: call a pure model function with symbolic tensors and record the graph it builds.
import { Graph, Tensor, type SourceRole } from './graph';
import { callerLocation } from './location';

export type Shapes = Readonly<Record<string, readonly number[]>>;
export interface SourceSpec { readonly shape: readonly number[]; readonly role: SourceRole }

/** Add a named source (model input, trainable parameter or state) to a graph. */
export function source(graph: Graph, name: string, shape: readonly number[], role: SourceRole): Tensor {
  return new Tensor(graph, graph.add({ op: role, attrs: {}, inputs: [], shape: [...shape], name, loc: callerLocation() }).id);
}

/**
 * Trace `fn(params, inputs)`: parameters (and state) and inputs become sources, and what `fn` returns becomes the
 * graph's outputs (one tensor is named `out`).
 */
export function trace(
  spec: { readonly params: Readonly<Record<string, SourceSpec>>; readonly inputs: Shapes },
  fn: (params: Record<string, Tensor>, inputs: Record<string, Tensor>) => Tensor | Record<string, Tensor>,
): Graph {
  const graph = new Graph();
  const params: Record<string, Tensor> = {};
  for (const [name, s] of Object.entries(spec.params)) params[name] = source(graph, name, s.shape, s.role);
  const inputs: Record<string, Tensor> = {};
  for (const [name, shape] of Object.entries(spec.inputs)) inputs[name] = source(graph, name, shape, 'input');
  const result = fn(params, inputs);
  const outs = result instanceof Tensor ? { out: result } : result;
  for (const [name, t] of Object.entries(outs)) graph.setOutput(name, t.id);
  return graph;
}
