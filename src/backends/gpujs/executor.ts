// Runs a compiled graph on gpu.js's backends (cpu, webasm, gl). Kernels are printed once, compiled through gpu.js
// and cached by source; each run feeds the sources, calls the kernels in order, and drops every intermediate after
// its last reader (gpu.js allocates its own results: textures on gl, arrays on cpu and webasm). tsc-nn's own CPU
// targets have arena executors (../wasm, ../js).
import type { IGPUKernelSettings, IKernelRunShortcut } from 'gpu.js';
import { isSource, sizeOf, type Graph } from '../../ir/graph';
import { lowerGraph, type LoweredKernel, type TensorLayout } from '../../codegen/lower';
import { packable, printGpujsKernel, type GpujsPacking } from '../../codegen/gpujs';
import type { Backend, Executor, ExecutorOptions, OutputTargets } from '../types';
import { checkedFeeds, collectOutputs } from '../feeds';
import { gpujs } from './load';

const gpujsCache = new WeakMap<object, Map<string, IKernelRunShortcut>>();

/** A tensor as gpu.js wants it: flat, or a 2-D view when its flat index would pass 2^24. */
function toGpujsArg(data: Float32Array, layout: TensorLayout): unknown {
  if (layout.split === 0) return data;
  const cols = sizeOf(layout.shape.slice(layout.split));
  return new (gpujs().Input)(data as unknown as number[], [cols, data.length / cols]);
}

/** gpu.js returns a 2-D output as rows: copy them into one flat array (a poisoned `out` shows rows that are short). */
function flatten(result: Float32Array | Float32Array[], size: number, out?: Float32Array): Float32Array {
  const rows = result instanceof Float32Array ? [result] : result;
  if (!out && rows.length === 1 && rows[0]!.length === size) return rows[0]!;
  const dst = out ?? new Float32Array(size);
  let off = 0;
  for (const r of rows) { dst.set(r.subarray(0, Math.min(r.length, size - off)), off); off += r.length; }
  return dst;
}

/** A texture gpu.js keeps on the device (pipeline mode): read back with toArray, freed with delete. */
interface DeviceTexture { toArray(): Float32Array | Float32Array[]; delete(): void }
const isTexture = (v: unknown): v is DeviceTexture => typeof (v as DeviceTexture).delete === 'function';

function compileGpujs(backend: Backend, k: LoweredKernel, onDevice: boolean, packing?: GpujsPacking): IKernelRunShortcut {
  const src = printGpujsKernel(k, packing);
  let byBackend = gpujsCache.get(backend);
  if (!byBackend) { byBackend = new Map(); gpujsCache.set(backend, byBackend); }
  // gpu.js sizes each argument's texture on the first call: kernels with the same text but other input sizes differ.
  const key = `${src.output.join('x')}|${k.inputs.map((i) => i.layout.shape.join('x')).join(',')}|${src.source}`;
  let kernel = byBackend.get(key);
  if (!kernel) {
    // Loops have constant bounds; the cap is still raised above them so gpu.js can never cut one short.
    // On the device every call returns a new texture (`immutable`): a kernel shared by two nodes must not
    // overwrite the result the first one returned.
    const settings = { output: [...src.output], tactic: 'precision', loopMaxIterations: src.loopMaxIterations, pipeline: onDevice, immutable: onDevice };
    kernel = backend.gpu!.createKernel(src.source, settings as IGPUKernelSettings);
    byBackend.set(key, kernel);
  }
  return kernel;
}

/**
 * gpu.js's own backends. On `gl` every result stays on the device as a texture between kernels and is deleted
 * after its last reader; only the graph outputs are read back. A gl kernel whose innermost output axis is a
 * multiple of 4 computes 4 consecutive outputs per thread (one RGBA texel; its readers unpack them). On `cpu` and
 * `webasm` results are arrays, one output per call (unpacking there would only add work).
 */
export class GpujsExecutor implements Executor {
  readonly kernels: readonly LoweredKernel[];
  private readonly compiled: readonly IKernelRunShortcut[];
  private readonly lastUse: number[];
  private readonly onDevice: boolean;

  constructor(readonly graph: Graph, readonly backend: Backend, private readonly opts: ExecutorOptions = {}) {
    this.kernels = lowerGraph(graph);
    this.onDevice = backend.name === 'gl';
    const packed = new Set(this.onDevice ? this.kernels.filter(packable).map((k) => k.node) : []);
    this.compiled = this.kernels.map((k) => compileGpujs(backend, k, this.onDevice, { output: packed.has(k.node), inputs: k.inputs.map((i) => packed.has(i.node)) }));
    this.lastUse = graph.nodes.map(() => -1);
    graph.nodes.forEach((n) => n.inputs.forEach((i) => { this.lastUse[i] = n.id; }));
    for (const o of graph.outputs) this.lastUse[o.node] = Infinity;
  }

  close(): void {
    // Every texture a run creates is deleted before it returns; gpu.js's arrays are garbage-collected.
  }

  run(feeds: Readonly<Record<string, Float32Array>>, into?: OutputTargets): Record<string, Float32Array> {
    const values = new Map<number, Float32Array | DeviceTexture>(checkedFeeds(this.graph, feeds).map((f) => [f.node, f.value]));
    const arg = (v: Float32Array | DeviceTexture, layout: TensorLayout): unknown => (isTexture(v) ? v : toGpujsArg(v, layout));
    try {
      this.kernels.forEach((k, i) => {
        const result = this.compiled[i]!(...k.inputs.map((inp) => arg(values.get(inp.node)!, inp.layout))) as unknown;
        if (isTexture(result)) values.set(k.node, result);
        else {
          const size = sizeOf(k.output.shape);
          values.set(k.node, flatten(result as Float32Array | Float32Array[], size, this.opts.poison ? new Float32Array(size).fill(NaN) : undefined));
        }
        for (const inp of k.inputs) {
          if (this.lastUse[inp.node] !== k.node || isSource(this.graph.node(inp.node))) continue;
          const v = values.get(inp.node);
          if (v && isTexture(v)) v.delete();
          values.delete(inp.node);
        }
      });
      return collectOutputs(this.graph, (node) => {
        const v = values.get(node)!;
        // Fed arrays are the caller's: copied unless written into a target.
        return isTexture(v) ? { view: flatten(v.toArray(), sizeOf(this.graph.node(node).shape)), owned: true } : { view: v, owned: !isSource(this.graph.node(node)) };
      }, into);
    } finally {
      for (const v of values.values()) if (isTexture(v)) v.delete();
    }
  }
}
