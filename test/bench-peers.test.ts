// peer-bench.js, the benchmark's one-measurement runner, on its library peers at 0.5x g3, batch 2: PyTorch (its
// own Python process) and ONNX Runtime (in process, tsc-nn's ONNX export) report a measurement whose first output
// agrees with tsc-nn's, or say in `cannot` why they cannot do the work, never crash. Runs the build in dist/.
// The PyTorch measurements need /usr/bin/python3 (or $TSC_NN_PYTHON) with torch; skipped, saying so, without.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PYTHON } from '../tools/bench/peers/pytorch';
import { useTempDir } from './data/helpers';

const root = path.resolve(__dirname, '..');
const AGREE = 1e-4;
/** Why PyTorch cannot run here, or '' when `python3 -c "import torch"` works. */
const torchMissing = ((): string => {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 300_000 });
  if (r.status === 0) return '';
  return `${PYTHON} -c "import torch" failed: ${r.error ? String(r.error) : r.stderr.trim().split('\n').at(-1)}`;
})();

const tmp = useTempDir('tsc-nn-bench-peers-');
/** One successful peer-bench run; its JSON line. */
function peerBench(system: string, mode: 'infer' | 'train', env: Record<string, string> = {}): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['dist/tools/bench/peer-bench.js', '--system', system, '--size', '0.5x', '--batch', '2', '--steps', '1', '--mode', mode], {
    cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache'), ...env },
  });
  expect(r.status, `${r.stderr}${r.error ? String(r.error) : ''}`).toBe(0);
  const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  expect(line).toMatchObject({ system, mode, batch: 2, size: '0.5x' });
  return line;
}

function expectMeasured(line: Record<string, unknown>): Record<string, number> {
  for (const k of ['compileMs', 'firstStepMs', 'medianStepMs', 'imagesPerSec', 'peakRssMb']) expect(line[k], k).toBeGreaterThan(0);
  return line.agreement as Record<string, number>;
}

describe.skipIf(torchMissing !== '')(`pytorch${torchMissing ? ` (skipped: ${torchMissing}; install python3-torch to run these)` : ''}`, () => {
  it('inference: the logits agree with tsc-nn\'s', () => {
    expect(expectMeasured(peerBench('pytorch', 'infer')).logitsRelL2).toBeLessThan(AGREE);
  });

  it('a training step: the loss agrees with tsc-nn\'s', () => {
    expect(expectMeasured(peerBench('pytorch', 'train')).lossAbsDiff).toBeLessThan(AGREE);
  });
});

describe('pytorch where it cannot run: cannot, with the reason', () => {
  it('no Python interpreter', () => {
    expect(peerBench('pytorch', 'infer', { TSC_NN_PYTHON: path.join(tmp(), 'no-python') }).cannot).toBe(`${path.join(tmp(), 'no-python')} not found`);
  });

  it.skipIf(!fs.existsSync(PYTHON))('a Python that cannot import torch', () => {
    // A torch package first on the path that fails to import, as a missing or broken install does.
    fs.mkdirSync(path.join(tmp(), 'hide', 'torch'), { recursive: true });
    fs.writeFileSync(path.join(tmp(), 'hide', 'torch', '__init__.py'), 'raise ImportError("no torch in this test")\n');
    expect(peerBench('pytorch', 'train', { PYTHONPATH: path.join(tmp(), 'hide') }).cannot).toBe(`${PYTHON} cannot import torch (ImportError: no torch in this test)`);
  });
});

describe('onnxruntime', () => {
  it('inference: the logits agree with tsc-nn\'s', () => {
    expect(expectMeasured(peerBench('onnxruntime', 'infer')).logitsRelL2).toBeLessThan(AGREE);
  });

  it('training: cannot (the inference package)', () => {
    expect(peerBench('onnxruntime', 'train').cannot).toMatch(/^ONNX Runtime's inference package .* has no training/);
  });
});
