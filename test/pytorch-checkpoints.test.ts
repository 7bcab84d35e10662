// PyTorch checkpoints both ways, checked by real PyTorch (tools/torch: independent nn.Module definitions of
// ShuffleNetV1 and the CIFAR ResNets, and a safetensors reader/writer): a tsc-nn checkpoint loads into PyTorch
// with load_state_dict(strict=True) and gives tsc-nn's logits; PyTorch's own state_dict, written as
// safetensors.torch.save_file writes it, gives tsc-nn eval and predict exactly the numbers of the tsc-nn
// checkpoint; a state_dict that does not match is one error line. With CIFAR10_PATH naming the real archive, the
// pretrained 0.5x checkpoint scores the same top-1 in PyTorch and in tsc-nn on the whole test set.
//
// Needs /usr/bin/python3 (or $TSC_NN_PYTHON) with torch, e.g. Debian's python3-torch; skipped, saying so, where it
// cannot import torch.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../src/api/load-model';
import { configure } from '../src/api/classifier';
import { tensorShapes } from '../src/api/programs';
import { initParams } from '../src/runtime/init';
import { Rng } from '../src/runtime/data/rng';
import { saveCheckpoint } from '../src/runtime/checkpoint/model-checkpoint';
import { readSafetensors, writeSafetensors } from '../src/runtime/checkpoint/safetensors';
import { shufflenet } from '../src/models/shufflenet';
import { writeCifarBin } from '../src/runtime/data/cifar10';
import { makeRecords, useTempDir, writeBatchesFolder } from './data/helpers';

const root = path.resolve(__dirname, '..');
const PYTHON = process.env.TSC_NN_PYTHON ?? '/usr/bin/python3';
const ROUNDTRIP = path.join(root, 'tools', 'torch', 'roundtrip.py');
const PRETRAINED = path.join(root, 'pretrained', 'shufflenetv1-0.5x-g3-cifar-16_781.safetensors');
/** Why PyTorch cannot run here, or '' when `python3 -c "import torch"` works (a cold import on a busy machine is slow). */
const torchMissing = ((): string => {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0) return '';
  if (r.error) return `${PYTHON}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`;
  return `${PYTHON} -c "import torch" failed: ${r.stderr.trim().split('\n').at(-1) ?? `status ${r.status}`}`;
})();
const torchAvailable = torchMissing === '';
const realData = process.env.CIFAR10_PATH;
const SHUFFLENET_FLAGS = ['--size', '0.5x', '--group', '3', '--stem', 'cifar'];
const IMAGES = 40;
/** Each test spawns tsc-nn and Python a few times: generous, for a busy two-core machine. */
const SLOW = 600_000;

interface EvalJson { format: string; loss: number; top1: number; top5: number; images: number; config: Record<string, unknown> }
interface TorchEval { loss: number; top1: number; top5: number; images: number }
interface Prediction { index: number; label: number; predicted: number; logits: number[] }

const maxAbsDiff = (a: readonly Prediction[], b: readonly Prediction[]): number => {
  expect(a.map((p) => p.index)).toEqual(b.map((p) => p.index));
  let max = 0;
  a.forEach((p, i) => p.logits.forEach((v, c) => { max = Math.max(max, Math.abs(v - b[i]!.logits[c]!)); }));
  return max;
};

describe.skipIf(!torchAvailable)(
  `PyTorch checkpoints both ways${torchAvailable ? '' : ` (skipped: ${torchMissing}; install python3-torch to run these)`}`,
  () => {
    const tmp = useTempDir('tsc-nn-pytorch-');
    const spawn = (command: string, args: string[], timeout: number) => spawnSync(command, args, {
      cwd: root, encoding: 'utf8', timeout, maxBuffer: 64 << 20, env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') },
    });
    /** One successful run of tsc-nn or roundtrip.py whose stdout is JSON. */
    const ok = <T>(r: ReturnType<typeof spawn>): T => {
      expect(r.status, `${r.stderr}${r.error ? String(r.error) : ''}`).toBe(0);
      return JSON.parse(r.stdout) as T;
    };
    const cli = (args: string[], timeout = 300_000) => spawn(process.execPath, [path.join(root, 'bin', 'tsc-nn.js'), ...args], timeout);
    const torch = (args: string[], timeout = 300_000) => spawn(PYTHON, [ROUNDTRIP, ...args], timeout);
    /** A command that fails with one line on stderr, no stack trace; the line. */
    const oneLine = (r: ReturnType<typeof spawn>, prefix: string): string => {
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]!.startsWith(prefix), lines[0]).toBe(true);
      expect(r.stderr).not.toMatch(/Traceback|\n\s+at /);
      return lines[0]!;
    };

    let data: string;
    let tscCkpt: string;
    let stateDict: string;

    beforeAll(() => {
      if (!fs.existsSync(path.join(root, 'dist', 'tools', 'cli.js'))) throw new Error('run `npm run build` first (npm ci does it)');
      data = path.join(tmp(), 'data');
      writeBatchesFolder(data, { 'test_batch.bin': writeCifarBin(makeRecords(IMAGES, 17)) });
      // Copies, each in its own folder: eval appends to eval_log.txt beside the checkpoint.
      fs.mkdirSync(path.join(tmp(), 'tsc-nn'));
      fs.mkdirSync(path.join(tmp(), 'pytorch'));
      tscCkpt = path.join(tmp(), 'tsc-nn', 'shufflenetv1-0.5x-g3.safetensors');
      fs.copyFileSync(PRETRAINED, tscCkpt);
      stateDict = path.join(tmp(), 'pytorch', 'state_dict.safetensors');
      ok(torch(['export-state-dict', '--model', 'shufflenet', ...SHUFFLENET_FLAGS, '--checkpoint', tscCkpt, '--out', stateDict]));
    }, SLOW);

    it('export-state-dict writes a plain state_dict: no metadata, F32 tensors equal to the checkpoint\'s, num_batches_tracked as I64', async () => {
      const bytes = fs.readFileSync(stateDict);
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
      expect(Object.keys(header)).not.toContain('__metadata__');
      const [ours, theirs] = await Promise.all([readSafetensors(tscCkpt), readSafetensors(stateDict)]);
      expect(theirs.metadata).toEqual({});
      const shapes = tensorShapes(shufflenet, configure(shufflenet, { size: '0.5x', group: 3 }));
      const counters = [...theirs.tensors.keys()].filter((n) => n.endsWith('.num_batches_tracked'));
      expect(counters).toHaveLength(49); // one per BatchNorm2d
      for (const name of counters) expect(theirs.tensors.get(name)).toMatchObject({ dtype: 'I64', shape: [] });
      expect(new Set(theirs.tensors.keys())).toEqual(new Set([...shapes.keys(), ...counters]));
      for (const [name, shape] of shapes) {
        const t = theirs.tensors.get(name)!;
        expect(t.dtype, name).toBe('F32');
        expect(t.shape, name).toEqual(shape);
        expect(Buffer.from(t.data.buffer).equals(Buffer.from(ours.tensors.get(name)!.data.buffer)), name).toBe(true);
      }
    }, SLOW);

    it('tsc-nn eval scores the PyTorch state_dict exactly as the tsc-nn checkpoint, and PyTorch agrees', () => {
      const fromTorch = ok<EvalJson>(cli(['eval', '--checkpoint', stateDict, ...SHUFFLENET_FLAGS, '--data', data, '--json']));
      const fromTsc = ok<EvalJson>(cli(['eval', '--checkpoint', tscCkpt, ...SHUFFLENET_FLAGS, '--data', data, '--json']));
      expect(fromTorch.format).toBe('state_dict');
      expect(fromTsc.format).toBe('tsc-nn');
      expect(fromTorch.images).toBe(IMAGES);
      expect({ loss: fromTorch.loss, top1: fromTorch.top1, top5: fromTorch.top5 }).toEqual({ loss: fromTsc.loss, top1: fromTsc.top1, top5: fromTsc.top5 });
      // PyTorch itself, on the tsc-nn checkpoint and on its own state_dict.
      for (const file of [tscCkpt, stateDict]) {
        const t = ok<TorchEval>(torch(['eval', '--model', 'shufflenet', ...SHUFFLENET_FLAGS, '--checkpoint', file, '--data', data]));
        expect(Object.keys(t).sort()).toEqual(['images', 'loss', 'top1', 'top5']);
        expect({ images: t.images, top1: t.top1, top5: t.top5 }).toEqual({ images: IMAGES, top1: fromTsc.top1, top5: fromTsc.top5 });
        expect(Math.abs(t.loss - fromTsc.loss)).toBeLessThan(1e-5);
      }
    }, SLOW);

    it('predict: the state_dict\'s logits equal the checkpoint\'s in tsc-nn, and PyTorch\'s within 1e-4', () => {
      const predict = (file: string) => ok<Prediction[]>(cli(['predict', '--checkpoint', file, ...SHUFFLENET_FLAGS, '--data', data,
        '--count', String(IMAGES), '--out', path.join(path.dirname(file), 'grid.png'), '--json']));
      const fromTorch = predict(stateDict);
      const fromTsc = predict(tscCkpt);
      expect(fromTsc).toHaveLength(IMAGES);
      expect(maxAbsDiff(fromTorch, fromTsc)).toBeLessThan(1e-5);
      const pytorch = ok<Prediction[]>(torch(['logits', '--model', 'shufflenet', ...SHUFFLENET_FLAGS, '--checkpoint', tscCkpt, '--data', data, '--count', String(IMAGES)]));
      expect(pytorch.map((p) => [p.label, p.predicted])).toEqual(fromTsc.map((p) => [p.label, p.predicted]));
      const diff = maxAbsDiff(pytorch, fromTsc);
      const scale = Math.max(...fromTsc.flatMap((p) => p.logits.map(Math.abs)));
      console.log(`ShuffleNetV1 0.5x g3, ${IMAGES} images: max |PyTorch - tsc-nn| logit difference ${diff.toExponential(2)} (largest |logit| ${scale.toFixed(2)})`);
      expect(diff).toBeLessThan(1e-4);
    }, SLOW);

    it('ResNet-20 (models/resnet.ts, random weights): PyTorch gives tsc-nn\'s logits; its state_dict round-trips', async () => {
      const modelFile = path.join(root, 'models', 'resnet.ts');
      const resnet = loadModel(modelFile);
      const config = configure(resnet, { depth: 20 });
      const tensors = initParams(resnet.params(config), 7);
      const rng = Rng.derive(13);
      for (const [name, v] of tensors) { // BN statistics and affine parameters away from the identity
        if (name.endsWith('running_mean') || name.endsWith('.bias')) for (let i = 0; i < v.length; i++) v[i] = 0.2 * (rng.next() - 0.5);
        if (name.endsWith('running_var') || /bn\d\.weight$/.test(name)) for (let i = 0; i < v.length; i++) v[i] = 0.5 + rng.next();
      }
      const dir = path.join(tmp(), 'resnet');
      fs.mkdirSync(dir);
      const ckpt = path.join(dir, 'resnet20.safetensors');
      await saveCheckpoint(ckpt, tensors, tensorShapes(resnet, config), { config: { model: 'resnet', ...config }, epoch: 0, step: 0 });
      const flags = ['--depth', '20'];
      const tsc = ok<Prediction[]>(cli(['predict', modelFile, '--checkpoint', ckpt, '--data', data, '--count', '8', '--out', path.join(dir, 'grid.png'), '--json']));
      const pytorch = ok<Prediction[]>(torch(['logits', '--model', 'resnet', ...flags, '--checkpoint', ckpt, '--data', data, '--count', '8']));
      const scale = Math.max(...tsc.flatMap((p) => p.logits.map(Math.abs)));
      expect(scale).toBeGreaterThan(0.1);
      expect(maxAbsDiff(pytorch, tsc) / scale).toBeLessThan(1e-5);

      const exported = path.join(dir, 'state_dict.safetensors');
      ok(torch(['export-state-dict', '--model', 'resnet', ...flags, '--checkpoint', ckpt, '--out', exported]));
      const a = ok<EvalJson>(cli(['eval', modelFile, '--checkpoint', exported, ...flags, '--data', data, '--json']));
      const b = ok<EvalJson>(cli(['eval', modelFile, '--checkpoint', ckpt, '--data', data, '--json']));
      expect(a.format).toBe('state_dict');
      expect({ loss: a.loss, top1: a.top1, top5: a.top5 }).toEqual({ loss: b.loss, top1: b.top1, top5: b.top5 });
    }, SLOW);

    it('a state_dict with a tensor missing or renamed is one error line listing what is missing and what is extra', async () => {
      const content = await readSafetensors(stateDict);
      const variant = async (file: string, edit: (t: typeof content.tensors) => void): Promise<string> => {
        const tensors = new Map(content.tensors);
        edit(tensors);
        const out = path.join(tmp(), 'pytorch', file);
        await writeSafetensors(out, tensors);
        return out;
      };
      const removed = await variant('removed.safetensors', (t) => t.delete('features.5.branch_main_2.3.running_var'));
      const renamed = await variant('renamed.safetensors', (t) => {
        t.set('classifier.kernel', t.get('classifier.weight')!);
        t.delete('classifier.weight');
      });
      const both = await variant('both.safetensors', (t) => {
        t.delete('features.5.branch_main_2.3.running_var');
        t.set('classifier.kernel', t.get('classifier.weight')!);
        t.delete('classifier.weight');
      });
      const evalLine = (file: string) => oneLine(cli(['eval', '--checkpoint', file, ...SHUFFLENET_FLAGS, '--data', data]), 'tsc-nn eval: ');
      const stateDictOf = (file: string) => `${file} does not match the model (a state_dict without tsc-nn metadata): `;

      expect(evalLine(removed)).toBe(`tsc-nn eval: ${stateDictOf(removed)}missing (1): features.5.branch_main_2.3.running_var`);
      expect(evalLine(renamed)).toBe(`tsc-nn eval: ${stateDictOf(renamed)}missing (1): classifier.weight; extra (1): classifier.kernel`);
      expect(evalLine(both)).toBe(`tsc-nn eval: ${stateDictOf(both)}missing (2): features.5.branch_main_2.3.running_var, classifier.weight; extra (1): classifier.kernel`);
      const predictLine = oneLine(cli(['predict', '--checkpoint', renamed, ...SHUFFLENET_FLAGS, '--data', data, '--out', path.join(tmp(), 'never.png')]), 'tsc-nn predict: ');
      expect(predictLine).toMatch(/missing \(1\): classifier\.weight; extra \(1\): classifier\.kernel$/);
      expect(fs.existsSync(path.join(tmp(), 'never.png'))).toBe(false);
      // PyTorch's side refuses it the same way (strict loading), in one line.
      const torchLine = oneLine(torch(['eval', '--model', 'shufflenet', ...SHUFFLENET_FLAGS, '--checkpoint', both, '--data', data]), 'roundtrip.py eval: ');
      expect(torchLine).toMatch(/missing \(2\): features\.5\.branch_main_2\.3\.running_var, classifier\.weight; extra \(1\): classifier\.kernel$/);
    }, SLOW);

    describe.skipIf(!realData)(`on the real CIFAR-10 test set${realData ? ` (${realData})` : ' (skipped: set CIFAR10_PATH to cifar-10-binary.tar.gz to run)'}`, () => {
      it('PyTorch\'s top-1 of the pretrained 0.5x checkpoint equals tsc-nn eval\'s on the PyTorch-written state_dict', () => {
        const pytorch = ok<TorchEval>(torch(['eval', '--model', 'shufflenet', ...SHUFFLENET_FLAGS, '--checkpoint', tscCkpt, '--data', realData!], 3_000_000));
        const tsc = ok<EvalJson>(cli(['eval', '--checkpoint', stateDict, ...SHUFFLENET_FLAGS, '--data', realData!, '--json'], 1_800_000));
        console.log(`full test set: PyTorch top-1 ${(100 * pytorch.top1).toFixed(2)} % top-5 ${(100 * pytorch.top5).toFixed(2)} % loss ${pytorch.loss.toFixed(6)}; `
          + `tsc-nn top-1 ${(100 * tsc.top1).toFixed(2)} % top-5 ${(100 * tsc.top5).toFixed(2)} % loss ${tsc.loss.toFixed(6)}`);
        expect(pytorch.images).toBe(10_000);
        expect(tsc.images).toBe(10_000);
        expect((100 * pytorch.top1).toFixed(2)).toBe((100 * tsc.top1).toFixed(2));
        expect((100 * pytorch.top5).toFixed(2)).toBe((100 * tsc.top5).toFixed(2));
        expect(Math.abs(pytorch.loss - tsc.loss)).toBeLessThan(1e-4);
      }, 5_400_000); // minutes on an idle machine; far longer under load
    });
  },
);
