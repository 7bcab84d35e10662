// Memory planning: every kernel output gets a buffer, and a buffer whose last reader has run is reused by a
// later kernel that fits in it (greedy best fit over the execution order, as XLA's and TVM's planners do).
// Sources (parameters, state, inputs) live outside the plan; outputs stay live to the end of the step.
import { isSource, sizeOf, type Graph } from '../ir/graph';

export interface MemoryPlan {
  /** Buffer id of each compute node (by node id; sources have none). */
  readonly bufferOf: Readonly<Record<number, number>>;
  /** Size in bytes of each buffer. */
  readonly bufferBytes: readonly number[];
  /** Bytes of all planned buffers: the most intermediate memory a step holds. */
  readonly peakBytes: number;
  /** Bytes if every intermediate had its own buffer. */
  readonly naiveBytes: number;
  /** Bytes of parameters, state and inputs. */
  readonly sourceBytes: number;
}

const BYTES = 4;

export function planMemory(g: Graph): MemoryPlan {
  const lastUse = g.nodes.map((n) => n.id);
  for (const n of g.nodes) for (const i of n.inputs) lastUse[i] = Math.max(lastUse[i]!, n.id);
  for (const o of g.outputs) lastUse[o.node] = Infinity;
  const bufferOf: Record<number, number> = {};
  const bufferBytes: number[] = [];
  const free: number[] = [];
  const dying = new Map<number, number[]>();
  let naiveBytes = 0;
  let sourceBytes = 0;
  for (const n of g.nodes) {
    const bytes = sizeOf(n.shape) * BYTES;
    if (isSource(n)) { sourceBytes += bytes; continue; }
    naiveBytes += bytes;
    // Best fit among free buffers; otherwise a new one.
    let best = -1;
    for (let k = 0; k < free.length; k++) {
      const b = free[k]!;
      if (bufferBytes[b]! >= bytes && (best < 0 || bufferBytes[b]! < bufferBytes[free[best]!]!)) best = k;
    }
    const buffer = best >= 0 ? free.splice(best, 1)[0]! : bufferBytes.push(bytes) - 1;
    bufferOf[n.id] = buffer;
    const end = lastUse[n.id]!;
    if (Number.isFinite(end)) dying.set(end, [...(dying.get(end) ?? []), buffer]);
    // Inputs whose last reader is this node are free once it has run.
    for (const b of dying.get(n.id) ?? []) if (b !== buffer) free.push(b);
  }
  return { bufferOf, bufferBytes, peakBytes: bufferBytes.reduce((a, b) => a + b, 0), naiveBytes, sourceBytes };
}
