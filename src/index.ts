// The public API of tsc-nn: the DSL model files use (src/dsl.ts) and the library that compiles, trains, evaluates
// and runs any model written in it (src/api). The CLI is a thin shell over the same functions.
export * from './dsl';
export { createBackend, availableBackends, BACKENDS, type Backend, type BackendName } from './backends/registry';
export { loadModel, type AnyModel } from './api/load-model';
export { compileModel, type CompileOptions, type CompiledModel, type InputValue } from './api/compile';
export { trainModel, SEED_SETTINGS, type TrainOptions, type TrainResult, type TrainingSettings, type StepInfo } from './api/train';
export { evaluateModel, type InferenceOptions, type EvaluateResult } from './api/evaluate';
export { predictModel, predictionPng, type Prediction, type PredictResult } from './api/predict';
export { openModelCheckpoint, type OpenedCheckpoint } from './api/checkpoint';
