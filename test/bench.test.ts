// `npm run bench` in its seconds-long smoke form (what CI runs): the table runner measures tsc-nn's fast backends
// in their own processes and writes the JSON and markdown reports; `tsc-nn bench --json` reports what really ran.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { median } from '../tools/bench/measure';

const root = path.resolve(__dirname, '..');
const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, TSC_NN_CACHE: fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-nn-cache-')) } });

describe('benchmark statistics', () => {
  it('the median of an even count is the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([404, 506])).toBe(455);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('benchmarks', () => {
  it('tsc-nn bench --json: one line naming the backend that ran, with timings and memory', () => {
    const r = node(['bin/tsc-nn.js', 'bench', '--size', '0.5x', '--batch', '2', '--mode', 'train', '--steps', '2', '--backend', 'wasm', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim());
    expect(j).toMatchObject({ backend: 'wasm', mode: 'train', batch: 2, steps: 2, programCached: false });
    for (const k of ['compileMs', 'firstStepMs', 'medianStepMs', 'imagesPerSec', 'gflops', 'peakRssMb']) expect(j[k]).toBeGreaterThan(0);
  }, 120_000);

  it('the kernel profile groups every kernel of a step by phase and ops, and names a bad flag in one line', () => {
    const r = node(['dist/tools/bench/kernel-profile.js', '--size', '0.5x', '--batch', '2', '--reps', '1', '--top', '200', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim());
    expect(j).toMatchObject({ mode: 'train', batch: 2, threads: 1 });
    expect(j.groups.reduce((n: number, g: { kernels: number }) => n + g.kernels, 0)).toBe(j.kernels);
    expect(j.groups.reduce((s: number, g: { share: number }) => s + g.share, 0)).toBeCloseTo(1, 6);
    expect(new Set(j.groups.map((g: { phase: string }) => g.phase))).toEqual(new Set(['forward', 'backward', 'optimizer']));
    const bad = node(['dist/tools/bench/kernel-profile.js', '--size', '3x']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe('kernel-profile: --size must be one of 0.5x, 1.0x, 1.5x, 2.0x (got 3x)');
  }, 120_000);

  it('the smoke table measures wasm and js for inference and training and writes both reports', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-nn-bench-'));
    const r = node(['dist/tools/bench/table.js', '--smoke', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'benchmarks.json'), 'utf8'));
    expect(json.configs.map((c: { mode: string }) => c.mode)).toEqual(['infer', 'train']);
    for (const c of json.configs) {
      expect(c.rows.map((r: { system: string }) => r.system)).toEqual(['wasm', 'js']);
      for (const row of c.rows) expect(row.runs[0].imagesPerSec, JSON.stringify(row.runs[0])).toBeGreaterThan(0);
    }
    const md = fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8');
    expect(md).toMatch(/## 0\.5x g3 cifar, batch 2, training step \(smoke\)/);
    expect(md).toMatch(/\| wasm \| [\d.]+ \([\d.]+-[\d.]+\) \| \d+ \| 1\.00x \|/);
    // --render rewrites the same markdown from the saved JSON, measuring nothing.
    fs.rmSync(path.join(out, 'benchmarks.md'));
    const again = node(['dist/tools/bench/table.js', '--render', path.join(out, 'benchmarks.json')]);
    expect(again.status, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'benchmarks.md'), 'utf8')).toBe(md);
    const missing = node(['dist/tools/bench/table.js', '--render', path.join(out, 'none.json')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe(`bench: --render ${path.join(out, 'none.json')}: no such file (give the benchmarks.json a run wrote)`);
  }, 300_000);
});
