// Compiled programs are cached on disk, keyed by the compiler's code, the traced graph (its full printed IR, so any
// change to the model or its configuration misses) and the pass list: a later `train`, `eval` or `predict` reuses them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Graph, type GraphOutput, type Node } from '../ir/graph';
import { printGraph } from '../ir/print';
import { verify } from '../ir/verify';
import { runPasses, type CompiledProgram, type passesFor } from '../passes/pipeline';
import { atomicWrite } from '../platform/atomic';
import { cacheDir, compilerVersion } from '../platform/cache';


function cacheKey(traced: Graph, passes: ReturnType<typeof passesFor>): string {
  return createHash('sha256').update(compilerVersion()).update(printGraph(traced, { exprs: true })).update(passes.map((p) => p.name).join('|')).digest('hex').slice(0, 24);
}

// JSON has no infinities (max pooling pads with -Infinity): encode non-finite numbers as tagged strings.
const replacer = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? { nonFinite: String(v) } : v);
const reviver = (_k: string, v: unknown): unknown =>
  (v && typeof v === 'object' && 'nonFinite' in v ? Number((v as { nonFinite: string }).nonFinite) : v);

interface Stored { readonly nodes: Node[]; readonly outputs: GraphOutput[]; readonly passes: CompiledProgram['passes']; readonly plan: CompiledProgram['plan'] }

/** Run the passes, or load their result from the cache when this exact traced graph was compiled before. */
export async function compileCached(traced: Graph, passes: ReturnType<typeof passesFor>): Promise<CompiledProgram & { cached: boolean }> {
  const file = path.join(cacheDir(), `${cacheKey(traced, passes)}.json`);
  if (fs.existsSync(file)) {
    try {
      const stored = JSON.parse(fs.readFileSync(file, 'utf8'), reviver) as Stored;
      const graph = new Graph();
      stored.nodes.forEach((n) => graph.add(n));
      stored.outputs.forEach((o) => graph.setOutput(o.name, o.node, o.kind));
      verify(graph);
      return { traced, graph, passes: stored.passes, plan: stored.plan, cached: true };
    } catch {
      // A damaged cache entry is recompiled and overwritten.
    }
  }
  const program = runPasses(traced, passes);
  fs.mkdirSync(cacheDir(), { recursive: true });
  const stored: Stored = { nodes: program.graph.nodes, outputs: program.graph.outputs, passes: program.passes, plan: program.plan };
  await atomicWrite(file, Buffer.from(JSON.stringify(stored, replacer)));
  return { ...program, cached: false };
}
