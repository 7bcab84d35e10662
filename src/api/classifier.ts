// What train, eval and predict need of a model: an `image` input [batch, 3, side, side] and `[batch, classes]`
// logits. Checked once, with one clear line naming the model when it does not hold.
import { UserError } from '../ir/errors';
import type { Graph } from '../ir/graph';
import type { ModelDef } from '../ir/model';

/** Apply configuration overrides through the model's own validation (or over its defaults when it has none). */
export function configure<C extends object>(model: ModelDef<C>, overrides: Partial<C> = {}): C {
  return model.configure ? model.configure(overrides) : { ...model.defaults, ...overrides };
}

/** The side of the square RGB images the model takes. */
export function imageSide<C extends object>(model: ModelDef<C>, config: C): number {
  const inputs = model.inputs(config, 1);
  const names = Object.keys(inputs);
  const image = inputs.image;
  if (!image || names.length !== 1) {
    throw new UserError(`model ${model.name} takes inputs ${names.join(', ') || '(none)'}; train, eval and predict feed one input named \`image\` [batch, 3, H, W]`);
  }
  const [, c, h, w] = image;
  if (image.length !== 4 || c !== 3 || h !== w) {
    throw new UserError(`model ${model.name}: input image is [${image.join(', ')}]; train, eval and predict feed square RGB images [batch, 3, S, S]`);
  }
  return h!;
}

/** The number of classes of a compiled program's `[batch, classes]` logits. */
export function logitClasses(model: ModelDef<any>, graph: Graph, batch: number): number {
  const logits = graph.outputs.find((o) => o.name === 'logits');
  const shape = logits ? graph.node(logits.node).shape : undefined;
  if (!shape || shape.length !== 2 || shape[0] !== batch) {
    throw new UserError(`model ${model.name}: forward returns [${shape?.join(', ') ?? ''}]; train, eval and predict need [batch, classes] logits`);
  }
  return shape[1]!;
}
