// `tsc-nn train [MODEL.ts]`: a thin shell over the library's trainModel. Without a file it trains the built-in
// ShuffleNetV1 with the seed's recipe (label smoothing 0.1, Momentum 0.9 + weight decay 4e-5, 4 warm-up epochs then
// cosine decay 0.05 -> 0.0005); model flags come from the model's defaults (--size 0.5x, --depth 20).
import { UserError } from '../../src/ir/errors';
import { trainModel, type TrainingSettings } from '../../src/api/train';
import { checkpointModelName } from '../../src/api/checkpoint';
import { dataOptions, resolveData } from './data-flags';
import { chooseModel, modelOverrides } from './model-arg';
import { positiveInt, type Command, type ParsedArgs } from './common';

export const nonNegative = (flag: string, v: string | boolean | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || n < 0) throw new UserError(`--${flag} must be a non-negative number (got ${String(v)})`);
  return n;
};

const int = (flag: string, v: string | boolean | undefined): number | undefined => (v === undefined ? undefined : positiveInt(flag, v, 1));

/** Training settings the flags set; the rest come from a resumed checkpoint or the seed's defaults. */
function settingsFromFlags(values: ParsedArgs['values']): Partial<TrainingSettings> {
  const s: Partial<Record<keyof TrainingSettings, number | undefined>> = {
    seed: int('seed', values.seed), batch: int('batch', values.batch), epochs: int('epochs', values.epochs),
    lr: nonNegative('lr', values.lr), lrEnd: nonNegative('lr-end', values['lr-end']), warmupEpochs: nonNegative('warmup-epochs', values['warmup-epochs']),
    momentum: nonNegative('momentum', values.momentum), weightDecay: nonNegative('weight-decay', values['weight-decay']),
    labelSmoothing: nonNegative('label-smoothing', values['label-smoothing']),
  };
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Partial<TrainingSettings>;
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a model file (default: the built-in ShuffleNetV1) on CIFAR-10 (checkpoints, --resume, JSONL log, loss curve)',
  usage: 'tsc-nn train [MODEL.ts] [model flags, e.g. --size 2.0x --group 3 --stem cifar --zero-init-residual | --depth 20] --data PATH|--download [--batch 128] [--epochs 250] [--lr 0.05] [--lr-end 0.0005] [--warmup-epochs 4] [--momentum 0.9] [--weight-decay 4e-5] [--label-smoothing 0.1] [--seed 1] [--backend auto] [--out DIR] [--max-steps N] [--save-every N] [--keep 5] [--resume CKPT | --init-from CKPT] [--no-eval] [--json]',
  options: {
    ...dataOptions,
    batch: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, 'lr-end': { type: 'string' },
    'warmup-epochs': { type: 'string' }, momentum: { type: 'string' }, 'weight-decay': { type: 'string' }, 'label-smoothing': { type: 'string' },
    seed: { type: 'string' }, backend: { type: 'string' }, out: { type: 'string' }, 'max-steps': { type: 'string' }, 'save-every': { type: 'string' },
    keep: { type: 'string' }, resume: { type: 'string' }, 'init-from': { type: 'string' }, 'no-eval': { type: 'boolean' }, json: { type: 'boolean' },
  },
  allowModelFlags: true,
  async run({ values, positionals, extra }) {
    const chosen = chooseModel('train', positionals);
    const config = modelOverrides(chosen, extra);
    const settings = settingsFromFlags(values);
    const resume = typeof values.resume === 'string' ? values.resume : undefined;
    if (resume && !chosen.file) {
      const name = await checkpointModelName(resume);
      if (name !== undefined && name !== chosen.model.name) throw new UserError(`${resume} is a checkpoint of model ${name}: give its model file (tsc-nn train ${name}.ts --resume ${resume})`);
    }
    const data = await resolveData(values);
    const json = values.json === true;
    const log = (line: string): void => { if (json) console.error(line); else console.log(line); };
    // Ctrl-C finishes the step in flight and saves a checkpoint to resume from.
    const abort = new AbortController();
    const onSigint = (): void => abort.abort();
    process.on('SIGINT', onSigint);
    let result;
    try {
      result = await trainModel(chosen.model, {
        ...settings, data, config,
        maxSteps: int('max-steps', values['max-steps']), saveEvery: int('save-every', values['save-every']), keep: int('keep', values.keep),
        out: typeof values.out === 'string' ? values.out : undefined,
        backend: typeof values.backend === 'string' ? values.backend : undefined,
        resume, initFrom: typeof values['init-from'] === 'string' ? values['init-from'] : undefined,
        eval: values['no-eval'] !== true, log, progress: !json, signal: abort.signal,
      });
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (result.interrupted) {
      log(result.checkpoint ? `interrupted: saved ${result.checkpoint}; continue with --resume ${result.checkpoint}` : 'interrupted before the first step: nothing to save');
      process.exitCode = 130;
    }
    if (json) {
      const losses = result.history.map((h) => h.loss);
      console.log(JSON.stringify({
        model: chosen.model.name, config: result.config, settings: result.settings, backend: result.backend, checkpoint: result.checkpoint,
        steps: result.steps, seconds: result.seconds, interrupted: result.interrupted, firstLoss: losses[0], lastLoss: losses.at(-1), eval: result.eval,
      }));
    }
  },
};
