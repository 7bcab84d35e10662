// The web target end to end: `tsc-nn compile --target web` writes a folder, `tsc-nn serve`'s server serves it
// (cross-origin isolated) and a plain server serves it without the headers, headless Chromium (Debian's
// /usr/bin/chromium, driven by puppeteer-core) opens the page, and the logits it writes into
// <pre id="tsc-nn-result"> must equal `tsc-nn predict --json` within 1e-3 on all 16 images: wasm on worker threads
// over one shared memory, wasm on one thread, gpu.js on WebGL2 and gpu.js on WebGPU (both on SwiftShader).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCifarBin } from '../src/runtime/data/cifar10';
import { serveStatic, type StaticServer } from '../tools/commands/serve';
import { makeRecords, useTempDir, writeBatchesFolder } from './data/helpers';

const root = path.resolve(__dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHECKPOINT = path.join(root, 'pretrained', 'shufflenetv1-0.5x-g3-cifar-16_781.safetensors');
const hasPuppeteer = (() => { try { require.resolve('puppeteer-core'); return true; } catch { return false; } })();
const missing = [
  !existsSync(CHROMIUM) && `${CHROMIUM} (apt-get install -y chromium)`,
  !hasPuppeteer && 'puppeteer-core (npm ci)',
  !existsSync(CHECKPOINT) && CHECKPOINT,
  !existsSync(path.join(root, 'dist', 'web', 'tsc-nn-web.js')) && 'dist/web (npm run build)',
].filter(Boolean);
if (missing.length) console.warn(`web tests skipped: missing ${missing.join(', ')}`);

const run = promisify(execFile);
const tscNn = (args: string[]) => run(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: root, maxBuffer: 64 * 2 ** 20, timeout: 900_000 });

interface PageResult {
  backend: string; threads: number; crossOriginIsolated: boolean; device: string; msPerBatch: number; error?: string;
  predictions: { index: number; label: number; predicted: number; logits: number[] }[];
}
interface Expected { index: number; label: number; predicted: number; logits: number[] }

// Puppeteer's types come from the package when it is installed; the test only needs these few calls.
interface Page {
  goto(url: string, opts?: object): Promise<unknown>;
  evaluateOnNewDocument(script: string): Promise<unknown>;
  waitForFunction(fn: string, opts?: object): Promise<unknown>;
  $eval(sel: string, fn: (e: { textContent: string | null }) => string | null): Promise<string | null>;
  on(event: string, fn: (x: { text?: () => string; message?: string }) => void): void;
  close(): Promise<void>;
}
interface Browser { newPage(): Promise<Page>; close(): Promise<void> }

const TIMEOUT = 900_000;

describe.skipIf(missing.length > 0)('web target in headless Chromium', () => {
  const tmp = useTempDir('tsc-nn-web-');
  let out = '';
  let expected: Expected[] = [];
  let isolated: StaticServer | undefined;
  let plain: StaticServer | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    const folder = writeBatchesFolder(tmp(), { 'test_batch.bin': writeCifarBin(makeRecords(20, 7)) });
    const data = path.join(folder, 'test_batch.bin');
    out = path.join(tmp(), 'web');
    const model = ['models/shufflenet.ts', '--size', '0.5x', '--group', '3', '--checkpoint', CHECKPOINT, '--data', data];
    const [, predicted] = await Promise.all([
      tscNn(['compile', ...model, '--target', 'web', '--out', out]),
      tscNn(['predict', ...model, '--json', '--out', path.join(tmp(), 'predictions.png')]),
    ]);
    expected = JSON.parse(predicted.stdout) as Expected[];
    isolated = await serveStatic(out, { isolate: true });
    plain = await serveStatic(out, { isolate: false });
    const puppeteer = (await import('puppeteer-core')) as unknown as { launch(o: object): Promise<Browser>; default?: { launch(o: object): Promise<Browser> } };
    const launch = puppeteer.default?.launch ?? puppeteer.launch;
    browser = await launch({
      executablePath: CHROMIUM, headless: true, protocolTimeout: TIMEOUT,
      args: ['--no-sandbox', '--enable-unsafe-webgpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
    });
  }, TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await isolated?.close();
    await plain?.close();
  });

  /** The page's result; `before` runs in the page ahead of its own scripts. */
  async function open(url: string, before?: string): Promise<PageResult> {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message ?? String(e)));
    try {
      if (before) await page.evaluateOnNewDocument(before);
      await page.goto(url);
      await page.waitForFunction("document.getElementById('tsc-nn-result').textContent.length > 0", { timeout: TIMEOUT, polling: 1000 });
      const text = await page.$eval('#tsc-nn-result', (e) => e.textContent);
      const r = JSON.parse(text!) as PageResult;
      if (errors.length) r.error = `${r.error ?? ''} page errors: ${errors.join('; ')}`;
      return r;
    } finally {
      await page.close();
    }
  }

  function expectSameLogits(r: PageResult): void {
    expect(r.error).toBeUndefined();
    expect(r.predictions.map((p) => [p.index, p.label, p.predicted])).toEqual(expected.map((p) => [p.index, p.label, p.predicted]));
    expect(r.predictions).toHaveLength(16);
    let worst = 0;
    r.predictions.forEach((p, i) => p.logits.forEach((v, c) => { worst = Math.max(worst, Math.abs(v - expected[i]!.logits[c]!)); }));
    expect(worst).toBeLessThan(1e-3);
    expect(r.msPerBatch).toBeGreaterThan(0);
  }

  it('wasm: worker threads over one shared memory when cross-origin isolated, logits as tsc-nn predict', async () => {
    const r = await open(`${isolated!.url}?backend=wasm`);
    expect(r.crossOriginIsolated).toBe(true);
    expect(r.threads).toBeGreaterThanOrEqual(2);
    expectSameLogits(r);
  }, TIMEOUT);

  it('wasm: one thread when the page is not isolated, the same logits', async () => {
    const r = await open(`${plain!.url}?backend=wasm`);
    expect(r.crossOriginIsolated).toBe(false);
    expect(r.threads).toBe(1);
    expectSameLogits(r);
  }, TIMEOUT);

  it('a backend the page cannot start is a message, never a fallback', async () => {
    const threads = await open(`${plain!.url}?backend=wasm&threads=2`);
    expect(threads.error).toMatch(/wasm backend cannot start: 2 threads need a cross-origin isolated page/);
    const unknown = await open(`${isolated!.url}?backend=metal`);
    expect(unknown.error).toMatch(/unknown backend metal/);
  }, TIMEOUT);

  // On idle cores the first gl batch (155 shaders compiled on SwiftShader) takes about 12 s.
  it('gl: the gpu.js kernels on WebGL2, logits as tsc-nn predict', async () => {
    const r = await open(`${isolated!.url}?backend=gl`);
    expect(r.backend).toBe('gl');
    expectSameLogits(r);
  }, TIMEOUT);

  // On near-idle cores the first webgpu batch (155 WGSL pipelines built on SwiftShader's Vulkan) takes 3-5 s.
  it('webgpu: the gpu.js kernels on WebGPU, logits as tsc-nn predict', async () => {
    const r = await open(`${isolated!.url}?backend=webgpu`);
    expect(r.backend).toBe('webgpu');
    expect(r.device).toMatch(/^gpu\.js WebGPUKernel on /);
    expectSameLogits(r);
  }, TIMEOUT);

  // Chromium here has a WebGPU adapter; these take it away in the page to check what a browser without one shows.
  it('webgpu without navigator.gpu or without an adapter is a message, never a fallback', async () => {
    const noApi = await open(`${isolated!.url}?backend=webgpu`, "Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined })");
    expect(noApi.error).toMatch(/webgpu backend cannot start: this browser has no WebGPU \(navigator\.gpu is missing/);
    const noAdapter = await open(`${isolated!.url}?backend=webgpu`, 'GPU.prototype.requestAdapter = async () => null');
    expect(noAdapter.error).toMatch(/webgpu backend cannot start: navigator\.gpu\.requestAdapter\(\) returned no adapter/);
  }, TIMEOUT);
});
