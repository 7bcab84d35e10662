// `tsc-nn export [MODEL.ts] --checkpoint FILE --format onnx --out FILE.onnx`: a checkpoint as an ONNX model of
// standard operators (src/export/onnx.ts), for ONNX Runtime and what runs ONNX (TensorRT, Triton).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { checkpointModelName, openModelCheckpoint } from '../../src/api/checkpoint';
import { exportOnnx } from '../../src/export/onnx';
import { chooseModel, describeModel, modelOverrides } from './model-arg';
import { describeConfig } from './eval';
import { oneOf, positiveInt, type Command } from './common';

export const EXPORT_FORMATS = ['onnx'] as const;

export const exportCommand: Command = {
  name: 'export',
  summary: 'export a checkpoint as an ONNX model (standard operators, opset 13) for ONNX Runtime, TensorRT or Triton',
  usage: 'tsc-nn export [MODEL.ts] --checkpoint FILE --out FILE.onnx [--format onnx] [--batch 1] [--dynamic-batch] [--json] [model flags, e.g. --size 0.5x | --depth 20]',
  options: {
    checkpoint: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    batch: { type: 'string' },
    'dynamic-batch': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  allowModelFlags: true,
  async run({ values, positionals, extra }) {
    const format = oneOf('format', values.format, EXPORT_FORMATS, 'onnx');
    if (typeof values.checkpoint !== 'string') {
      throw new UserError('export needs a checkpoint: --checkpoint FILE (a .safetensors file written by tsc-nn train, or a PyTorch state_dict)');
    }
    if (typeof values.out !== 'string') throw new UserError(`export needs an output file: --out FILE.${format}`);
    const checkpoint = values.checkpoint;
    const out = values.out;
    const batch = positiveInt('batch', values.batch, 1);
    const dynamicBatch = values['dynamic-batch'] === true;
    const chosen = chooseModel('export', positionals);
    if (!chosen.file) {
      const name = await checkpointModelName(checkpoint);
      if (name !== undefined && name !== chosen.model.name) throw new UserError(`${checkpoint} is a checkpoint of model ${name}: give its model file (tsc-nn export ${name}.ts --checkpoint ${checkpoint})`);
    }
    const opened = await openModelCheckpoint(chosen.model, checkpoint, { overrides: modelOverrides(chosen, extra) });
    const t0 = performance.now();
    const result = exportOnnx(chosen.model, opened.config, opened.tensors, { batch, dynamicBatch, metadata: { 'tsc-nn.checkpoint': path.basename(checkpoint) } });
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, result.bytes);
    fs.renameSync(tmp, out);
    const ms = performance.now() - t0;
    if (values.json === true) {
      console.log(JSON.stringify({
        out, format, bytes: result.bytes.length, checkpoint, config: { model: chosen.model.name, ...opened.config }, batch: dynamicBatch ? 'dynamic' : batch,
        opset: result.opset, irVersion: result.irVersion, nodes: result.nodes, ops: result.ops, initializers: result.initializers,
        inputs: result.inputs, outputs: result.outputs, exportMs: Math.round(ms),
      }));
      return;
    }
    const shapes = (m: Readonly<Record<string, ReadonlyArray<number | string>>>): string => Object.entries(m).map(([k, s]) => `${k} [${s.join(', ')}]`).join(', ');
    console.log(`${describeModel(chosen)}: ${describeConfig(chosen.model.name, opened.config)}; checkpoint ${checkpoint}`);
    console.log(`  ONNX opset ${result.opset} (IR ${result.irVersion}), ${result.nodes} nodes: ${Object.entries(result.ops).map(([op, k]) => `${op} ${k}`).join(', ')}`);
    console.log(`  ${result.initializers} initializers; inputs ${shapes(result.inputs)}; outputs ${shapes(result.outputs)}`);
    console.log(`  wrote ${out} (${(result.bytes.length / 2 ** 20).toFixed(2)} MiB) in ${ms.toFixed(0)} ms`);
  },
};
