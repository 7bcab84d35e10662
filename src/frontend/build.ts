// From a model definition to a traced graph: inference (forward only) or training (forward in training mode plus
// the label-smoothing loss, with the labels as an extra input).
import type { Graph, Tensor } from '../ir/graph';
import { softmaxCrossEntropy } from '../ir/ops';
import { trace } from '../ir/trace';
import { UserError } from '../ir/errors';
import type { ModelDef } from '../ir/model';

export type Mode = 'train' | 'infer';
export const MODES: readonly Mode[] = ['train', 'infer'];

export interface BuildOptions { readonly batch: number; readonly mode: Mode; readonly labelSmoothing?: number }

export function buildGraph<C extends object>(model: ModelDef<C>, config: C, opts: BuildOptions): Graph {
  const params = model.params(config);
  const inputs = { ...model.inputs(config, opts.batch), ...(opts.mode === 'train' ? { label: [opts.batch] } : {}) };
  return trace({ params, inputs }, (p, x): Record<string, Tensor> => {
    const logits = model.forward(p, x, config, { training: opts.mode === 'train' });
    if (opts.mode === 'infer') return { logits };
    if (logits.rank !== 2 || logits.shape[0] !== opts.batch) {
      throw new UserError(`model ${model.name}: forward returns [${logits.shape.join(', ')}]; train, eval and predict need [batch, classes] logits`);
    }
    return { logits, loss: softmaxCrossEntropy(logits, x.label!, opts.labelSmoothing ?? 0.1) };
  });
}
