// Readable text form of the IR, one node a line, with its source location; optionally each node's expression.
import { exprToString } from './expr';
import { isSource, outputKey, type Graph, type Node } from './graph';
import { formatLoc } from './location';

const fmtAttr = (v: unknown): string => (Array.isArray(v) ? `[${v.join(', ')}]` : String(v));

export function nodeSignature(n: Node): string {
  const type = `f32[${n.shape.join(', ')}]`;
  if (isSource(n)) return `%${n.id} = ${n.op} ${n.name} : ${type}`;
  const attrs = Object.entries(n.attrs).map(([k, v]) => `${k}: ${fmtAttr(v)}`).join(', ');
  const op = n.fused && n.fused.length > 1 ? `fused(${n.fused.join(' > ')})` : n.op;
  return `%${n.id} = ${op}(${n.inputs.map((i) => `%${i}`).join(', ')})${attrs ? ` {${attrs}}` : ''} : ${type}`;
}

export function printGraph(g: Graph, opts: { exprs?: boolean } = {}): string {
  const lines = ['graph {'];
  for (const n of g.nodes) {
    const loc = n.loc ? `  # ${formatLoc(n.loc)}` : '';
    lines.push(`  ${nodeSignature(n)}${loc}`);
    if (opts.exprs && n.expr) lines.push(`      = ${exprToString(n.expr, n.inputs.map((i) => `%${i}`))}`);
  }
  for (const o of g.outputs) lines.push(`  ${o.kind} ${outputKey(o)} = %${o.node}`);
  lines.push('}');
  return lines.join('\n');
}
