// What a model file or an op file imports as 'tsc-nn': the tensor-expression DSL, the built-in ops, tracing, the
// IR, op checks and the built-in models. src/index.ts adds the library API (compile, train, evaluate, predict).
export * as te from './ir/te';
export { compute, select, lit, maximum, Placeholder, E, type TensorExpr } from './ir/te';
export { defineOp, check, lookupOp, type OpDef, type VjpRule } from './ir/op';
export { Graph, Tensor, sizeOf, outputKey, type Node, type GraphOutput } from './ir/graph';
export { trace, source, type SourceSpec, type Shapes } from './ir/trace';
export { defineModel, countParams, batchNormParams, batchNormOf, type ModelDef, type ParamSpec, type Init, type ForwardContext } from './ir/model';
export { printGraph } from './ir/print';
export { verify, VerifyError } from './ir/verify';
export { evaluate, evaluateOutputs } from './ir/reference';
export { UserError, OpError } from './ir/errors';
export * from './ir/ops';
export { defineOpCheck, type OpCheck, type Draw } from './frontend/opcheck';
export { shufflenet, channelShuffle, type ShuffleNetConfig } from './models/shufflenet';
