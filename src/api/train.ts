// Training any classifier written in the DSL on CIFAR-10: the seed's recipe (random crop + flip, label smoothing,
// Momentum SGD with weight decay, linear warm-up then cosine decay per step), checkpoints written atomically and
// rotated, exact resume, a JSONL log and a loss curve. `tsc-nn train` is a thin shell over `trainModel`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../ir/errors';
import type { ModelDef } from '../ir/model';
import { createBackend, type Backend } from '../backends/registry';
import { loadCifar10 } from '../runtime/data/cifar10';
import { BatchLoader, stepsPerEpoch } from '../runtime/data/batches';
import { initParams } from '../runtime/init';
import { learningRate, type LrSchedule } from '../runtime/schedule';
import { Predictor, TrainStep, topKHits, type TensorMap } from '../runtime/session';
import { evalLogLine, evaluate, type EvalResult } from '../runtime/evaluate';
import { checkpointName, DEFAULT_CHECKPOINT_PREFIX, pruneCheckpoints } from '../runtime/checkpoint/checkpoints';
import { saveCheckpoint } from '../runtime/checkpoint/model-checkpoint';
import { ProgressBar, formatSeconds } from '../runtime/report/progress';
import { lossCurveSvg } from '../runtime/report/plots';
import { atomicWrite } from '../platform/atomic';
import { compilePrograms, tensorShapes } from './programs';
import { configure, imageSide, logitClasses } from './classifier';
import { openModelCheckpoint } from './checkpoint';

/** Settings that determine a run exactly; stored in checkpoints so `resume` continues the same run. */
export interface TrainingSettings {
  readonly seed: number;
  readonly batch: number;
  readonly epochs: number;
  readonly lr: number;
  readonly lrEnd: number;
  readonly warmupEpochs: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly labelSmoothing: number;
}

/** The seed's schedule and optimizer (MindSpore's ShuffleNet tutorial). */
export const SEED_SETTINGS: TrainingSettings = {
  seed: 1, batch: 128, epochs: 250, lr: 0.05, lrEnd: 0.0005, warmupEpochs: 4, momentum: 0.9, weightDecay: 4e-5, labelSmoothing: 0.1,
};

export interface StepInfo {
  readonly epoch: number;
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  /** Training top-1 of this batch. */
  readonly top1: number;
  readonly ms: number;
}

export interface TrainOptions<C extends object> extends Partial<TrainingSettings> {
  /** CIFAR-10: the official archive, its cifar-10-batches-bin folder or one .bin file. */
  readonly data: string;
  /** Configuration overrides (over the model's defaults, or over the resumed checkpoint's configuration). */
  readonly config?: Partial<C>;
  /** Stop after this many steps of this call (the schedule still spans `epochs`). */
  readonly maxSteps?: number;
  /** Checkpoint folder; default runs/<model name>. */
  readonly out?: string;
  readonly backend?: string | Backend;
  /** Also save every N steps (checkpoints are always saved at the end of each epoch). */
  readonly saveEvery?: number;
  /** Checkpoints kept in `out` (default 5). */
  readonly keep?: number;
  /** Continue the run saved in this checkpoint exactly (weights, momentum, step, schedule, data order). */
  readonly resume?: string;
  /** Start from these weights (a tsc-nn checkpoint or a PyTorch state_dict saved as safetensors), step 0. */
  readonly initFrom?: string;
  /** Evaluate on the test split when done (default true). */
  readonly eval?: boolean;
  readonly onStep?: (info: StepInfo) => void;
  /** Progress lines (compile, epochs, results); default silent. */
  readonly log?: (line: string) => void;
  /** Draw a progress bar per epoch on stderr. */
  readonly progress?: boolean;
  /** Abort: the step in flight finishes, a checkpoint is saved and the result says `interrupted`. */
  readonly signal?: AbortSignal;
}

export interface TrainResult<C extends object> {
  readonly config: C;
  readonly settings: TrainingSettings;
  /** The last checkpoint written (or resumed from); empty when the run was stopped before its first step. */
  readonly checkpoint: string;
  readonly history: readonly StepInfo[];
  readonly steps: number;
  readonly seconds: number;
  readonly interrupted: boolean;
  readonly eval?: EvalResult;
  readonly backend: string;
  /** The trained tensors (parameters, BN statistics, momentum). */
  readonly tensors: TensorMap;
}

const checkpointPrefix = (model: ModelDef<any>): string => (model.name === 'shufflenet' ? DEFAULT_CHECKPOINT_PREFIX : model.name);

function checkSettings(s: TrainingSettings): void {
  for (const key of ['seed', 'batch', 'epochs'] as const) {
    if (!Number.isInteger(s[key]) || s[key] <= 0) throw new UserError(`${key} must be a positive integer (got ${s[key]})`);
  }
  for (const key of ['lr', 'lrEnd', 'warmupEpochs', 'momentum', 'weightDecay', 'labelSmoothing'] as const) {
    if (!Number.isFinite(s[key]) || s[key] < 0) throw new UserError(`${key} must be a non-negative number (got ${s[key]})`);
  }
  if (s.labelSmoothing >= 1) throw new UserError(`labelSmoothing must be below 1 (got ${s.labelSmoothing})`);
}

export async function trainModel<C extends object>(model: ModelDef<C>, opts: TrainOptions<C>): Promise<TrainResult<C>> {
  const log = opts.log ?? ((): void => {});
  if (opts.resume && opts.initFrom) throw new UserError('resume and initFrom exclude each other: resume continues a run, initFrom starts a new one from weights');
  const resumed = opts.resume ? await openModelCheckpoint(model, opts.resume, { overrides: opts.config, training: true }) : undefined;
  const config = resumed?.config ?? configure(model, opts.config);
  const prior = (resumed?.checkpoint.training ?? {}) as Partial<TrainingSettings>;
  const pick = <K extends keyof TrainingSettings>(k: K): TrainingSettings[K] => opts[k] ?? prior[k] ?? SEED_SETTINGS[k];
  const settings: TrainingSettings = {
    seed: pick('seed'), batch: pick('batch'), epochs: pick('epochs'), lr: pick('lr'), lrEnd: pick('lrEnd'), warmupEpochs: pick('warmupEpochs'),
    momentum: pick('momentum'), weightDecay: pick('weightDecay'), labelSmoothing: pick('labelSmoothing'),
  };
  checkSettings(settings);
  const maxSteps = opts.maxSteps ?? Infinity;
  const keep = opts.keep ?? 5;
  const side = imageSide(model, config);
  const initial = opts.initFrom ? await openModelCheckpoint(model, opts.initFrom, { overrides: opts.config, training: false }) : undefined;
  if (initial && JSON.stringify(initial.config) !== JSON.stringify(config)) {
    throw new UserError(`${opts.initFrom}: a checkpoint of ${JSON.stringify(initial.config)}, but this run trains ${JSON.stringify(config)}`);
  }
  const out = opts.out ?? path.join('runs', model.name);
  const backend = typeof opts.backend === 'object' ? opts.backend : createBackend(opts.backend ?? 'auto');
  fs.mkdirSync(out, { recursive: true });

  const t0 = Date.now();
  const program = await compilePrograms(model, config, 'train', settings.batch, {
    optimizer: { momentum: settings.momentum, weightDecay: settings.weightDecay }, labelSmoothing: settings.labelSmoothing,
  });
  const classes = logitClasses(model, program.graph, settings.batch);
  const shapes = tensorShapes(model, config);
  const start: TensorMap = resumed?.tensors ?? initial?.tensors ?? initParams(model.params(config), settings.seed);
  const step = new TrainStep(program.graph, backend, start);
  const tensors = step.tensors;
  for (const s of program.graph.sources('state')) shapes.set(s.name!, s.shape);
  log(`compiled ${program.graph.nodes.filter((n) => n.expr).length} kernels${program.cached ? ' (cached)' : ''} in ${Date.now() - t0} ms; backend ${backend.name}`);

  const train = await loadCifar10(opts.data, 'train');
  for (let i = 0; i < train.count; i++) {
    if (train.labels[i]! >= classes) throw new UserError(`${train.source}: image ${i} has label ${train.labels[i]}, but model ${model.name} has ${classes} classes`);
  }
  const loader = new BatchLoader(train, { batchSize: settings.batch, seed: settings.seed, train: true, resize: side }, { prefetch: 'auto' });
  const steps = stepsPerEpoch(train.count, { batchSize: settings.batch, train: true });
  if (steps === 0) throw new UserError(`${train.source} holds ${train.count} images, fewer than one batch of ${settings.batch}`);
  const schedule: LrSchedule = { base: settings.lr, final: settings.lrEnd, warmupEpochs: settings.warmupEpochs, epochs: settings.epochs, stepsPerEpoch: steps };
  const logFile = path.join(out, 'train_log.jsonl');
  const prefix = checkpointPrefix(model);
  let globalStep = resumed?.checkpoint.step ?? 0;
  const firstStep = globalStep;
  let lastCheckpoint = opts.resume ?? '';
  // A checkpoint saved after step k is known good only once step k + 1 computes a finite loss from its weights.
  let lastGood: string | undefined;
  let unproven: { file: string; ours: boolean } | undefined = opts.resume ? { file: opts.resume, ours: false } : undefined;
  const history: StepInfo[] = [];

  const save = async (): Promise<void> => {
    const epoch = Math.floor(globalStep / steps);
    const inEpoch = globalStep % steps;
    // Named like the seed's: completed epochs, then steps into the next (or the epoch's last step).
    const file = path.join(out, inEpoch === 0 ? checkpointName(epoch, steps, prefix) : checkpointName(epoch + 1, inEpoch, prefix));
    await saveCheckpoint(file, tensors, shapes, { config: { model: model.name, ...config }, epoch, step: globalStep, training: { ...settings } });
    await pruneCheckpoints(out, keep, prefix);
    lastCheckpoint = file;
    unproven = { file, ours: true };
  };

  const stopped = (): boolean => opts.signal?.aborted === true;
  try {
    for (let epoch = Math.floor(globalStep / steps); epoch < settings.epochs && globalStep - firstStep < maxSteps && !stopped(); epoch++) {
      const epochStart = Date.now();
      const bar = opts.progress ? new ProgressBar(`epoch ${epoch + 1}/${settings.epochs}`, steps) : undefined;
      let epochLoss = 0;
      let epochSteps = 0;
      for await (const batch of loader.epoch(epoch, globalStep % steps)) {
        const stepStart = Date.now();
        const lr = learningRate(schedule, globalStep);
        const { loss, logits } = step.run(batch.x, batch.y, lr);
        if (!Number.isFinite(loss)) throw nonFiniteLoss(loss, globalStep, epoch, unproven, lastGood, keep);
        if (unproven) {
          lastGood = unproven.file;
          unproven = undefined;
        }
        globalStep++;
        epochLoss += loss;
        epochSteps++;
        const info: StepInfo = { epoch: epoch + 1, step: globalStep, loss, lr, top1: topKHits(logits, batch.y, classes, 1) / batch.size, ms: Date.now() - stepStart };
        history.push(info);
        fs.appendFileSync(logFile, `${JSON.stringify({ ...info, imagesPerSec: (1000 * batch.size) / info.ms, time: new Date().toISOString() })}\n`);
        bar?.update(batch.step + 1, `loss ${loss.toFixed(3)} lr ${lr.toFixed(4)} ${((1000 * batch.size) / info.ms).toFixed(1)} img/s`);
        opts.onStep?.(info);
        if (opts.saveEvery && globalStep % opts.saveEvery === 0) await save();
        if (stopped() || globalStep - firstStep >= maxSteps) break;
      }
      bar?.done();
      const epochMs = Date.now() - epochStart;
      if (epochSteps > 0) {
        log(`epoch: ${epoch + 1} step: ${globalStep - epoch * steps}, loss is ${(epochLoss / epochSteps).toFixed(4)}`);
        log(`epoch time: ${epochMs.toFixed(3)} ms, per step time: ${(epochMs / epochSteps).toFixed(3)} ms`);
      }
      await save();
    }
  } finally {
    await loader.close();
  }
  const seconds = (Date.now() - t0) / 1000;
  const result = { config, settings, checkpoint: lastCheckpoint, history, steps: globalStep, seconds, backend: backend.name, tensors };
  if (stopped()) {
    step.close();
    return { ...result, interrupted: true };
  }
  log(`saved ${lastCheckpoint} after ${globalStep} steps (${formatSeconds(seconds)})`);
  let evalResult: EvalResult | undefined;
  if (opts.eval !== false) {
    step.close();
    const infer = await compilePrograms(model, config, 'infer', settings.batch);
    const test = await loadCifar10(opts.data, 'test');
    const predictor = new Predictor(infer.graph, backend, tensors);
    try {
      evalResult = await evaluate(predictor, test, side, { progress: opts.progress });
    } finally {
      predictor.close();
    }
    log(`test: loss ${evalResult.loss.toFixed(4)}, top-1 ${(100 * evalResult.top1).toFixed(2)}%, top-5 ${(100 * evalResult.top5).toFixed(2)}% on ${evalResult.images} images`);
    fs.appendFileSync(path.join(out, 'eval_log.txt'), evalLogLine(lastCheckpoint, evalResult, test.source));
  } else {
    step.close();
  }
  await writeCurves(logFile, path.join(out, 'curves.svg'), model.name);
  return { ...result, interrupted: false, eval: evalResult };
}

function nonFiniteLoss(loss: number, globalStep: number, epoch: number, unproven: { file: string; ours: boolean } | undefined, lastGood: string | undefined, keep: number): UserError {
  let culprit = '';
  if (unproven?.ours) {
    // Its weights are the ones that gave the non-finite loss: keep it out of rotation and of resume.
    const aside = `${unproven.file}.nonfinite`;
    fs.renameSync(unproven.file, aside);
    culprit = `; the weights saved in ${unproven.file} gave it (moved aside to ${aside})`;
  } else if (unproven) {
    culprit = `; the weights of ${unproven.file} (--resume) gave it`;
  }
  const good = lastGood === undefined ? 'no checkpoint of this run is good'
    : fs.existsSync(lastGood) ? `the last good checkpoint is ${lastGood}` : `the last good checkpoint, ${lastGood}, was rotated away (--keep ${keep})`;
  return new UserError(`loss is ${loss} at step ${globalStep + 1} (epoch ${epoch + 1}): training stopped${culprit}; ${good}`);
}

/** Loss and training accuracy per step (averaged over windows), as an SVG picture beside the log. */
export async function writeCurves(logFile: string, svgFile: string, modelName: string): Promise<void> {
  // A resumed run logs again the steps after its checkpoint that an interrupted run had logged: the latest wins.
  const byStep = new Map<number, { step: number; loss: number; top1: number }>();
  for (const line of fs.readFileSync(logFile, 'utf8').trim().split('\n')) {
    const row = JSON.parse(line) as { step: number; loss: number; top1: number };
    byStep.set(row.step, row);
  }
  const rows = [...byStep.values()].sort((a, b) => a.step - b.step);
  const window = Math.max(1, Math.floor(rows.length / 200));
  const smooth = (key: 'loss' | 'top1'): [number, number][] => {
    const pts: [number, number][] = [];
    for (let i = 0; i + window <= rows.length; i += window) {
      const slice = rows.slice(i, i + window);
      pts.push([slice[slice.length - 1]!.step, slice.reduce((a, r) => a + r[key], 0) / slice.length]);
    }
    return pts;
  };
  const svg = lossCurveSvg([{ name: 'training loss', points: smooth('loss') }, { name: 'training top-1', points: smooth('top1') }], { title: `${modelName} on CIFAR-10`, xLabel: 'step', yLabel: 'loss / accuracy' });
  await atomicWrite(svgFile, Buffer.from(svg));
}
