// ShuffleNetV1 in ONNX Runtime (onnxruntime-node, CPU execution provider, in this process): the model as tsc-nn's
// own ONNX exporter writes it (src/export/onnx.ts: the traced inference graph, parameters as initializers), with
// ONNX Runtime's full graph optimisation (it folds BN into the convolutions and fuses the activations itself).
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../../src/export/onnx';
import { shufflenet } from '../../../src/models/shufflenet';
import { paramData, planShuffleNet } from './architecture';
import type { PeerConfig, PeerModel } from './types';

const THREADS = 2;

export async function createOnnxRuntimePeer(cfg: PeerConfig, params: ReadonlyMap<string, Float32Array>): Promise<PeerModel> {
  const plan = planShuffleNet(cfg);
  const tensors = new Map(Object.keys(plan.shapes).map((name) => [name, paramData(params, plan.shapes, name)]));
  const { bytes } = exportOnnx(shufflenet, plan.config, tensors, { batch: cfg.batch });
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  const dims = [cfg.batch, 3, plan.config.resolution, plan.config.resolution];
  return {
    system: 'onnxruntime',
    cannotTrain: 'ONNX Runtime\'s inference package (onnxruntime-node) has no training: no gradients or optimizer',
    async infer(images) {
      const out = await session.run({ [input!]: new ort.Tensor('float32', images, dims) });
      return out[output!]!.data as Float32Array;
    },
    // Inference only: the parameters never change.
    parameters: async () => new Map(tensors),
    dispose: () => void session.release(),
  };
}
