// `compileModel`: a model and its configuration as a runnable program for scripts. Inference: `run({ image })`
// returns `{ logits }`. Training: `run({ image, label, lr })` returns `{ loss, logits }` and updates `params` and
// the momentum buffers in place (forward, backward and the optimizer step are one compiled program).
import { UserError } from '../ir/errors';
import { outputKey, sizeOf } from '../ir/graph';
import type { ModelDef } from '../ir/model';
import type { Mode } from '../frontend/build';
import { createBackend, createExecutor, type Backend } from '../backends/registry';
import { initParams } from '../runtime/init';
import { configure } from './classifier';
import { openModelCheckpoint } from './checkpoint';
import { compilePrograms } from './programs';

export interface CompileOptions<C extends object> {
  readonly mode: Mode;
  readonly batch: number;
  readonly config?: Partial<C>;
  readonly backend?: string | Backend;
  /** Seed of the parameter initialisers (default 1). */
  readonly seed?: number;
  /** Start from a checkpoint's weights (tsc-nn or a PyTorch state_dict in safetensors) instead of the initialisers. */
  readonly checkpoint?: string;
  /** Training only: Momentum SGD and loss settings (defaults: the seed's 0.9, 4e-5, 0.1). */
  readonly momentum?: number;
  readonly weightDecay?: number;
  readonly labelSmoothing?: number;
}

/** A value for an input: its elements in order (labels as class indices), or a number for a scalar such as `lr`. */
export type InputValue = ArrayLike<number> | number;

export interface CompiledModel<C extends object> {
  readonly name: string;
  readonly config: C;
  readonly mode: Mode;
  readonly batch: number;
  /** The backend that runs it (`auto` resolved). */
  readonly backend: string;
  /** Parameters and BN statistics by their checkpoint names; write into them in place to change the model. */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** What `run` takes: input names and shapes (`image`, and `label` and `lr` when training). */
  readonly inputs: Readonly<Record<string, readonly number[]>>;
  /** Runs one batch; outputs are fresh arrays (`logits` [batch x classes] flat, `loss` a number when training). */
  run(inputs: Readonly<Record<string, InputValue>>): { logits: Float32Array; loss?: number };
  /** Releases the backend's threads and memory. */
  close(): void;
}

export async function compileModel<C extends object>(model: ModelDef<C>, opts: CompileOptions<C>): Promise<CompiledModel<C>> {
  if (opts.mode !== 'infer' && opts.mode !== 'train') throw new UserError(`compileModel: mode must be 'infer' or 'train' (got ${String(opts.mode)})`);
  if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new UserError(`compileModel: batch must be a positive integer (got ${opts.batch})`);
  const opened = opts.checkpoint ? await openModelCheckpoint(model, opts.checkpoint, { overrides: opts.config }) : undefined;
  const config = opened?.config ?? configure(model, opts.config);
  const program = await compilePrograms(model, config, opts.mode, opts.batch, {
    optimizer: { momentum: opts.momentum ?? 0.9, weightDecay: opts.weightDecay ?? 4e-5 }, labelSmoothing: opts.labelSmoothing,
  });
  const backend = typeof opts.backend === 'object' ? opts.backend : createBackend(opts.backend ?? 'auto');
  const { graph } = program;
  const params: Record<string, Float32Array> = Object.fromEntries(opened?.tensors ?? initParams(model.params(config), opts.seed ?? 1));
  // Training state the user does not see: momentum buffers, zero at the start.
  const hidden: Record<string, Float32Array> = {};
  for (const s of graph.sources()) {
    if (s.op !== 'input' && !params[s.name!]) hidden[s.name!] = new Float32Array(sizeOf(s.shape));
  }
  const inputs = Object.fromEntries(graph.sources('input').map((s) => [s.name!, s.shape]));
  const executor = createExecutor(graph, backend);
  let closed = false;

  const feedInput = (name: string, value: InputValue | undefined): Float32Array => {
    const shape = inputs[name]!;
    if (value === undefined) throw new UserError(`${model.name}.run: missing input ${name} [${shape.join(', ')}]`);
    const data = typeof value === 'number' ? new Float32Array([value]) : value instanceof Float32Array ? value : Float32Array.from(value);
    if (data.length !== sizeOf(shape)) throw new UserError(`${model.name}.run: input ${name} has ${data.length} elements, [${shape.join(', ')}] needs ${sizeOf(shape)}`);
    return data;
  };

  return {
    name: model.name, config, mode: opts.mode, batch: opts.batch, backend: backend.name, params, inputs,
    run(given) {
      if (closed) throw new UserError(`${model.name}.run: the compiled model was closed`);
      const unknown = Object.keys(given).filter((k) => !(k in inputs));
      if (unknown.length) throw new UserError(`${model.name}.run: unknown input ${unknown.join(', ')}; it takes ${Object.keys(inputs).join(', ')}`);
      const feeds: Record<string, Float32Array> = { ...params, ...hidden };
      for (const name of Object.keys(inputs)) feeds[name] = feedInput(name, given[name]);
      // Updates and BN statistics are written back into the arrays fed, so `params` always holds the current model.
      const into = Object.fromEntries(graph.outputs.filter((o) => o.kind === 'update' || o.kind === 'state').map((o) => [outputKey(o), feeds[o.name]!]));
      const out = executor.run(feeds, into);
      return { logits: out.logits!.slice(), ...(out.loss ? { loss: out.loss[0]! } : {}) };
    },
    close() {
      if (!closed) executor.close();
      closed = true;
    },
  };
}
