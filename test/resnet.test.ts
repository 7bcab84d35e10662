// ResNet for CIFAR (models/resnet.ts) as a user's model file: the paper's parameter counts exactly, its custom
// option-A shortcut through `tsc-nn check-op` (every backend against the float64 reference, the VJP against finite
// differences), and a whole ResNet-8 forward pass on the wasm backend against the reference.
import { describe, expect, it, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../src/api/load-model';
import { configure } from '../src/api/classifier';
import { buildGraph } from '../src/frontend/build';
import { initParams } from '../src/runtime/init';
import { compareWithReference, randomFeeds } from './helpers';

const root = path.resolve(__dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 115_000 });

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
});

describe('models/resnet.ts', () => {
  // Counted independently: 3x3 convs without bias, BN weight and bias, the 64 -> 10 classifier with bias.
  const expectedParams = (depth: number): number => {
    const n = (depth - 2) / 6;
    let total = 16 * 3 * 9 + 2 * 16;
    let inp = 16;
    for (const width of [16, 32, 64]) {
      for (let i = 0; i < n; i++) { total += width * inp * 9 + 2 * width + width * width * 9 + 2 * width; inp = width; }
    }
    return total + 64 * 10 + 10;
  };

  it.each([[20, 269_722], [32, 464_154], [56, 853_018]])('compile --depth %i --json reports %i parameters (the paper: 0.27 M, 0.46 M, 0.85 M)', (depth, count) => {
    expect(expectedParams(depth)).toBe(count);
    const r = cli('compile', 'models/resnet.ts', '--depth', String(depth), '--emit', 'ir', '--out', path.join(root, 'out', `resnet-${depth}-test`), '--json');
    fs.rmSync(path.join(root, 'out', `resnet-${depth}-test`), { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ model: 'resnet', params: count, config: { depth, classes: 10, resolution: 32 } });
  });

  it('refuses a depth that is not 6n + 2 with one line', () => {
    const r = cli('compile', 'models/resnet.ts', '--depth', '21');
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('tsc-nn compile: --depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got 21');
  });

  it('check-op: the option-A shortcut equals the reference on every backend and its VJP matches finite differences', () => {
    const r = cli('check-op', 'models/resnet.ts', '--runs', '12', '--backend', 'js,wasm,cpu', '--json');
    expect(r.status, r.stderr).toBe(0);
    const [result] = JSON.parse(r.stdout) as { name: string; runs: number; gradients: boolean; failure?: string }[];
    expect(result).toMatchObject({ name: 'resnet_shortcut_a', gradients: true });
    expect(result!.failure).toBeUndefined();
  });

  it('a ResNet-8 forward pass (both shortcut kinds, BN in training mode and folded) on wasm equals the float64 reference', () => {
    const model = loadModel(path.join(root, 'models', 'resnet.ts'));
    const config = configure(model, { depth: 8 });
    for (const mode of ['infer', 'train'] as const) {
      const g = buildGraph(model, config, { batch: 2, mode });
      const params = Object.fromEntries(initParams(model.params(config), 2));
      const feeds = randomFeeds(g, 3, { ...params, ...(mode === 'train' ? { label: new Float32Array([3, 7]) } : {}) });
      expect(compareWithReference(g, feeds, 'wasm', 1e-4), mode).toBeNull();
    }
  });
});
