// `tsc-nn eval`: a checkpoint's loss, top-1 and top-5 accuracy on the CIFAR-10 test split, through the BN-folded
// inference program. The model configuration comes from the checkpoint (flags like --size override it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { shufflenet, type ShuffleNetConfig } from '../../src/models/shufflenet';
import { createBackend, type Backend } from '../../src/runtime/backend';
import { loadCifar10, type Cifar10Data } from '../../src/runtime/data/cifar10';
import { Predictor } from '../../src/runtime/session';
import { compileModel, tensorShapes } from '../../src/runtime/programs';
import { evalLogLine, evaluate } from '../../src/runtime/evaluate';
import { checkTensors, loadCheckpoint, type LoadedCheckpoint } from '../../src/runtime/checkpoint/model-checkpoint';
import { dataOptions, resolveData } from './data-flags';
import { modelConfig } from './train';
import { positiveInt, type Command, type ParsedArgs } from './common';

/** Flags shared by eval and predict: the checkpoint, the data, the backend and configuration overrides. */
export const inferenceOptions = {
  ...dataOptions,
  checkpoint: { type: 'string' }, backend: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' },
  size: { type: 'string' }, group: { type: 'string' }, stem: { type: 'string' }, classes: { type: 'string' }, resolution: { type: 'string' },
} as const;

const MODEL_FLAGS = ['size', 'group', 'stem', 'classes', 'resolution'] as const;

export interface OpenedCheckpoint {
  readonly file: string;
  readonly checkpoint: LoadedCheckpoint;
  readonly config: ShuffleNetConfig;
  readonly dataPath: string;
}

/**
 * Checks the flags, reads the checkpoint and its configuration (flags override it) and verifies its tensors fit
 * that configuration, all before any compiling or data loading.
 */
export async function openCheckpoint(command: string, values: ParsedArgs['values']): Promise<OpenedCheckpoint> {
  if (typeof values.checkpoint !== 'string') {
    throw new UserError(`${command} needs a checkpoint: --checkpoint FILE (a .safetensors file written by tsc-nn train)`);
  }
  const file = values.checkpoint;
  const dataPath = await resolveData(values);
  const checkpoint = await loadCheckpoint(file);
  const { model, ...stored } = checkpoint.config;
  if (model !== undefined && model !== shufflenet.name) throw new UserError(`${file}: a checkpoint of model ${String(model)}; ${command} runs ${shufflenet.name}`);
  try {
    modelConfig({}, stored as Partial<ShuffleNetConfig>);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${file}: configuration ${JSON.stringify(checkpoint.config)}: ${e.message}`);
    throw e;
  }
  const config = modelConfig(values, stored as Partial<ShuffleNetConfig>);
  const overrides = MODEL_FLAGS.filter((f) => values[f] !== undefined).map((f) => `--${f} ${String(values[f])}`);
  try {
    checkTensors(file, checkpoint, tensorShapes(shufflenet, config));
  } catch (e) {
    if (e instanceof UserError && overrides.length) throw new UserError(`${e.message} (flags override the checkpoint's configuration: ${overrides.join(' ')})`);
    throw e;
  }
  return { file, checkpoint, config, dataPath };
}

/** Labels must index the classifier's outputs. */
export function checkLabels(data: Cifar10Data, classes: number, count = data.count): void {
  for (let i = 0; i < count; i++) {
    if (data.labels[i]! >= classes) throw new UserError(`${data.source}: image ${i} has label ${data.labels[i]}, but the model has ${classes} classes`);
  }
}

/** The BN-folded inference program for `batch` images, fed with the checkpoint's tensors. */
export async function makePredictor(opened: OpenedCheckpoint, backend: Backend, batch: number): Promise<Predictor> {
  const program = await compileModel(shufflenet, opened.config, 'infer', batch);
  return new Predictor(program.graph, backend, opened.checkpoint.tensors);
}

export const describeConfig = (c: ShuffleNetConfig): string => `shufflenet ${c.size}, group ${c.group}, stem ${c.stem}, ${c.classes} classes, ${c.resolution}x${c.resolution}`;

export const evalCommand: Command = {
  name: 'eval',
  summary: 'evaluate a checkpoint on the CIFAR-10 test split (loss, top-1, top-5)',
  usage: 'tsc-nn eval --checkpoint FILE --data PATH|--download [--json] [--backend auto] [--batch 128] [--size 0.5x] [--group 3] [--stem cifar|imagenet] [--classes 10] [--resolution 32]',
  options: inferenceOptions,
  async run({ values }) {
    const opened = await openCheckpoint('eval', values);
    const { file, checkpoint, config } = opened;
    const json = values.json === true;
    // Under --json stdout holds the result object only; everything else goes to stderr.
    const info = (line: string): void => { if (json) console.error(line); else console.log(line); };
    const backend = createBackend(typeof values.backend === 'string' ? values.backend : 'auto');
    const test = await loadCifar10(opened.dataPath, 'test');
    checkLabels(test, config.classes);
    const batch = positiveInt('batch', values.batch, Math.min(128, test.count));
    const t0 = Date.now();
    const predictor = await makePredictor(opened, backend, batch);
    info(`${file}: ${describeConfig(config)}; epoch ${checkpoint.epoch}, step ${checkpoint.step}`);
    info(`compiled the inference program (batch ${batch}) in ${Date.now() - t0} ms; backend ${backend.name}; ${test.count} test images from ${test.source}`);
    const r = await evaluate(predictor, test, config.resolution, { progress: !json });
    const fields = {
      checkpoint: file, data: test.source, config: { model: shufflenet.name, ...config }, epoch: checkpoint.epoch, step: checkpoint.step,
      backend: backend.name, batch, loss: r.loss, top1: r.top1, top5: r.top5, images: r.images, seconds: r.seconds, imagesPerSec: r.imagesPerSec,
    };
    const log = path.join(path.dirname(file), 'eval_log.txt');
    try {
      fs.appendFileSync(log, evalLogLine(file, r, test.source));
    } catch (e) {
      console.error(`tsc-nn eval: warning: cannot append to ${log}: ${(e as Error).message}`);
    }
    if (json) {
      console.log(JSON.stringify(fields));
      return;
    }
    console.log(`loss   ${r.loss.toFixed(4)}`);
    console.log(`top-1  ${(100 * r.top1).toFixed(2)}%`);
    console.log(`top-5  ${(100 * r.top5).toFixed(2)}%`);
    console.log(`images ${r.images}`);
    console.log(`time   ${r.seconds.toFixed(2)} s (${r.imagesPerSec.toFixed(1)} images/s)`);
  },
};
