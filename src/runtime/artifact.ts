// The compile artifact: text IR, one gpu.js kernel source per kernel, and manifest.json describing the program.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Graph } from '../ir/graph';
import { printGraph } from '../ir/print';
import { lowerGraph } from '../codegen/lower';
import { printGpujsKernel } from '../codegen/gpujs';
import { atomicWrite } from './atomic';

export type Emit = 'all' | 'ir' | 'kernels';
export const EMITS: readonly Emit[] = ['all', 'ir', 'kernels'];

export interface Manifest {
  readonly model: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly mode: string;
  readonly batch: number;
  /** Trainable parameter count. */
  readonly params: number;
  /** Forward multiply-adds for one example (reductions' body evaluations, convolutions and dense layers). */
  readonly macsPerExample: number;
  /** How many nodes of each op the traced graph has. */
  readonly ops: Readonly<Record<string, number>>;
  readonly kernels: number;
  readonly inputs: Readonly<Record<string, readonly number[]>>;
  readonly outputs: Readonly<Record<string, readonly number[]>>;
}

/** Multiply-adds of the convolutions and matmuls (the conventional MAC count), per example of the batch. */
export function forwardMacs(g: Graph, batch: number): number {
  const macOps = new Set(['conv2d', 'matmul']);
  return lowerGraph(g).filter((k) => k.ops.some((o) => macOps.has(o))).reduce((p, k) => p + k.macs, 0) / batch;
}

export function opCounts(g: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of g.nodes) counts[n.op] = (counts[n.op] ?? 0) + 1;
  return counts;
}

export async function writeArtifact(dir: string, g: Graph, manifest: Manifest, emit: Emit): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = async (rel: string, data: string): Promise<void> => {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await atomicWrite(file, Buffer.from(data));
    written.push(file);
  };
  if (emit !== 'kernels') await put('model.ir.txt', `${printGraph(g, { exprs: true })}\n`);
  if (emit !== 'ir') {
    for (const k of lowerGraph(g).map(printGpujsKernel)) await put(path.join('kernels', `${k.name}.js`), `${k.source}\n`);
  }
  if (emit === 'all') await put('manifest.json', `${JSON.stringify(manifest, null, 2)}\n`);
  return written;
}
