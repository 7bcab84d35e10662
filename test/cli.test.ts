// The command line, end to end through the built binary (npm ci builds it): compile, check-op and bad input.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../src/api/load-model';
import { buildGraph } from '../src/frontend/build';
import { compareWithReference, randomFeeds, testBackends } from './helpers';

const root = path.resolve(__dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], { cwd: root, encoding: 'utf8' });
let tmp: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-nn-cli-'));
});

const writeModel = (name: string, body: string): string => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, body);
  return file;
};

const tinyModel = (forward: string) => `import { conv2d, defineModel, relu } from 'tsc-nn';
export default defineModel({
  name: 'tiny',
  defaults: { channels: 4 },
  params: ({ channels }) => ({ w: { shape: [channels, 3, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 27 } } }),
  inputs: (_c, batch) => ({ image: [batch, 3, 8, 8] }),
  forward: (p, { image }) => {
${forward}
  },
});
`;

describe('tsc-nn compile', () => {
  it('--help works', () => {
    const r = cli('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/compile/);
    expect(r.stdout).toMatch(/check-op/);
  });

  it('compiles the small convnet example and its forward pass on gpu.js equals the reference', () => {
    const out = path.join(tmp, 'small');
    const r = cli('compile', 'examples/small-convnet.ts', '--batch', '2', '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    // conv1 8*3*3*3 + bn1 2*8 + conv2 16*4*3*3 + bn2 2*16 + fc 10*16 + 10
    expect(manifest.params).toBe(216 + 16 + 576 + 32 + 160 + 10);
    // conv1 16*16*8*27 + conv2 8*8*16*36 + fc 10*16
    expect(manifest.macsPerExample).toBe(16 * 16 * 8 * 27 + 8 * 8 * 16 * 36 + 160);
    expect(summary.kernels).toEqual(manifest.kernels);
    // Inference: BN folds into the convs, then conv + bias + ReLU fuse; the pass records say so.
    expect(manifest.passes.map((p: { pass: string }) => p.pass)).toEqual(['batchnorm-folding', 'shuffle-fusion (inline index remapping)', 'epilogue-fusion', 'pointwise-fusion']);
    expect(manifest.passes[0].changed).toEqual({ folded: 2 });
    expect(manifest.peakBytes).toBeLessThanOrEqual(manifest.naiveBytes);
    expect(fs.readFileSync(path.join(out, 'ir.traced.txt'), 'utf8')).toMatch(/conv2d\(%\d+, %\d+\) \{stride: 1, padding: 1, groups: 2\}/);
    const kernels = fs.readdirSync(path.join(out, 'kernels'));
    expect(kernels.length).toBe(manifest.kernels.total);
    expect(fs.readFileSync(path.join(out, 'ir.optimized.txt'), 'utf8')).toMatch(/fused\(conv2d > .*relu\)/);
    const sources = kernels.map((k) => fs.readFileSync(path.join(out, 'kernels', k), 'utf8'));
    const conv = sources.find((src) => /\/\/ k\d+_\w+: conv2d > /.test(src))!;
    expect(conv).toMatch(/^function \(a0, a1, a2\) \{/);

    const model = loadModel(path.join(root, 'examples/small-convnet.ts'));
    const g = buildGraph(model, model.defaults, { batch: 2, mode: 'infer' });
    const positiveVar = Object.fromEntries(g.sources('state').filter((n) => n.name!.endsWith('running_var')).map((n) => [n.name!, new Float32Array(n.shape[0]!).fill(1.5)]));
    for (const b of testBackends) expect(compareWithReference(g, randomFeeds(g, 3, positiveVar), b)).toBeNull();
  });

  it('--emit ir writes only the IR', () => {
    const out = path.join(tmp, 'ir-only');
    expect(cli('compile', 'examples/small-convnet.ts', '--emit', 'ir', '--out', out).status).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['ir.optimized.txt', 'ir.traced.txt']);
  });

  it('a type error prints tsc-style file:line:col diagnostics and exits 1', () => {
    const file = writeModel('typo.ts', tinyModel('    const n: number = "four";\n    return relu(conv2d(image!, p.w!, { padding: n }));'));
    const r = cli('compile', file);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/typo\.ts:8:11: error TS2322: Type 'string' is not assignable to type 'number'/);
  });

  it('a shape error names the op and the model line, with no stack trace', () => {
    const file = writeModel('shape.ts', tinyModel('    return relu(conv2d(image!, p.w!, { padding: 1, groups: 2 }));'));
    const r = cli('compile', file);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/conv2d at .*shape\.ts:8:\d+: groups=2 does not divide the 3 input channels/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a kernel larger than the padded input is a shape error', () => {
    const file = writeModel('kernel.ts', tinyModel('    return conv2d(conv2d(image!, p.w!), p.w!, { stride: 9 }).graph ? conv2d(image!, p.w!, { padding: 0, stride: 1 }) : image!;').replace('[batch, 3, 8, 8]', '[batch, 3, 2, 2]'));
    const r = cli('compile', file);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/conv2d at .*kernel\.ts:8:\d+: kernel 3x3 is larger than the padded input 2x2/);
  });

  it('unknown flags, modes and model options list the valid values', () => {
    expect(cli('compile', 'examples/small-convnet.ts', '--emit', 'asm').stderr).toMatch(/--emit must be one of all, ir, kernels/);
    expect(cli('compile', 'examples/small-convnet.ts', '--colour', 'red').stderr).toMatch(/unknown option --colour for model small-convnet: valid options are --width, --classes, --resolution/);
    expect(cli('check-op', 'examples/hard-swish.ts', '--backend', 'tpu').stderr).toMatch(/unknown backend "tpu": choose one of auto, native, wasm, js, cpu, webasm, gl, webgpu/);
    expect(cli('frobnicate').stderr).toMatch(/unknown command "frobnicate": valid commands are compile, train, eval, predict, check-op, bench/);
    expect(cli('check-op', 'examples/hard-swish.ts', '--bogus', '1').stderr).toMatch(/unknown flag --bogus for check-op: valid flags are --runs, --seed, --backend, --json/);
  });
});

describe('tsc-nn check-op', () => {
  it('passes the hard-swish example', () => {
    const r = cli('check-op', 'examples/hard-swish.ts', '--runs', '10', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([{ name: 'hard_swish', runs: 30, gradients: true }]);
  });

  it('finds a wrong gradient rule against finite differences', () => {
    const file = writeModel('square.ts', `import { compute, defineOp, defineOpCheck } from 'tsc-nn';
const squareOp = defineOp<Record<string, never>>({
  name: 'square_buggy_grad',
  compute: ([x]) => compute(x!.shape, (...i) => x!.at(...i).mul(x!.at(...i))),
  // Bug: d(x^2)/dx is 2x, not x.
  vjp: (g, [x]) => [squareGrad([x!, g], {})],
});
const squareGrad = defineOp<Record<string, never>>({
  name: 'square_buggy_grad_rule',
  compute: ([x, g]) => compute(x!.shape, (...i) => g!.at(...i).mul(x!.at(...i))),
});
export const check = defineOpCheck({ name: 'square_buggy_grad', draw: (d) => ({ inputs: [[d(1, 6, 'n')]] }), apply: ([x]) => squareOp([x!], {}) });
`);
    const r = cli('check-op', file, '--runs', '5', '--seed', '3', '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL square_buggy_grad: d loss \/ d x0\[\d+\]: AD .* vs finite differences/);
    expect(r.stdout).toMatch(/counterexample: n=1; input shapes \[1\]/);
  });

  it('finds an out-of-bounds read and prints the shrunk counterexample', () => {
    const file = writeModel('shift.ts', `import { compute, defineOp, defineOpCheck } from 'tsc-nn';
const shiftOp = defineOp<Record<string, never>>({
  name: 'shift_left_buggy',
  // Bug: the last element reads past the end (no guard for i + 1 == n).
  compute: ([x]) => compute(x!.shape, (i) => x!.at(i!.add(1))),
});
export const check = defineOpCheck({ name: 'shift_left_buggy', draw: (d) => ({ inputs: [[d(1, 50, 'n')]] }), apply: ([x]) => shiftOp([x!], {}) });
`);
    const r = cli('check-op', file, '--runs', '20', '--seed', '7');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL shift_left_buggy: .*outside \[0, 1\)/);
    expect(r.stdout).toMatch(/counterexample: n=1; input shapes \[1\]/);
  });
});
