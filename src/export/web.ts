// `tsc-nn compile --target web`: a self-contained folder any static server can serve, which runs a checkpoint's
// BN-folded inference program in a web page. Everything a page would otherwise need a compiler for happens here:
// the kernels are lowered, laid out in one arena exactly as the wasm backend does (wasm/executor.ts), printed for
// the portable WebAssembly SIMD target (no relaxed SIMD: not every browser has it) and assembled with wabt into
// model.wasm; the gpu.js sources of the gl and webgpu backends are printed into plan.json. The page's runtime
// (src/web, built into dist/web by tsconfig.web.json) and gpu.js's browser bundle are copied beside them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../ir/errors';
import { sizeOf } from '../ir/graph';
import type { ModelDef } from '../ir/model';
import { lowerGraph } from '../codegen/lower';
import { printWasmKernel, wasmModule } from '../codegen/wasm';
import { assembleWat } from '../codegen/assemble';
import { packable, printGpujsKernel, type GpujsKernelSource } from '../codegen/gpujs';
import { MAX_PAGES, PAGE_BYTES } from '../backends/wasm/executor';
import { guardedLayout } from '../backends/arena';
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, loadCifar10 } from '../runtime/data/cifar10';
import { CIFAR10_MEAN, CIFAR10_STD } from '../runtime/data/augment';
import { openModelCheckpoint } from '../api/checkpoint';
import { compilePrograms } from '../api/programs';
import { imageSide, logitClasses } from '../api/classifier';
import type { GpujsSource, WebPlan } from '../web/plan';

/** Images embedded with --data (the first of the test split, in `tsc-nn predict`'s order). */
export const WEB_IMAGES = 16;

/** The runtime files the page loads, built from src/web into dist/web. */
export const WEB_RUNTIME_FILES = ['tsc-nn-web.js', 'tsc-nn-worker.js', 'page.js', 'plan.js', 'browser.js', 'gpujs.js'] as const;

export interface WebExportOptions<C extends object> {
  readonly checkpoint: string;
  readonly out: string;
  readonly config?: Partial<C>;
  /** Images per run (default 16). */
  readonly batch?: number;
  /** CIFAR-10 (archive, folder or .bin): its first 16 test images are embedded. */
  readonly data?: string;
  /** Where the built page runtime is (default: dist/web beside this file's build). */
  readonly runtimeDir?: string;
}

export interface WebExportResult {
  readonly dir: string;
  readonly files: readonly { readonly name: string; readonly bytes: number }[];
  readonly totalBytes: number;
  readonly plan: WebPlan;
}

const align16 = (n: number): number => Math.ceil(n / 16) * 16;

/** The folder dist/web (built by `npm run build`), found from this module's place in dist/src/export. */
export function defaultWebRuntimeDir(): string {
  return path.resolve(__dirname, '..', '..', 'web');
}

function gpujsBundle(): string {
  return path.join(path.dirname(require.resolve('gpu.js/package.json')), 'dist', 'gpu-browser.min.js');
}

export async function exportWeb<C extends object>(model: ModelDef<C>, opts: WebExportOptions<C>): Promise<WebExportResult> {
  const batch = opts.batch ?? WEB_IMAGES;
  const runtimeDir = opts.runtimeDir ?? defaultWebRuntimeDir();
  const missing = WEB_RUNTIME_FILES.filter((f) => !fs.existsSync(path.join(runtimeDir, f)));
  if (missing.length) throw new UserError(`the page runtime is not built (${path.join(runtimeDir, missing[0]!)} is missing): run \`npm run build\``);
  const opened = await openModelCheckpoint(model, opts.checkpoint, { overrides: opts.config });
  const config = opened.config;
  const side = imageSide(model, config);
  const program = await compilePrograms(model, config, 'infer', batch);
  const { graph } = program;
  const classes = logitClasses(model, graph, batch);
  const kernels = lowerGraph(graph);

  // The arena as the wasm backend lays it out; every address a constant in the kernels' text.
  const layout = guardedLayout(graph, kernels);
  const pages = Math.ceil((layout.floats * 4) / PAGE_BYTES);
  if (pages > MAX_PAGES) throw new UserError(`this program needs ${((pages * PAGE_BYTES) / 2 ** 30).toFixed(1)} GiB of tensors; WebAssembly memory is limited to 4 GiB: use a smaller --batch`);
  const at = (id: number): number => 4 * layout.place.get(id)!.offset;
  const printed = kernels.map((k) => printWasmKernel(k, { out: at(k.node), inputs: k.inputs.map((i) => at(i.node)) }, { fma: false }));
  const bytes = assembleWat(wasmModule(printed, pages));

  const inputs = graph.sources('input');
  const imageNode = inputs.find((n) => n.name === 'image');
  if (!imageNode || inputs.length !== 1) throw new UserError(`model ${model.name}: the web target feeds one input named image`);
  const logitsOut = graph.outputs.find((o) => o.name === 'logits')!;

  // Weights: every non-input source (parameters and BN statistics) from the checkpoint, 16-byte aligned.
  const tensors: { name: string; node: number; byteOffset: number; blobOffset: number; length: number }[] = [];
  let blobBytes = 0;
  for (const s of graph.sources()) {
    if (s.op === 'input') continue;
    const value = opened.tensors.get(s.name!);
    if (!value) throw new UserError(`${opts.checkpoint}: no tensor ${s.name} for the inference program`);
    if (value.length !== sizeOf(s.shape)) throw new UserError(`${opts.checkpoint}: ${s.name} holds ${value.length} values, [${s.shape.join(', ')}] needs ${sizeOf(s.shape)}`);
    tensors.push({ name: s.name!, node: s.id, byteOffset: at(s.id), blobOffset: blobBytes, length: value.length });
    blobBytes = align16(blobBytes + 4 * value.length);
  }
  const blob = new Uint8Array(blobBytes);
  for (const t of tensors) {
    const value = opened.tensors.get(t.name)!;
    blob.set(new Uint8Array(value.buffer, value.byteOffset, 4 * value.length), t.blobOffset);
  }

  // The gpu.js kernels of the gl and webgpu backends: for WebGL2 4 outputs per thread where the innermost axis
  // allows, exactly as GpujsExecutor on gl; for WebGPU one per thread, as WebGpuExecutor.
  for (const k of kernels) {
    if (k.output.split !== 0 || k.inputs.some((i) => i.layout.split !== 0)) throw new UserError(`kernel ${k.name} has a tensor above 2^24 elements: use a smaller --batch for the web target`);
  }
  const packed = new Set(kernels.filter(packable).map((k) => k.node));
  const gpujsSource = ({ source, output, loopMaxIterations }: GpujsKernelSource): GpujsSource => ({ source, output, loopMaxIterations });
  const gpujsKernels = kernels.map((k) => ({
    node: k.node,
    inputs: k.inputs.map((i) => i.node),
    webgl2: gpujsSource(printGpujsKernel(k, { output: packed.has(k.node), inputs: k.inputs.map((i) => packed.has(i.node)) })),
    webgpu: gpujsSource(printGpujsKernel(k)),
  }));

  fs.mkdirSync(opts.out, { recursive: true });
  const written: { name: string; bytes: number }[] = [];
  const write = (name: string, data: string | Uint8Array): void => {
    fs.writeFileSync(path.join(opts.out, name), data);
    written.push({ name, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.length });
  };

  let images: WebPlan['images'];
  let classNames: readonly string[] = classes === 10 ? CIFAR10_CLASSES : Array.from({ length: classes }, (_, c) => `class ${c}`);
  if (opts.data) {
    const data = await loadCifar10(opts.data, 'test');
    const count = Math.min(WEB_IMAGES, data.count);
    for (let i = 0; i < count; i++) if (data.labels[i]! >= classes) throw new UserError(`${data.source}: image ${i} has label ${data.labels[i]}, but the model has ${classes} classes`);
    write('images.bin', data.images.slice(0, count * CIFAR10_IMAGE_BYTES));
    images = { file: 'images.bin', count, side: 32, labels: Array.from(data.labels.subarray(0, count)), source: path.basename(data.source) };
    if (data.classNames.length === classes) classNames = data.classNames;
  }

  const plan: WebPlan = {
    format: 'tsc-nn-web/1',
    model: model.name,
    config: config as Record<string, unknown>,
    checkpoint: path.basename(opts.checkpoint),
    batch,
    classes,
    image: { shape: imageNode.shape, byteOffset: at(imageNode.id), mean: CIFAR10_MEAN, std: CIFAR10_STD },
    logits: { byteOffset: at(logitsOut.node), length: sizeOf(graph.node(logitsOut.node).shape) },
    wasm: {
      file: 'model.wasm',
      pages,
      kernels: kernels.map((k, i) => ({ name: k.name, splitExtent: printed[i]!.splitExtent, splitAlign: printed[i]!.splitAlign, work: sizeOf(k.output.shape) + k.macs })),
    },
    weights: { file: 'weights.bin', bytes: blobBytes, tensors },
    gpujs: { imageNode: imageNode.id, logitsNode: logitsOut.node, kernels: gpujsKernels },
    ...(images ? { images } : {}),
    classNames,
  };
  if (side !== imageNode.shape[2]) throw new Error('image side mismatch');

  write('model.wasm', bytes);
  write('weights.bin', blob);
  write('plan.json', JSON.stringify(plan));
  for (const f of WEB_RUNTIME_FILES) write(f, fs.readFileSync(path.join(runtimeDir, f)));
  write('gpu-browser.min.js', fs.readFileSync(gpujsBundle()));
  write('index.html', indexHtml(plan));
  return { dir: opts.out, files: written, totalBytes: written.reduce((a, f) => a + f.bytes, 0), plan };
}

const escapeHtml = (s: string): string => s.replace(/[&<>"]/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot' } as Record<string, string>)[c]!};`);

function indexHtml(plan: WebPlan): string {
  const title = `tsc-nn: ${plan.model} (${Object.entries(plan.config).map(([k, v]) => `${k} ${String(v)}`).join(', ')})`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  #status { margin: 8px 0; padding: 6px 8px; background: #eef; border-radius: 4px; white-space: pre-wrap; }
  #status.error { background: #fdd; color: #900; }
  #grid { display: grid; grid-template-columns: repeat(8, 136px); gap: 8px; margin: 12px 0; }
  figure { margin: 0; text-align: center; font-size: 12px; }
  canvas.img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
  .right { color: #0a0; } .wrong { color: #c00; }
  #drop { border: 2px dashed #999; border-radius: 6px; padding: 12px; display: flex; gap: 16px; align-items: center; max-width: 1100px; }
  #drop.over { background: #eef; }
  #tsc-nn-result { max-height: 160px; overflow: auto; background: #fff; border: 1px solid #ddd; padding: 6px; font-size: 11px; }
  nav a { margin-right: 12px; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<nav>backend: <a href="?backend=wasm">wasm</a><a href="?backend=wasm&amp;threads=1">wasm, 1 thread</a><a href="?backend=gl">gl (gpu.js WebGL2)</a><a href="?backend=webgpu">webgpu (gpu.js WebGPU)</a></nav>
<div id="status">loading...</div>
<div id="grid"></div>
<div id="drop">
  <canvas id="user-canvas" class="img" width="${plan.image.shape[3]}" height="${plan.image.shape[2]}"></canvas>
  <div>Drop an image here or <input type="file" id="file" accept="image/*"><div id="user-result"></div></div>
</div>
<h2 style="font-size:14px">Result</h2>
<pre id="tsc-nn-result"></pre>
<script type="module" src="page.js"></script>
</body>
</html>
`;
}
