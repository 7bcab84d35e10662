// `tsc-nn eval [MODEL.ts]`: a checkpoint's loss, top-1 and top-5 on the CIFAR-10 test split, through the BN-folded
// inference program. A thin shell over the library's evaluateModel.
import { UserError } from '../../src/ir/errors';
import { evaluateModel, type InferenceOptions } from '../../src/api/evaluate';
import { checkpointModelName } from '../../src/api/checkpoint';
import { dataOptions, resolveData } from './data-flags';
import { chooseModel, modelOverrides, type ChosenModel } from './model-arg';
import { positiveInt, type Command, type ParsedArgs } from './common';

/** Flags shared by eval and predict; model flags (--size 0.5x, --depth 20) come on top. */
export const inferenceOptions = {
  ...dataOptions,
  checkpoint: { type: 'string' }, backend: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' },
} as const;

/** The model, checkpoint and options of eval and predict, checked before anything is compiled or loaded. */
export async function inferenceSetup(command: string, { values, positionals, extra }: ParsedArgs): Promise<{ chosen: ChosenModel; opts: InferenceOptions<Record<string, unknown>> }> {
  if (typeof values.checkpoint !== 'string') {
    throw new UserError(`${command} needs a checkpoint: --checkpoint FILE (a .safetensors file written by tsc-nn train, or a PyTorch state_dict)`);
  }
  const checkpoint = values.checkpoint;
  const chosen = chooseModel(command, positionals);
  if (!chosen.file) {
    const name = await checkpointModelName(checkpoint);
    if (name !== undefined && name !== chosen.model.name) throw new UserError(`${checkpoint} is a checkpoint of model ${name}: give its model file (tsc-nn ${command} ${name}.ts --checkpoint ${checkpoint})`);
  }
  const config = modelOverrides(chosen, extra);
  const data = await resolveData(values);
  const batch = values.batch === undefined ? undefined : positiveInt('batch', values.batch, 1);
  return { chosen, opts: { checkpoint, data, config, batch, backend: typeof values.backend === 'string' ? values.backend : undefined, progress: values.json !== true } };
}

export const describeConfig = (name: string, config: object): string => `${name} ${Object.entries(config).map(([k, v]) => `${k} ${String(v)}`).join(', ')}`;

export const evalCommand: Command = {
  name: 'eval',
  summary: 'evaluate a checkpoint (tsc-nn or PyTorch state_dict) on the CIFAR-10 test split (loss, top-1, top-5)',
  usage: 'tsc-nn eval [MODEL.ts] --checkpoint FILE --data PATH|--download [--json] [--backend auto] [--batch 128] [model flags, e.g. --size 0.5x | --depth 20]',
  options: inferenceOptions,
  allowModelFlags: true,
  async run(args) {
    const { chosen, opts } = await inferenceSetup('eval', args);
    const json = args.values.json === true;
    const r = await evaluateModel(chosen.model, opts);
    const fields = {
      checkpoint: opts.checkpoint, format: r.checkpoint.format, data: r.data, config: { model: chosen.model.name, ...r.config },
      epoch: r.checkpoint.checkpoint.epoch, step: r.checkpoint.checkpoint.step,
      backend: r.backend, batch: r.batch, loss: r.loss, top1: r.top1, top5: r.top5, images: r.images, seconds: r.seconds, imagesPerSec: r.imagesPerSec,
    };
    if (json) {
      console.log(JSON.stringify(fields));
      return;
    }
    console.log(`${opts.checkpoint}: ${describeConfig(chosen.model.name, r.config)}; ${r.checkpoint.format === 'state_dict' ? 'a state_dict' : `epoch ${fields.epoch}, step ${fields.step}`}; backend ${r.backend}`);
    console.log(`loss   ${r.loss.toFixed(4)}`);
    console.log(`top-1  ${(100 * r.top1).toFixed(2)}%`);
    console.log(`top-5  ${(100 * r.top5).toFixed(2)}%`);
    console.log(`images ${r.images}`);
    console.log(`time   ${r.seconds.toFixed(2)} s (${r.imagesPerSec.toFixed(1)} images/s)`);
  },
};
