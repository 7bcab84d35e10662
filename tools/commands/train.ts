// `tsc-nn train`: ShuffleNetV1 on CIFAR-10 as the seed trains it (label smoothing 0.1, Momentum 0.9 + weight
// decay 4e-5, 4 warm-up epochs then cosine decay 0.05 -> 0.0005), with checkpoints, exact resume and logs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { shufflenet, type ShuffleNetConfig } from '../../src/models/shufflenet';
import { createBackend } from '../../src/runtime/backend';
import { loadCifar10 } from '../../src/runtime/data/cifar10';
import { BatchLoader, stepsPerEpoch } from '../../src/runtime/data/batches';
import { initParams } from '../../src/runtime/init';
import { learningRate, type LrSchedule } from '../../src/runtime/schedule';
import { Predictor, TrainStep, topKHits, type TensorMap } from '../../src/runtime/session';
import { compileModel, tensorShapes } from '../../src/runtime/programs';
import { evalLogLine, evaluate, type EvalResult } from '../../src/runtime/evaluate';
import { checkpointName, pruneCheckpoints } from '../../src/runtime/checkpoint/checkpoints';
import { checkTensors, loadCheckpoint, saveCheckpoint } from '../../src/runtime/checkpoint/model-checkpoint';
import { ProgressBar, formatSeconds } from '../../src/runtime/report/progress';
import { lossCurveSvg } from '../../src/runtime/report/plots';
import { atomicWrite } from '../../src/runtime/atomic';
import { dataOptions, resolveData } from './data-flags';
import { positiveInt, type Command, type ParsedArgs } from './common';

/** Settings that determine the run exactly; stored in checkpoints so `--resume` continues the same run. */
interface TrainingSettings {
  readonly seed: number;
  readonly batch: number;
  readonly epochs: number;
  readonly lr: number;
  readonly lrEnd: number;
  readonly warmupEpochs: number;
}

const number = (flag: string, v: string | boolean | undefined, fallback: number): number => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || n < 0) throw new UserError(`--${flag} must be a non-negative number (got ${String(v)})`);
  return n;
};

export function modelConfig(values: ParsedArgs['values'], base: Partial<ShuffleNetConfig>): ShuffleNetConfig {
  const o: Partial<ShuffleNetConfig> = { ...base };
  if (typeof values.size === 'string') o.size = values.size as ShuffleNetConfig['size'];
  if (values.group !== undefined) o.group = positiveInt('group', values.group, 3);
  if (values.classes !== undefined) o.classes = positiveInt('classes', values.classes, 10);
  if (typeof values.stem === 'string') o.stem = values.stem as ShuffleNetConfig['stem'];
  if (values.resolution !== undefined) o.resolution = positiveInt('resolution', values.resolution, 32);
  if (values['zero-init-residual']) o.zeroInitResidual = true;
  return shufflenet.configure!(o);
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train ShuffleNetV1 on CIFAR-10 (checkpoints, --resume, JSONL log, loss curve)',
  usage: 'tsc-nn train --data PATH|--download [--size 2.0x] [--group 3] [--stem cifar|imagenet] [--classes 10] [--batch 128] [--epochs 250] [--lr 0.05] [--lr-end 0.0005] [--warmup-epochs 4] [--resolution 32] [--seed 1] [--backend auto] [--out DIR] [--max-steps N] [--save-every N] [--keep 5] [--resume CHECKPOINT] [--no-eval] [--zero-init-residual]',
  options: {
    ...dataOptions,
    size: { type: 'string' }, group: { type: 'string' }, stem: { type: 'string' }, classes: { type: 'string' },
    batch: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, 'lr-end': { type: 'string' },
    'warmup-epochs': { type: 'string' }, resolution: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' },
    out: { type: 'string' }, 'max-steps': { type: 'string' }, 'save-every': { type: 'string' }, keep: { type: 'string' },
    resume: { type: 'string' }, 'no-eval': { type: 'boolean' }, 'zero-init-residual': { type: 'boolean' },
  },
  async run({ values }) {
    const resumed = typeof values.resume === 'string' ? await loadCheckpoint(values.resume) : undefined;
    const prior = resumed?.training as Partial<TrainingSettings> | undefined;
    const config = modelConfig(values, (resumed?.config ?? {}) as Partial<ShuffleNetConfig>);
    const settings: TrainingSettings = {
      seed: positiveInt('seed', values.seed, prior?.seed ?? 1),
      batch: positiveInt('batch', values.batch, prior?.batch ?? 128),
      epochs: positiveInt('epochs', values.epochs, prior?.epochs ?? 250),
      lr: number('lr', values.lr, prior?.lr ?? 0.05),
      lrEnd: number('lr-end', values['lr-end'], prior?.lrEnd ?? 0.0005),
      warmupEpochs: number('warmup-epochs', values['warmup-epochs'], prior?.warmupEpochs ?? 4),
    };
    const maxSteps = values['max-steps'] === undefined ? Infinity : positiveInt('max-steps', values['max-steps'], 1);
    const saveEvery = values['save-every'] === undefined ? 0 : positiveInt('save-every', values['save-every'], 1);
    const keep = positiveInt('keep', values.keep, 5);
    const out = typeof values.out === 'string' ? values.out : path.join('runs', `shufflenet-${config.size}-g${config.group}-${config.stem}`);
    const backend = createBackend(typeof values.backend === 'string' ? values.backend : 'auto');
    const dataPath = await resolveData(values);
    fs.mkdirSync(out, { recursive: true });

    const t0 = Date.now();
    const program = await compileModel(shufflenet, config, 'train', settings.batch);
    const shapes = tensorShapes(shufflenet, config);
    const initial: TensorMap = resumed ? resumed.tensors : initParams(shufflenet.params(config), settings.seed);
    if (resumed) {
      const expected = new Map(shapes);
      for (const s of program.graph.sources('state')) expected.set(s.name!, s.shape);
      checkTensors(values.resume as string, resumed, expected);
    }
    const step = new TrainStep(program.graph, backend, initial);
    const tensors = step.tensors;
    for (const s of program.graph.sources('state')) if (s.name!.startsWith('momentum.')) shapes.set(s.name!, s.shape);
    console.log(`compiled ${program.graph.nodes.filter((n) => n.expr).length} kernels${program.cached ? ' (cached)' : ''} in ${Date.now() - t0} ms; backend ${backend.name}`);

    const train = await loadCifar10(dataPath, 'train');
    const loader = new BatchLoader(train, { batchSize: settings.batch, seed: settings.seed, train: true, resize: config.resolution }, { prefetch: 'auto' });
    const steps = stepsPerEpoch(train.count, { batchSize: settings.batch, train: true });
    const schedule: LrSchedule = { base: settings.lr, final: settings.lrEnd, warmupEpochs: settings.warmupEpochs, epochs: settings.epochs, stepsPerEpoch: steps };
    const logFile = path.join(out, 'train_log.jsonl');
    let globalStep = resumed?.step ?? 0;
    const firstStep = globalStep;
    let lastCheckpoint = typeof values.resume === 'string' ? values.resume : '(none yet)';
    // A checkpoint saved after step k is known good only once step k + 1 computes a finite loss from its weights.
    let lastGood: string | undefined;
    let unproven: { file: string; ours: boolean } | undefined = typeof values.resume === 'string' ? { file: values.resume, ours: false } : undefined;

    const save = async (): Promise<void> => {
      const epoch = Math.floor(globalStep / steps);
      const inEpoch = globalStep % steps;
      // Named like the seed's: completed epochs, then steps into the next (or the epoch's last step).
      const file = path.join(out, inEpoch === 0 ? checkpointName(epoch, steps) : checkpointName(epoch + 1, inEpoch));
      await saveCheckpoint(file, tensors, shapes, { config: { model: 'shufflenet', ...config }, epoch, step: globalStep, training: { ...settings } });
      await pruneCheckpoints(out, keep);
      lastCheckpoint = file;
      unproven = { file, ours: true };
    };

    let interrupted = false;
    const onSigint = (): void => { interrupted = true; };
    process.on('SIGINT', onSigint);
    try {
      for (let epoch = Math.floor(globalStep / steps); epoch < settings.epochs && globalStep - firstStep < maxSteps && !interrupted; epoch++) {
        const epochStart = Date.now();
        const bar = new ProgressBar(`epoch ${epoch + 1}/${settings.epochs}`, steps);
        let epochLoss = 0;
        let epochSteps = 0;
        for await (const batch of loader.epoch(epoch, globalStep % steps)) {
          const stepStart = Date.now();
          const lr = learningRate(schedule, globalStep);
          const { loss, logits } = step.run(batch.x, batch.y, lr);
          if (!Number.isFinite(loss)) {
            let culprit = '';
            if (unproven?.ours) {
              // Its weights are the ones that gave the non-finite loss: keep it out of rotation and of --resume.
              const aside = `${unproven.file}.nonfinite`;
              fs.renameSync(unproven.file, aside);
              culprit = `; the weights saved in ${unproven.file} gave it (moved aside to ${aside})`;
            } else if (unproven) {
              culprit = `; the weights of ${unproven.file} (--resume) gave it`;
            }
            const good = lastGood === undefined ? 'no checkpoint of this run is good'
              : fs.existsSync(lastGood) ? `the last good checkpoint is ${lastGood}` : `the last good checkpoint, ${lastGood}, was rotated away (--keep ${keep})`;
            throw new UserError(`loss is ${loss} at step ${globalStep + 1} (epoch ${epoch + 1}): training stopped${culprit}; ${good}`);
          }
          if (unproven) {
            lastGood = unproven.file;
            unproven = undefined;
          }
          globalStep++;
          epochLoss += loss;
          epochSteps++;
          const ms = Date.now() - stepStart;
          const top1 = topKHits(logits, batch.y, config.classes, 1) / batch.size;
          fs.appendFileSync(logFile, `${JSON.stringify({ epoch: epoch + 1, step: globalStep, loss, lr, top1, ms, imagesPerSec: (1000 * batch.size) / ms, time: new Date().toISOString() })}\n`);
          bar.update(batch.step + 1, `loss ${loss.toFixed(3)} lr ${lr.toFixed(4)} ${((1000 * batch.size) / ms).toFixed(1)} img/s`);
          if (saveEvery && globalStep % saveEvery === 0) await save();
          if (interrupted || globalStep - firstStep >= maxSteps) break;
        }
        bar.done();
        const epochMs = Date.now() - epochStart;
        if (epochSteps > 0) {
          console.log(`epoch: ${epoch + 1} step: ${globalStep - epoch * steps}, loss is ${(epochLoss / epochSteps).toFixed(4)}`);
          console.log(`epoch time: ${epochMs.toFixed(3)} ms, per step time: ${(epochMs / epochSteps).toFixed(3)} ms`);
        }
        await save();
      }
    } finally {
      process.off('SIGINT', onSigint);
      await loader.close();
    }
    if (interrupted) {
      console.log(`interrupted: saved ${lastCheckpoint}; continue with --resume ${lastCheckpoint}`);
      process.exitCode = 130;
      return;
    }
    console.log(`saved ${lastCheckpoint} after ${globalStep} steps (${formatSeconds((Date.now() - t0) / 1000)})`);

    let evalResult: EvalResult | undefined;
    if (!values['no-eval']) {
      const infer = await compileModel(shufflenet, config, 'infer', settings.batch);
      const test = await loadCifar10(dataPath, 'test');
      evalResult = await evaluate(new Predictor(infer.graph, backend, tensors), test, config.resolution, { progress: true });
      console.log(`test: loss ${evalResult.loss.toFixed(4)}, top-1 ${(100 * evalResult.top1).toFixed(2)}%, top-5 ${(100 * evalResult.top5).toFixed(2)}% on ${evalResult.images} images`);
      fs.appendFileSync(path.join(out, 'eval_log.txt'), evalLogLine(lastCheckpoint, evalResult, test.source));
    }
    await writeCurves(logFile, path.join(out, 'curves.svg'));
  },
};

/** Loss and training accuracy per step (averaged over windows), as an SVG picture beside the log. */
async function writeCurves(logFile: string, svgFile: string): Promise<void> {
  const rows = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number; top1: number });
  const window = Math.max(1, Math.floor(rows.length / 200));
  const smooth = (key: 'loss' | 'top1'): [number, number][] => {
    const pts: [number, number][] = [];
    for (let i = 0; i + window <= rows.length; i += window) {
      const slice = rows.slice(i, i + window);
      pts.push([slice[slice.length - 1]!.step, slice.reduce((a, r) => a + r[key], 0) / slice.length]);
    }
    return pts;
  };
  const svg = lossCurveSvg([{ name: 'training loss', points: smooth('loss') }, { name: 'training top-1', points: smooth('top1') }], { title: 'ShuffleNetV1 on CIFAR-10', xLabel: 'step', yLabel: 'loss / accuracy' });
  await atomicWrite(svgFile, Buffer.from(svg));
}

