// The compile artifact: the IR before and after the passes, one gpu.js kernel source per kernel, the execution
// plan (kernel order, arena offsets, sources, outputs) and manifest.json describing the program.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isSource, type Graph, type Phase } from '../ir/graph';
import { printGraph } from '../ir/print';
import { lowerGraph } from '../codegen/lower';
import { printGpujsKernel } from '../codegen/gpujs';
import type { CompiledProgram, PassRecord } from '../passes/pipeline';
import { atomicWrite } from '../platform/atomic';

export type Emit = 'all' | 'ir' | 'kernels';
export const EMITS: readonly Emit[] = ['all', 'ir', 'kernels'];

export interface Manifest {
  readonly model: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly mode: string;
  readonly batch: number;
  /** Trainable parameter count. */
  readonly params: number;
  /** Forward multiply-adds of the convolutions and dense layers, per example. */
  readonly macsPerExample: number;
  /** Nodes of each op in the traced graph. */
  readonly ops: Readonly<Record<string, number>>;
  /** Kernels of the compiled program, in all and per phase of a step. */
  readonly kernels: { readonly total: number } & Readonly<Record<Phase, number>>;
  readonly passes: readonly PassRecord[];
  /** The memory plan's arena in bytes, the most bytes alive at once, and what one range per intermediate would need. */
  readonly peakBytes: number;
  readonly liveBytes: number;
  readonly naiveBytes: number;
  readonly inputs: Readonly<Record<string, readonly number[]>>;
  readonly outputs: Readonly<Record<string, readonly number[]>>;
}

/** Multiply-adds of the convolutions and matmuls (the conventional MAC count), per example of the batch. */
export function forwardMacs(g: Graph, batch: number): number {
  const macOps = new Set(['conv2d', 'matmul']);
  return lowerGraph(g).filter((k) => (g.node(k.node).phase ?? 'forward') === 'forward' && k.ops.some((o) => macOps.has(o)))
    .reduce((p, k) => p + k.macs, 0) / batch;
}

export function opCounts(g: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of g.nodes) counts[n.op] = (counts[n.op] ?? 0) + 1;
  return counts;
}

export function kernelCounts(g: Graph): Manifest['kernels'] {
  const counts = { total: 0, forward: 0, backward: 0, optimizer: 0 };
  for (const n of g.nodes) {
    if (isSource(n)) continue;
    counts.total++;
    counts[n.phase ?? 'forward']++;
  }
  return counts;
}

/** The execution plan: what the runtime runs, in order, and where each result lives. */
export function executionPlan(p: CompiledProgram) {
  const g = p.graph;
  return {
    sources: g.sources().map((n) => ({ node: n.id, role: n.op, name: n.name, shape: n.shape })),
    kernels: lowerGraph(g).map((k) => ({ kernel: k.name, node: k.node, inputs: k.inputs.map((i) => i.node), arenaOffset: p.plan.offsetOf[k.node], shape: k.output.shape })),
    arenaBytes: p.plan.peakBytes,
    outputs: g.outputs,
  };
}

export async function writeArtifact(dir: string, p: CompiledProgram, manifest: Manifest, emit: Emit): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = async (rel: string, data: string): Promise<void> => {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await atomicWrite(file, Buffer.from(data));
    written.push(file);
  };
  if (emit !== 'kernels') {
    await put('ir.traced.txt', `${printGraph(p.traced, { exprs: true })}\n`);
    await put('ir.optimized.txt', `${printGraph(p.graph, { exprs: true })}\n`);
  }
  if (emit !== 'ir') {
    for (const k of lowerGraph(p.graph).map((kernel) => printGpujsKernel(kernel))) await put(path.join('kernels', `${k.name}.js`), `${k.source}\n`);
  }
  if (emit === 'all') {
    await put('plan.json', `${JSON.stringify(executionPlan(p))}\n`);
    await put('manifest.json', `${JSON.stringify(manifest, null, 2)}\n`);
  }
  return written;
}
