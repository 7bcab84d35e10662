// The IR: a static-shape dataflow graph whose nodes are tensor expressions. Sources (inputs, parameters, state)
// have no expression; every other node is `op(inputs)` with the expression its op definition produced.
// Node ids are positions in `nodes`, and inputs always precede their users, so array order is a topological order.
import type { Expr } from './expr';
import { formatLoc, type SourceLoc } from './location';

export type SourceRole = 'input' | 'param' | 'state';
export type Attrs = Readonly<Record<string, unknown>>;

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly attrs: Attrs;
  readonly inputs: readonly number[];
  readonly shape: readonly number[];
  readonly dtype: 'float32';
  /** The node's tensor expression; absent for sources. */
  readonly expr?: Expr;
  /** Sources: the input, parameter or state name. */
  readonly name?: string;
  readonly loc?: SourceLoc;
  /** Ops a pass merged into this node, in the order they were merged. */
  readonly fused?: readonly string[];
  /** Which part of a training step computes the node (absent: forward). */
  readonly phase?: Phase;
}

export type Phase = 'forward' | 'backward' | 'optimizer';

export type OutputKind = 'output' | 'state' | 'grad' | 'update';
export interface GraphOutput { readonly name: string; readonly node: number; readonly kind: OutputKind }

/** How an output is addressed in feeds and results: plain outputs by name, others as `kind:name`. */
export const outputKey = (o: GraphOutput): string => (o.kind === 'output' ? o.name : `${o.kind}:${o.name}`);

export const isSource = (n: Node): boolean => n.expr === undefined;
export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export class Graph {
  readonly nodes: Node[] = [];
  readonly outputs: GraphOutput[] = [];

  add(n: Omit<Node, 'id' | 'dtype'>): Node {
    const node: Node = { ...n, id: this.nodes.length, dtype: 'float32' };
    this.nodes.push(node);
    return node;
  }

  node(id: number): Node {
    const n = this.nodes[id];
    if (!n) throw new Error(`no node %${id}`);
    return n;
  }

  output(name: string, kind: OutputKind = 'output'): Node {
    const o = this.outputs.find((x) => x.name === name && x.kind === kind);
    if (!o) throw new Error(`graph has no ${kind} named ${name}`);
    return this.node(o.node);
  }

  setOutput(name: string, node: number, kind: OutputKind = 'output'): void {
    const i = this.outputs.findIndex((x) => x.name === name && x.kind === kind);
    if (i >= 0) this.outputs[i] = { name, node, kind };
    else this.outputs.push({ name, node, kind });
  }

  sources(role?: SourceRole): Node[] {
    return this.nodes.filter((n) => isSource(n) && (role === undefined || n.op === role));
  }

  /** For each node, the ids of the nodes that read it. */
  users(): number[][] {
    const users: number[][] = this.nodes.map(() => []);
    for (const n of this.nodes) for (const i of n.inputs) users[i]!.push(n.id);
    return users;
  }
}

/** The nodes `order` lists, in that order (which must be topological), renumbered; outputs follow their nodes. */
export function reorder(g: Graph, order: readonly number[]): Graph {
  const out = new Graph();
  const remap = new Map<number, number>();
  for (const id of order) {
    const { id: _id, dtype: _dtype, ...rest } = g.node(id);
    remap.set(id, out.add({ ...rest, inputs: rest.inputs.map((i) => remap.get(i)!) }).id);
  }
  for (const o of g.outputs) out.setOutput(o.name, remap.get(o.node)!, o.kind);
  return out;
}

/** A symbolic tensor during tracing: a reference to a node of the graph being built. */
export class Tensor {
  constructor(readonly graph: Graph, readonly id: number) {}
  get node(): Node { return this.graph.node(this.id); }
  get shape(): readonly number[] { return this.node.shape; }
  get rank(): number { return this.shape.length; }
  toString(): string { return `Tensor(%${this.id} ${this.node.op} [${this.shape.join(', ')}] at ${formatLoc(this.node.loc)})`; }
}
