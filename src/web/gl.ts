// The gl backend in the page: the gpu.js kernels tsc-nn printed at compile time (plan.json), run by gpu.js's
// browser bundle on the page's WebGL2 context, as src/backends/gpujs/executor.ts runs them on headless-gl: every
// result stays on the device as a texture, is deleted after its last reader, and only the logits are read back.
import { browser } from './browser.js';
import type { WebPlan } from './plan.js';

interface Texture { toArray(): Float32Array | Float32Array[]; delete(): void }
type GpujsKernel = ((...args: unknown[]) => unknown) & { kernel?: { constructor: { name: string } } };
interface Gpu { createKernel(source: string, settings: Record<string, unknown>): GpujsKernel; destroy?(): void }
interface GpuClass {
  new (settings: { mode: string }): Gpu;
  isWebGL2Supported?: boolean;
  WebGL2Kernel?: new (...args: unknown[]) => unknown;
}

const isTexture = (v: unknown): v is Texture => typeof (v as Texture | undefined)?.delete === 'function';

/** gpu.js's browser bundle (gpu-browser.min.js in the folder), loaded once as a classic script. */
async function loadGpujs(base: URL): Promise<GpuClass> {
  const g = browser as unknown as { GPU?: GpuClass & { prototype?: { createKernel?: unknown } }; document?: { createElement(t: string): { src: string; onload: () => void; onerror: () => void }; head: { appendChild(e: unknown): void } } };
  // A browser with WebGPU has a global GPU of its own (navigator.gpu's interface): the bundle replaces it.
  if (!g.GPU?.prototype?.createKernel) {
    if (!g.document) throw new Error('the gl backend runs on the page\'s main thread (it needs a document)');
    await new Promise<void>((resolve, reject) => {
      const s = g.document!.createElement('script');
      s.src = new URL('gpu-browser.min.js', base).href;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error(`cannot load ${s.src}`));
      g.document!.head.appendChild(s);
    });
  }
  const GPU = g.GPU;
  if (!GPU?.prototype?.createKernel) throw new Error('gpu-browser.min.js did not define gpu.js\'s GPU');
  return GPU;
}

export class GlExecutor {
  private readonly kernels: GpujsKernel[];
  private readonly lastUse = new Map<number, number>();
  readonly device: string;

  private constructor(private readonly plan: WebPlan, private readonly gpu: Gpu, readonly sources: ReadonlyMap<number, Float32Array>, device: string) {
    this.device = device;
    this.kernels = plan.gpujs.kernels.map((k) => gpu.createKernel(k.source, {
      output: [...k.output], tactic: 'precision', loopMaxIterations: k.loopMaxIterations, pipeline: true, immutable: true,
    }));
    for (const k of plan.gpujs.kernels) for (const i of k.inputs) this.lastUse.set(i, k.node);
    this.lastUse.set(plan.gpujs.logitsNode, Infinity);
  }

  /** Start gpu.js on WebGL2 and check that a probe kernel really runs there (never a silent fallback). */
  static async create(plan: WebPlan, base: URL, weights: ArrayBuffer): Promise<GlExecutor> {
    const GPU = await loadGpujs(base);
    const gpu = new GPU({ mode: 'webgl2' });
    const probe = gpu.createKernel('function (a) { return a[this.thread.x] * 2; }', { output: [2], tactic: 'precision' });
    const r = probe(new Float32Array([1, 2])) as Float32Array;
    const ran = probe.kernel?.constructor.name ?? 'unknown';
    const onWebgl2 = GPU.WebGL2Kernel ? probe.kernel instanceof GPU.WebGL2Kernel : ran === 'WebGL2Kernel';
    if (!onWebgl2) throw new Error(`gpu.js could not start on WebGL2 (it fell back to ${ran}${GPU.isWebGL2Supported === false ? '; this browser has no WebGL2' : ''})`);
    if (r[0] !== 2 || r[1] !== 4) throw new Error('the gl probe kernel computed wrong values');
    const blob = new Float32Array(weights);
    const sources = new Map<number, Float32Array>(plan.weights.tensors.map((t) => [t.node, blob.subarray(t.blobOffset / 4, t.blobOffset / 4 + t.length)]));
    return new GlExecutor(plan, gpu, sources, 'gpu.js WebGL2Kernel');
  }

  run(image: Float32Array): Float32Array {
    const values = new Map<number, Float32Array | Texture>(this.sources);
    values.set(this.plan.gpujs.imageNode, image);
    try {
      this.plan.gpujs.kernels.forEach((k, i) => {
        const result = this.kernels[i]!(...k.inputs.map((n) => values.get(n)!));
        values.set(k.node, result as Texture);
        for (const n of k.inputs) {
          if (this.lastUse.get(n) !== k.node || this.sources.has(n) || n === this.plan.gpujs.imageNode) continue;
          const v = values.get(n);
          if (isTexture(v)) v.delete();
          values.delete(n);
        }
      });
      const out = values.get(this.plan.gpujs.logitsNode)!;
      const arr = isTexture(out) ? out.toArray() : out;
      const rows = arr instanceof Float32Array ? [arr] : arr;
      const flat = new Float32Array(this.plan.logits.length);
      let off = 0;
      for (const row of rows) { flat.set(row.subarray(0, Math.min(row.length, flat.length - off)), off); off += row.length; }
      return flat;
    } finally {
      for (const [n, v] of values) if (isTexture(v) && !this.sources.has(n)) v.delete();
    }
  }

  close(): void {
    this.gpu.destroy?.();
  }
}
