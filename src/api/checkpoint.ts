// Opening a checkpoint for a given model: a tsc-nn checkpoint (its `tsc-nn.config` metadata names the model and
// configuration; overrides apply on top) or a plain PyTorch state_dict saved as safetensors (no metadata: the
// configuration is the overrides over the model's defaults; `num_batches_tracked` is ignored). Either way every
// tensor the model needs must be there with its shape, and nothing unknown may be.
import { UserError } from '../ir/errors';
import type { ModelDef } from '../ir/model';
import { momentumName } from '../passes/optimizer';
import type { TensorMap } from '../runtime/session';
import { checkTensors, loadCheckpoint, type LoadedCheckpoint } from '../runtime/checkpoint/model-checkpoint';
import { configure } from './classifier';
import { tensorShapes } from './programs';

export interface OpenedCheckpoint<C extends object> {
  readonly file: string;
  readonly checkpoint: LoadedCheckpoint;
  readonly config: C;
  readonly tensors: TensorMap;
  /** 'tsc-nn': written by tsc-nn (configuration, progress, momentum); 'state_dict': weights only. */
  readonly format: 'tsc-nn' | 'state_dict';
}

export interface OpenOptions<C extends object> {
  /** Configuration overrides (command-line model flags). */
  readonly overrides?: Partial<C>;
  /** Momentum buffers are welcome (resume); otherwise they are ignored. */
  readonly training?: boolean;
}

/** The model a tsc-nn checkpoint was written for, or undefined for a plain state_dict. */
export async function checkpointModelName(file: string): Promise<string | undefined> {
  const { config } = await loadCheckpoint(file);
  return config === undefined ? undefined : String(config.model ?? 'shufflenet');
}

export async function openModelCheckpoint<C extends object>(model: ModelDef<C>, file: string, opts: OpenOptions<C> = {}): Promise<OpenedCheckpoint<C>> {
  const checkpoint = await loadCheckpoint(file);
  const overrides = opts.overrides ?? {};
  let config: C;
  if (checkpoint.config) {
    const { model: name, ...stored } = checkpoint.config;
    // Checkpoints from before model names were stored are ShuffleNet's.
    if ((name ?? 'shufflenet') !== model.name) throw new UserError(`${file}: a checkpoint of model ${String(name)}, not ${model.name}: give its model file`);
    try {
      configure(model, stored as Partial<C>);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${file}: configuration ${JSON.stringify(checkpoint.config)}: ${e.message}`);
      throw e;
    }
    config = configure(model, { ...stored, ...overrides } as Partial<C>);
  } else {
    config = configure(model, overrides);
  }
  const overridden = Object.keys(overrides).length > 0 && checkpoint.config !== undefined;
  const isMomentum = (n: string): boolean => n.startsWith(momentumName(''));
  try {
    checkTensors(file, checkpoint, tensorShapes(model, config), isMomentum);
  } catch (e) {
    if (e instanceof UserError && overridden) throw new UserError(`${e.message} (overrides of the checkpoint's configuration: ${Object.entries(overrides).map(([k, v]) => `${k} ${String(v)}`).join(', ')})`);
    throw e;
  }
  const tensors: TensorMap = new Map([...checkpoint.tensors].filter(([name]) => opts.training || !isMomentum(name)));
  return { file, checkpoint, config, tensors, format: checkpoint.config ? 'tsc-nn' : 'state_dict' };
}
