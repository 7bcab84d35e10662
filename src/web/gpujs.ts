// The gpu.js backends in the page, gl and webgpu: the gpu.js kernels tsc-nn printed at compile time (plan.json),
// run by gpu.js's browser bundle in one of its two GPU modes, as src/backends/gpujs/executor.ts (WebGL2 on
// headless-gl) and src/backends/webgpu/executor.ts (WebGPU on Dawn) run them in Node: every result stays on the
// device (a texture or a storage buffer), is deleted after its last reader, and only the logits are read back.
// WebGPU kernel calls and reads answer with Promises; WebGL2's answer at once, and awaiting them changes nothing.
import { browser } from './browser.js';
import type { WebPlan } from './plan.js';

export type GpujsMode = 'webgl2' | 'webgpu';

type Rows = Float32Array | Float32Array[];
interface DeviceResult { toArray(): Rows | Promise<Rows>; delete(): void }
type KernelClass = new (...args: unknown[]) => unknown;
type GpujsKernel = ((...args: unknown[]) => unknown) & { kernel?: { constructor: { name: string } } };
interface Gpu { createKernel(source: string, settings: Record<string, unknown>): GpujsKernel; destroy?(): void }
interface GpuClass {
  new (settings: { mode: string }): Gpu;
  isWebGL2Supported?: boolean;
  WebGL2Kernel?: KernelClass;
  WebGPUKernel?: KernelClass;
}

const isDeviceResult = (v: unknown): v is DeviceResult => typeof (v as DeviceResult | undefined)?.delete === 'function';

/** Each mode: its name in messages, the gpu.js class its kernels must run on, and what the browser must offer. */
const MODES: Record<GpujsMode, { name: string; kernel: 'WebGL2Kernel' | 'WebGPUKernel'; device(GPU: GpuClass): Promise<string> }> = {
  webgl2: {
    name: 'WebGL2',
    kernel: 'WebGL2Kernel',
    device: async (GPU) => {
      if (GPU.isWebGL2Supported === false) throw new Error('this browser has no WebGL2');
      return 'gpu.js WebGL2Kernel';
    },
  },
  webgpu: {
    name: 'WebGPU',
    kernel: 'WebGPUKernel',
    // gpu.js would find the same; asking first gives the reason in words and names the adapter.
    device: async () => {
      const gpu = browser.navigator?.gpu;
      if (!gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing; it needs a secure context, https or localhost, and a browser with WebGPU enabled)');
      const adapter = await gpu.requestAdapter();
      if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned no adapter (WebGPU is disabled or this GPU is not supported)');
      const info = adapter.info ?? {};
      const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'an unnamed adapter';
      return `gpu.js WebGPUKernel on ${name}${info.isFallbackAdapter ? ' (a fallback adapter)' : ''}`;
    },
  },
};

/** gpu.js's browser bundle (gpu-browser.min.js in the folder), loaded once as a classic script. */
async function loadGpujs(base: URL): Promise<GpuClass> {
  const g = browser as unknown as { GPU?: GpuClass & { prototype?: { createKernel?: unknown } }; document?: { createElement(t: string): { src: string; onload: () => void; onerror: () => void }; head: { appendChild(e: unknown): void } } };
  // A browser with WebGPU has a global GPU of its own (navigator.gpu's interface): the bundle replaces it.
  if (!g.GPU?.prototype?.createKernel) {
    if (!g.document) throw new Error('gpu.js runs on the page\'s main thread (it needs a document)');
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

export class GpujsExecutor {
  private readonly kernels: GpujsKernel[];
  private readonly lastUse = new Map<number, number>();

  private constructor(private readonly plan: WebPlan, mode: GpujsMode, private readonly gpu: Gpu, private readonly sources: ReadonlyMap<number, Float32Array>, readonly device: string) {
    this.kernels = plan.gpujs.kernels.map((k) => gpu.createKernel(k[mode].source, {
      output: [...k[mode].output], tactic: 'precision', loopMaxIterations: k[mode].loopMaxIterations, pipeline: true, immutable: true,
    }));
    for (const k of plan.gpujs.kernels) for (const i of k.inputs) this.lastUse.set(i, k.node);
    this.lastUse.set(plan.gpujs.logitsNode, Infinity);
  }

  /** Start gpu.js in `mode` and check that a probe kernel really runs there (never a silent fallback). */
  static async create(plan: WebPlan, base: URL, weights: ArrayBuffer, mode: GpujsMode): Promise<GpujsExecutor> {
    const { name, kernel, device } = MODES[mode];
    const GPU = await loadGpujs(base);
    const described = await device(GPU);
    const Kernel = GPU[kernel];
    if (!Kernel) throw new Error(`gpu-browser.min.js has no ${kernel}`);
    const gpu = new GPU({ mode });
    const probe = gpu.createKernel('function (a) { return a[this.thread.x] * 2; }', { output: [2], tactic: 'precision' });
    const r = (await probe(new Float32Array([1, 2]))) as Float32Array;
    if (!(probe.kernel instanceof Kernel)) throw new Error(`gpu.js could not start on ${name} (it fell back to ${probe.kernel?.constructor.name ?? 'unknown'})`);
    if (r[0] !== 2 || r[1] !== 4) throw new Error(`the ${name} probe kernel computed wrong values`);
    const blob = new Float32Array(weights);
    const sources = new Map<number, Float32Array>(plan.weights.tensors.map((t) => [t.node, blob.subarray(t.blobOffset / 4, t.blobOffset / 4 + t.length)]));
    return new GpujsExecutor(plan, mode, gpu, sources, described);
  }

  async run(image: Float32Array): Promise<Float32Array> {
    const { imageNode, logitsNode, kernels } = this.plan.gpujs;
    const values = new Map<number, unknown>(this.sources);
    values.set(imageNode, image);
    try {
      for (const [i, k] of kernels.entries()) {
        values.set(k.node, await this.kernels[i]!(...k.inputs.map((n) => values.get(n))));
        for (const n of k.inputs) {
          if (this.lastUse.get(n) !== k.node || this.sources.has(n) || n === imageNode) continue;
          const v = values.get(n);
          if (isDeviceResult(v)) v.delete();
          values.delete(n);
        }
      }
      const out = values.get(logitsNode);
      const arr = isDeviceResult(out) ? await out.toArray() : out as Rows;
      const rows = arr instanceof Float32Array ? [arr] : arr;
      const flat = new Float32Array(this.plan.logits.length);
      let off = 0;
      for (const row of rows) { flat.set(row.subarray(0, Math.min(row.length, flat.length - off)), off); off += row.length; }
      return flat;
    } finally {
      for (const [n, v] of values) if (isDeviceResult(v) && !this.sources.has(n)) v.delete();
    }
  }

  close(): void {
    this.gpu.destroy?.();
  }
}
