// Evaluating a model's checkpoint on the CIFAR-10 test split (loss, top-1, top-5) through its BN-folded inference
// program. `tsc-nn eval` is a thin shell over `evaluateModel`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelDef } from '../ir/model';
import { createBackend, type Backend } from '../backends/registry';
import { loadCifar10, type Cifar10Data } from '../runtime/data/cifar10';
import { evalLogLine, evaluate, type EvalResult } from '../runtime/evaluate';
import { Predictor } from '../runtime/session';
import { UserError } from '../ir/errors';
import { compilePrograms } from './programs';
import { imageSide, logitClasses } from './classifier';
import { openModelCheckpoint, type OpenedCheckpoint } from './checkpoint';

export interface InferenceOptions<C extends object> {
  /** A tsc-nn checkpoint or a PyTorch state_dict saved as safetensors. */
  readonly checkpoint: string;
  /** CIFAR-10: the official archive, its folder or one .bin file (its test split is used). */
  readonly data: string;
  readonly config?: Partial<C>;
  readonly batch?: number;
  readonly backend?: string | Backend;
  readonly progress?: boolean;
}

export interface EvaluateResult<C extends object> extends EvalResult {
  readonly config: C;
  readonly checkpoint: OpenedCheckpoint<C>;
  readonly backend: string;
  readonly batch: number;
  readonly data: string;
}

/** Labels must index the classifier's outputs. */
export function checkLabels(data: Cifar10Data, classes: number, count = data.count): void {
  for (let i = 0; i < count; i++) {
    if (data.labels[i]! >= classes) throw new UserError(`${data.source}: image ${i} has label ${data.labels[i]}, but the model has ${classes} classes`);
  }
}

/** The inference program for `batch` images of a checkpoint, ready to run; close it when done. */
export async function openPredictor<C extends object>(model: ModelDef<C>, opened: OpenedCheckpoint<C>, backend: Backend, batch: number): Promise<{ predictor: Predictor; classes: number; side: number }> {
  const side = imageSide(model, opened.config);
  const program = await compilePrograms(model, opened.config, 'infer', batch);
  const classes = logitClasses(model, program.graph, batch);
  return { predictor: new Predictor(program.graph, backend, opened.tensors), classes, side };
}

export async function evaluateModel<C extends object>(model: ModelDef<C>, opts: InferenceOptions<C>): Promise<EvaluateResult<C>> {
  const opened = await openModelCheckpoint(model, opts.checkpoint, { overrides: opts.config });
  const backend = typeof opts.backend === 'object' ? opts.backend : createBackend(opts.backend ?? 'auto');
  const test = await loadCifar10(opts.data, 'test');
  const batch = opts.batch ?? Math.min(128, test.count);
  const { predictor, classes, side } = await openPredictor(model, opened, backend, batch);
  checkLabels(test, classes);
  let r: EvalResult;
  try {
    r = await evaluate(predictor, test, side, { progress: opts.progress });
  } finally {
    predictor.close();
  }
  const log = path.join(path.dirname(opts.checkpoint), 'eval_log.txt');
  try {
    fs.appendFileSync(log, evalLogLine(opts.checkpoint, r, test.source));
  } catch (e) {
    console.error(`tsc-nn: warning: cannot append to ${log}: ${(e as Error).message}`);
  }
  return { ...r, config: opened.config, checkpoint: opened, backend: backend.name, batch, data: test.source };
}
