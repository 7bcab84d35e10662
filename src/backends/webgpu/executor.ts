// The WebGPU backend: gpu.js's `webgpu` kernels on Dawn (the npm package `webgpu`, installed as `dawn-webgpu`
// because gpu.js pins a version that does not load on current Linux). WebGPU only answers asynchronously, while
// executors run synchronously, so one device thread per process owns Dawn and every executor's kernels: it compiles
// a program's kernels once, and for each run reads the sources from the program's shared arena, runs every kernel
// with its result kept on the device (gpu.js pipeline mode, each intermediate deleted after its last reader),
// copies the outputs back and raises a flag the caller waits on.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { isSource, sizeOf, type Graph } from '../../ir/graph';
import { lowerGraph, type LoweredKernel } from '../../codegen/lower';
import { printGpujsKernel } from '../../codegen/gpujs';
import type { Executor, ExecutorOptions, OutputTargets } from '../types';
import { checkedFeeds, collectOutputs } from '../feeds';

/** Dawn backends to try, in order: Vulkan on a machine with a GPU, OpenGL (Mesa, EGL surfaceless) without one. */
export const DAWN_BACKENDS = ['vulkan', 'opengl'] as const;
const START_TIMEOUT_MS = 60_000;

const DEVICE = `
const { workerData, parentPort } = require('node:worker_threads');
const { gpujsPath, dawnPath, dawnBackends, control, port } = workerData;
const ctrl = new Int32Array(control);
const finish = (seq, ok, message) => {
  if (message !== undefined) port.postMessage(message);
  Atomics.store(ctrl, 1, ok ? 1 : -1);
  Atomics.store(ctrl, 0, seq);
  Atomics.notify(ctrl, 0);
};

async function startDawn() {
  const { create, globals } = require(dawnPath);
  Object.assign(globalThis, globals);
  for (const backend of dawnBackends) {
    const dawn = create(['backend=' + backend]);
    const adapter = await dawn.requestAdapter({ featureLevel: 'compatibility' });
    if (!adapter) continue;
    globalThis.navigator = { gpu: {
      requestAdapter: (o = {}) => dawn.requestAdapter({ ...o, featureLevel: 'compatibility' }),
      getPreferredCanvasFormat: () => 'rgba8unorm', wgslLanguageFeatures: new Set(),
    } };
    const info = adapter.info || {};
    return [backend, info.vendor, info.architecture, info.description].filter((x) => x).join(' ');
  }
  throw new Error('Dawn found no WebGPU adapter (tried backends ' + dawnBackends.join(', ') + ')');
}

let gpujs;
const programs = new Map();

function register({ id, arena, kernels, sources, outputs }) {
  const floats = new Float32Array(arena);
  const compiled = kernels.map((k) => gpujs.gpu.createKernel(k.source, { output: k.output, tactic: 'precision', loopMaxIterations: k.loopMaxIterations, pipeline: true, immutable: true }));
  // gpu.js uploads a typed array from the start of its buffer, ignoring its byte offset: every source gets its
  // own array, refilled from the shared arena before each run.
  const views = sources.map((s) => {
    const own = new Float32Array(s.length);
    return { node: s.node, own, offset: s.offset, value: s.cols ? new gpujs.Input(own, [s.cols, s.length / s.cols]) : own };
  });
  programs.set(id, { floats, kernels, outputs, compiled, views });
}

async function run({ id }) {
  const { floats, kernels, outputs, compiled, views } = programs.get(id);
  for (const v of views) v.own.set(floats.subarray(v.offset, v.offset + v.own.length));
  const values = new Map(views.map((v) => [v.node, v.value]));
  try {
    for (let i = 0; i < kernels.length; i++) {
      const k = kernels[i];
      try {
        values.set(k.node, await compiled[i](...k.inputs.map((n) => values.get(n))));
      } catch (e) {
        throw new Error('kernel ' + k.name + ' [' + k.shape.join(', ') + ']: ' + (e && e.message || e));
      }
      for (const n of k.frees) { const v = values.get(n); if (v && v.delete) v.delete(); values.delete(n); }
    }
    for (const o of outputs) {
      const v = values.get(o.node);
      const data = await v.toArray();
      const rows = data instanceof Float32Array ? [data] : data;
      let at = o.offset;
      for (const r of rows) { const n = Math.min(r.length, o.offset + o.length - at); floats.set(r.subarray(0, n), at); at += n; }
    }
  } finally {
    for (const v of values.values()) if (v && v.delete) v.delete();
  }
}

function release({ id }) {
  const p = programs.get(id);
  if (p) for (const k of p.compiled) if (k.destroy) k.destroy();
  programs.delete(id);
}

const started = startDawn().then((device) => {
  const { GPU, Input } = require(gpujsPath);
  gpujs = { gpu: new GPU({ mode: 'webgpu' }), Input };
  return device;
});
parentPort.on('message', async (m) => {
  try {
    if (m.op === 'start') { finish(m.seq, true, await started); return; }
    await started;
    if (m.op === 'register') register(m);
    else if (m.op === 'run') await run(m);
    else if (m.op === 'release') release(m);
    else if (m.op === 'shaders') { finish(m.seq, true, programs.get(m.id).compiled.map((k) => (k.kernel && k.kernel.compiledSource) || '')); return; }
    finish(m.seq, true);
  } catch (e) {
    finish(m.seq, false, String(e && e.message || e));
  }
});
`;

/** The process's one WebGPU device thread; requests are messages, and the caller blocks until their flag. */
class DeviceThread {
  private static instance?: DeviceThread;
  readonly device: string;
  private readonly control = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private seq = 0;
  private nextId = 1;

  static get(): DeviceThread {
    DeviceThread.instance ??= new DeviceThread();
    return DeviceThread.instance;
  }

  private constructor() {
    // Dawn's OpenGL backend needs EGL without a display; a worker's process.env is its own copy, so set it here.
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const require = createRequire(__filename);
    // The package's entry is an ES module; a worker loading ES modules goes through the module loader hooks of
    // tsx or vitest, which wait on this (blocked) thread. Its native addon loads directly.
    const arch = process.platform === 'darwin' ? 'universal' : process.arch;
    const dawnPath = path.join(path.dirname(require.resolve('dawn-webgpu')), 'dist', `${process.platform}-${arch}`, 'dawn.node');
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(DEVICE, {
      eval: true, transferList: [port2],
      workerData: { gpujsPath: require.resolve('gpu.js'), dawnPath, dawnBackends: [...DAWN_BACKENDS], control: this.control.buffer, port: port2 },
    });
    this.worker.unref();
    try {
      this.device = String(this.request({ op: 'start' }, START_TIMEOUT_MS));
    } catch (e) {
      void this.worker.terminate();
      throw e;
    }
  }

  /** Send a request and block until the device thread answers; returns its message, if any. */
  request(message: Record<string, unknown>, timeoutMs = Infinity): unknown {
    const seq = ++this.seq;
    this.worker.postMessage({ ...message, seq });
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(this.control, 0) !== seq) {
      if (Date.now() > deadline) throw new Error(`no answer from the WebGPU device thread within ${timeoutMs / 1000} s`);
      Atomics.wait(this.control, 0, seq - 1, 100);
    }
    const answer = receiveMessageOnPort(this.port)?.message;
    if (Atomics.load(this.control, 1) < 0) throw new Error(String(answer));
    return answer;
  }

  newId(): number { return this.nextId++; }
}

interface Placed { readonly node: number; readonly offset: number; readonly length: number }

export class WebGpuExecutor implements Executor {
  readonly kernels: readonly LoweredKernel[];
  /** The Dawn backend and adapter the device thread got. */
  readonly device: string;
  private readonly floats: Float32Array;
  private readonly thread: DeviceThread;
  private readonly id: number;
  private readonly sourcesAt: Map<number, Placed>;
  private readonly outputsAt: Map<number, Placed>;

  constructor(readonly graph: Graph, private readonly opts: ExecutorOptions = {}) {
    this.kernels = lowerGraph(graph);
    let offset = 0;
    const place = (node: number): Placed => { const length = sizeOf(graph.node(node).shape); const p = { node, offset, length }; offset += length; return p; };
    this.sourcesAt = new Map(graph.sources().map((n) => [n.id, place(n.id)]));
    this.outputsAt = new Map(graph.outputs.filter((o) => !this.sourcesAt.has(o.node)).map((o) => [o.node, place(o.node)]));
    const arena = new SharedArrayBuffer(Math.max(4, offset * 4));
    this.floats = new Float32Array(arena);
    // Each intermediate is deleted on the device right after its last reader.
    const lastReader = new Map<number, number>();
    this.kernels.forEach((k) => k.inputs.forEach((i) => lastReader.set(i.node, k.node)));
    const kept = new Set(graph.outputs.map((o) => o.node));
    const kernels = this.kernels.map((k) => {
      const src = printGpujsKernel(k);
      return {
        node: k.node, name: k.name, shape: k.output.shape, source: src.source, output: src.output, loopMaxIterations: src.loopMaxIterations,
        inputs: k.inputs.map((i) => i.node),
        frees: [...new Set(k.inputs.map((i) => i.node))].filter((n) => lastReader.get(n) === k.node && !kept.has(n) && !isSource(graph.node(n))),
      };
    });
    const sources = [...this.sourcesAt.values()].map((p) => {
      const layout = this.kernels.flatMap((k) => k.inputs).find((i) => i.node === p.node)?.layout;
      return { ...p, cols: layout && layout.split ? sizeOf(layout.shape.slice(layout.split)) : 0 };
    });
    this.thread = DeviceThread.get();
    this.device = this.thread.device;
    this.id = this.thread.newId();
    this.thread.request({ op: 'register', id: this.id, arena, kernels, sources, outputs: [...this.outputsAt.values()] });
  }

  run(feeds: Readonly<Record<string, Float32Array>>, into?: OutputTargets): Record<string, Float32Array> {
    for (const { node, value } of checkedFeeds(this.graph, feeds)) this.floats.set(value, this.sourcesAt.get(node)!.offset);
    // Poisoned outputs show any element the device thread did not copy back.
    if (this.opts.poison) for (const p of this.outputsAt.values()) this.floats.fill(NaN, p.offset, p.offset + p.length);
    this.thread.request({ op: 'run', id: this.id });
    return collectOutputs(this.graph, (node) => {
      const p = this.sourcesAt.get(node) ?? this.outputsAt.get(node)!;
      return { view: this.floats.subarray(p.offset, p.offset + p.length), owned: false };
    }, into);
  }

  /** The WGSL gpu.js generated for each kernel (empty for kernels that have not run yet). */
  shaderSources(): string[] {
    return this.thread.request({ op: 'shaders', id: this.id }) as string[];
  }

  close(): void {
    this.thread.request({ op: 'release', id: this.id });
  }
}
