// One benchmark configuration on a peer system (TensorFlow.js cpu/wasm, jax-js, PyTorch, ONNX Runtime), on the same
// weights and data as `tsc-nn bench`: prints one JSON line with the same fields, plus how far the peer's first
// output is from tsc-nn's (the same work), or `cannot` with the reason where the peer cannot do the work here.
// Usage: node dist/tools/bench/peer-bench.js --system tfjs-wasm --size 0.5x --mode infer ...
import { parseArgs } from 'node:util';
import { shufflenet, type ShuffleNetConfig } from '../../src/models/shufflenet';
import { configureModel, type AnyModel } from '../../src/api/load-model';
import { initParams } from '../../src/runtime/init';
import { uniform } from '../../src/runtime/random';
import { createBackend } from '../../src/backends/registry';
import { compilePrograms } from '../../src/api/programs';
import { Predictor, TrainStep } from '../../src/runtime/session';
import { peakRssMb, summarize, timeSteps } from './measure';
import { PeerUnavailable, type PeerConfig, type PeerModel } from './peers/types';
import { PEER_SYSTEMS, type PeerSystem } from './systems';

type Params = ReadonlyMap<string, Float32Array>;
/** Each peer's library is loaded only when it runs (memory and start-up are per process). */
const CREATE_PEER: Record<PeerSystem, (cfg: PeerConfig, params: Params) => Promise<PeerModel>> = {
  'tfjs-wasm': async (cfg, params) => (await import('./peers/tfjs.js')).createTfjsPeer('wasm', cfg, params),
  'tfjs-cpu': async (cfg, params) => (await import('./peers/tfjs.js')).createTfjsPeer('cpu', cfg, params),
  'jax-js': async (cfg, params) => (await import('./peers/jax.js')).createJaxPeer(cfg, params),
  pytorch: async (cfg, params) => (await import('./peers/pytorch.js')).createPytorchPeer(cfg, params),
  onnxruntime: async (cfg, params) => (await import('./peers/onnxruntime.js')).createOnnxRuntimePeer(cfg, params),
};

const relL2 = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += a[i]! ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      system: { type: 'string' }, size: { type: 'string' }, group: { type: 'string' }, stem: { type: 'string' }, classes: { type: 'string' },
      resolution: { type: 'string' }, batch: { type: 'string', default: '64' }, mode: { type: 'string', default: 'infer' },
      steps: { type: 'string', default: '5' }, 'budget-s': { type: 'string', default: '1000000000' },
    },
  });
  const system = values.system as PeerSystem;
  if (!PEER_SYSTEMS.includes(system)) throw new Error(`--system must be one of ${PEER_SYSTEMS.join(', ')}`);
  const mode = values.mode === 'train' ? 'train' : 'infer';
  const batch = Number(values.batch);
  const flags = Object.fromEntries((['size', 'group', 'stem', 'classes', 'resolution'] as const).filter((k) => values[k] !== undefined).map((k) => [k, values[k]!]));
  const config = configureModel(shufflenet as unknown as AnyModel, { size: '0.5x', ...flags }) as unknown as ShuffleNetConfig;
  const cfg: PeerConfig = { size: config.size, group: config.group, stem: config.stem, classes: config.classes, resolution: config.resolution, batch, mode };
  const params = initParams(shufflenet.params(config), 1);
  const images = uniform(batch * 3 * config.resolution * config.resolution, 2);
  const labels = Float32Array.from({ length: batch }, (_, i) => i % config.classes);
  const base = { model: 'shufflenet', ...config, mode, batch, system };

  let t = performance.now();
  let peer: PeerModel;
  try {
    peer = await CREATE_PEER[system](cfg, params);
  } catch (e) {
    if (!(e instanceof PeerUnavailable)) throw e;
    console.log(JSON.stringify({ ...base, cannot: e.message }));
    return;
  }
  const compileMs = Math.round(performance.now() - t);
  if (mode === 'train' && !peer.trainStep) {
    console.log(JSON.stringify({ ...base, cannot: peer.cannotTrain ?? 'no training' }));
    peer.dispose();
    return;
  }
  // Training runs at learning rate 0, so every step does the same work on the same weights (as tsc-nn's bench);
  // the warm-up step's output is checked against tsc-nn's below.
  const steps = await timeSteps<Float32Array | number>(() => (mode === 'infer' ? peer.infer(images) : peer.trainStep!(images, labels, 0)), Number(values.steps), 1000 * Number(values['budget-s']));
  const timed = summarize(steps, batch);
  const first = steps.first;
  // A peer in a process of its own reports that process's memory.
  const rss = peer.peakRssMb ? await peer.peakRssMb() : peakRssMb();
  peer.dispose();

  // tsc-nn on the same weights and data (after the peer's memory was measured).
  t = performance.now();
  const program = await compilePrograms(shufflenet, config, mode, batch);
  const backend = createBackend('wasm');
  let agreement: Record<string, number>;
  if (mode === 'infer') {
    const ours = new Predictor(program.graph, backend, params).logits(images, batch);
    agreement = { logitsRelL2: relL2(ours, first as Float32Array) };
  } else {
    const ours = new TrainStep(program.graph, backend, new Map(params)).run(images, labels, 0).loss;
    agreement = { lossAbsDiff: Math.abs(ours - (first as number)) };
  }
  console.log(JSON.stringify({ ...base, compileMs, ...timed, peakRssMb: rss, agreement }));
}

void main().then(() => process.exit(0), (e: unknown) => { console.error(`peer-bench: ${(e as Error).stack ?? String(e)}`); process.exit(1); });
