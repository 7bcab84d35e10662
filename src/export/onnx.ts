// ONNX export: the traced inference graph of a model (before any pass: BN, the channel shuffle and the pooling are
// still ops of their own) with a checkpoint's tensors becomes an ONNX ModelProto of standard operators only
// (opset 13, IR version 7), so the model runs in ONNX Runtime and, through it or directly, TensorRT and Triton.
// Parameters and BN statistics become initializers under their checkpoint names; every node keeps its model-file
// location as its doc_string. An op with no standard ONNX operator (a user's defineOp) is a UserError naming it.
// The messages are encoded with protobufjs from the official schema vendored beside this file (onnx.proto).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { UserError } from '../ir/errors';
import { isSource, sizeOf, type Graph, type Node } from '../ir/graph';
import { formatLoc } from '../ir/location';
import type { ModelDef } from '../ir/model';
import { poolGeometry, type PoolAttrs } from '../ir/ops/pool';
import type { ConvAttrs } from '../ir/ops/conv';
import { buildGraph } from '../frontend/build';
import { verify } from '../ir/verify';

export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;
/** The name of the symbolic batch dimension of a dynamic-batch export. */
export const BATCH_DIM = 'batch';

const FLOAT = 1; // TensorProto.DataType.FLOAT
const INT64 = 7; // TensorProto.DataType.INT64
// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export interface OnnxExportOptions {
  /** The batch size the graph is traced with (default 1); with `dynamicBatch`, only the tracing batch. */
  readonly batch?: number;
  /** Declare the batch dimension of the inputs and outputs symbolic (`batch`), so any batch size runs. */
  readonly dynamicBatch?: boolean;
  /** Extra metadata_props (for instance the checkpoint file). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface OnnxExport {
  /** The serialized ModelProto. */
  readonly bytes: Uint8Array;
  readonly opset: number;
  readonly irVersion: number;
  /** ONNX nodes by operator type. */
  readonly ops: Readonly<Record<string, number>>;
  readonly nodes: number;
  readonly initializers: number;
  /** Graph inputs and outputs with their shapes; a symbolic batch dimension is the string `batch`. */
  readonly inputs: Readonly<Record<string, ReadonlyArray<number | string>>>;
  readonly outputs: Readonly<Record<string, ReadonlyArray<number | string>>>;
}

// ---- The protobuf schema.

let schema: protobuf.Type | undefined;

/** onnx.ModelProto, parsed once from the vendored onnx.proto (src/export beside the sources and the build). */
function modelProto(): protobuf.Type {
  if (schema) return schema;
  const candidates = [path.join(__dirname, 'onnx.proto'), path.join(__dirname.replace(`${path.sep}dist${path.sep}src${path.sep}`, `${path.sep}src${path.sep}`), 'onnx.proto')];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) throw new Error(`onnx.proto not found (looked in ${candidates.join(', ')})`);
  schema = protobuf.parse(fs.readFileSync(file, 'utf8'), { keepCase: true }).root.lookupType('onnx.ModelProto');
  return schema;
}

/** Decode a serialized ModelProto into a plain object (snake_case fields, int64 as numbers): for tests and tools. */
export function decodeOnnxModel(bytes: Uint8Array): Record<string, unknown> {
  const type = modelProto();
  return type.toObject(type.decode(bytes), { longs: Number, bytes: Array, defaults: false }) as Record<string, unknown>;
}

// ---- Tensors and attributes as protobuf objects.

interface TensorProto { name: string; dims: number[]; data_type: number; raw_data: Uint8Array }
interface AttributeProto { name: string; type: number; i?: number; f?: number; ints?: number[]; floats?: number[]; t?: TensorProto }
interface NodeProto { name: string; op_type: string; input: string[]; output: string[]; attribute: AttributeProto[]; doc_string?: string }
type Dim = number | string;

function floatTensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, dims: [...dims], data_type: FLOAT, raw_data: raw };
}

function int64Tensor(name: string, values: readonly number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { name, dims: [values.length], data_type: INT64, raw_data: raw };
}

const intAttr = (name: string, i: number): AttributeProto => ({ name, type: ATTR.INT, i });
const intsAttr = (name: string, ints: readonly number[]): AttributeProto => ({ name, type: ATTR.INTS, ints: [...ints] });
const floatAttr = (name: string, f: number): AttributeProto => ({ name, type: ATTR.FLOAT, f });

interface ValueInfoProto { name: string; type: { tensor_type: { elem_type: number; shape: { dim: Array<{ dim_value: number } | { dim_param: string }> } } } }
const valueInfo = (name: string, dims: readonly Dim[]): ValueInfoProto => ({
  name,
  type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
});

// ---- The translation.

/** The ops of the traced inference graph that have a standard ONNX equivalent. */
export const EXPORTABLE_OPS = [
  'conv2d', 'batch_norm_infer', 'relu', 'add', 'sub', 'mul', 'div', 'neg', 'exp', 'log', 'rsqrt', 'affine', 'stop_gradient',
  'fill', 'reshape', 'transpose', 'concat', 'slice', 'pad', 'broadcast', 'sum', 'reduce_max', 'matmul', 'avg_pool2d', 'max_pool2d',
] as const;
const exportable = new Set<string>(EXPORTABLE_OPS);

const describeNode = (n: Node): string => (n.loc ? `op ${n.op} (${formatLoc(n.loc)})` : `op ${n.op}`);

/** Pool geometry as ONNX wants it: explicit begin and end pads, checked to give the traced output size. */
function poolPads(n: Node, x: Node, a: PoolAttrs): number[] {
  const [, , H, W] = x.shape as [number, number, number, number];
  const pads = [H, W].map((size) => {
    const g = poolGeometry(size, a);
    const end = (g.out - 1) * a.stride + a.kernel - size - g.before;
    if (Math.floor((size + g.before + Math.max(end, 0) - a.kernel) / a.stride) + 1 !== g.out) throw new Error(`${describeNode(n)}: no ONNX padding gives ${g.out} outputs of ${size}`);
    return [g.before, Math.max(end, 0)] as const;
  });
  return [pads[0]![0], pads[1]![0], pads[0]![1], pads[1]![1]];
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Translate a traced inference graph into an ONNX GraphProto-shaped object. `tensors` holds every parameter and
 * state source by name. `modelName` names the model in errors.
 */
function translateGraph(graph: Graph, tensors: ReadonlyMap<string, Float32Array>, modelName: string, dynamicBatch: boolean) {
  // Every op first: one unsupported op is the error, before any work.
  for (const n of graph.nodes) {
    if (!isSource(n) && !exportable.has(n.op)) {
      throw new UserError(`${describeNode(n)} in model ${modelName} has no ONNX equivalent (export writes standard ONNX operators for tsc-nn's built-in ops only)`);
    }
  }
  const users = graph.users();
  const outputNames = new Map<number, string>();
  for (const o of graph.outputs) if (o.kind === 'output' && !outputNames.has(o.node) && !isSource(graph.node(o.node))) outputNames.set(o.node, o.name);
  const valueName = (id: number): string => {
    const n = graph.node(id);
    return isSource(n) ? n.name! : outputNames.get(id) ?? `%${id}.${n.op}`;
  };

  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs: ValueInfoProto[] = [];
  // Which values carry the batch on axis 0 (with a symbolic batch, their axis 0 must stay the batch).
  const batched = new Set<number>();
  const skip = new Set<number>();
  const traceBatch = graph.sources('input')[0]?.shape[0] ?? 1;

  const constant = (owner: Node, what: string, values: readonly number[]): string => {
    const name = `%${owner.id}.${what}`;
    initializers.push(int64Tensor(name, values));
    return name;
  };
  const scalar = (owner: Node, what: string, v: number): string => {
    const name = `%${owner.id}.${what}`;
    initializers.push(floatTensor(name, [], [v]));
    return name;
  };
  const emit = (n: Node, opType: string, input: string[], attribute: AttributeProto[] = [], output = valueName(n.id), suffix = ''): string => {
    nodes.push({ name: `%${n.id}.${n.op}${suffix}`, op_type: opType, input, output: [output], attribute, ...(n.loc ? { doc_string: formatLoc(n.loc) } : {}) });
    return output;
  };
  const noBatch = (n: Node, why: string): never => {
    throw new UserError(`${describeNode(n)} in model ${modelName} ${why}, so it cannot run with a symbolic batch: export with a fixed --batch`);
  };

  for (const n of graph.nodes) {
    if (isSource(n)) {
      if (n.op === 'input') {
        batched.add(n.id);
        inputs.push(valueInfo(n.name!, n.shape.map((d, i) => (dynamicBatch && i === 0 ? BATCH_DIM : d))));
      } else {
        const data = tensors.get(n.name!);
        if (!data) throw new UserError(`the checkpoint has no tensor ${n.name} (${n.op} [${n.shape.join(', ')}]) of model ${modelName}`);
        if (data.length !== sizeOf(n.shape)) throw new UserError(`tensor ${n.name} has ${data.length} values, model ${modelName} needs [${n.shape.join(', ')}]`);
        initializers.push(floatTensor(n.name!, n.shape, data));
      }
      continue;
    }
    if (skip.has(n.id)) continue;
    const ins = n.inputs.map((i) => graph.node(i));
    const x = ins[0]!;
    const inName = n.inputs.map(valueName);
    const isBatched = n.inputs.some((i) => batched.has(i));
    if (isBatched) batched.add(n.id);
    const a = n.attrs as Record<string, unknown>;
    // Whether the value read by this node at `axes` includes the batch axis of a batched input.
    const touchesBatch = (axes: readonly number[]): boolean => dynamicBatch && batched.has(x.id) && axes.includes(0);

    switch (n.op) {
      case 'conv2d': {
        const { stride, padding, groups } = a as unknown as ConvAttrs;
        const [, , KH, KW] = ins[1]!.shape as [number, number, number, number];
        emit(n, 'Conv', inName, [intsAttr('kernel_shape', [KH, KW]), intsAttr('strides', [stride, stride]), intsAttr('pads', [padding, padding, padding, padding]), intsAttr('dilations', [1, 1]), intAttr('group', groups)]);
        break;
      }
      case 'batch_norm_infer':
        emit(n, 'BatchNormalization', inName, [floatAttr('epsilon', a.eps as number)]);
        break;
      case 'avg_pool2d':
      case 'max_pool2d': {
        const p = a as unknown as PoolAttrs;
        const attrs = [intsAttr('kernel_shape', [p.kernel, p.kernel]), intsAttr('strides', [p.stride, p.stride]), intsAttr('pads', poolPads(n, x, p))];
        // tsc-nn's averages divide by the number of window elements inside the input (padding never counts), and
        // its max pools read padding as -Infinity: ONNX's count_include_pad = 0 and MaxPool's padding.
        if (n.op === 'avg_pool2d') emit(n, 'AveragePool', inName, [...attrs, intAttr('count_include_pad', 0)]);
        else emit(n, 'MaxPool', inName, attrs);
        break;
      }
      case 'relu': emit(n, 'Relu', inName); break;
      case 'neg': emit(n, 'Neg', inName); break;
      case 'exp': emit(n, 'Exp', inName); break;
      case 'log': emit(n, 'Log', inName); break;
      case 'stop_gradient': emit(n, 'Identity', inName); break;
      case 'rsqrt': {
        const root = emit(n, 'Sqrt', inName, [], `%${n.id}.sqrt`, '.sqrt');
        emit(n, 'Reciprocal', [root]);
        break;
      }
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        if (dynamicBatch) {
          // A value traced without the batch but holding the traced batch size on its axis 0 would not broadcast.
          const other = ins.find((i) => !batched.has(i.id) && i.shape.length === n.shape.length && i.shape[0] !== 1);
          if (isBatched && other && n.shape[0] === traceBatch) noBatch(n, 'combines a value of the traced batch size that does not come from the inputs');
        }
        emit(n, { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div' }[n.op]!, inName);
        break;
      }
      case 'affine': {
        const { scale, shift } = a as { scale: number; shift: number };
        if (scale === 1 && shift === 0) { emit(n, 'Identity', inName); break; }
        const scaled = scale === 1 ? inName[0]! : emit(n, 'Mul', [inName[0]!, scalar(n, 'scale', scale)], [], shift === 0 ? valueName(n.id) : `%${n.id}.scaled`, shift === 0 ? '' : '.scale');
        if (shift !== 0) emit(n, 'Add', [scaled, scalar(n, 'shift', shift)]);
        break;
      }
      case 'fill': {
        const shape = emit(n, 'Shape', [inName[0]!], [], `%${n.id}.shape`, '.shape');
        emit(n, 'ConstantOfShape', [shape], [{ name: 'value', type: ATTR.TENSOR, t: floatTensor('value', [1], [a.value as number]) }]);
        break;
      }
      case 'reshape': {
        const shape = [...(a.shape as readonly number[])];
        if (dynamicBatch && batched.has(x.id)) {
          if (x.shape[0] !== shape[0]) noBatch(n, `reshapes [${x.shape.join(', ')}] to [${shape.join(', ')}] across the batch axis`);
          shape[0] = 0; // Reshape: 0 copies the input's dimension
        }
        emit(n, 'Reshape', [inName[0]!, constant(n, 'shape', shape)]);
        break;
      }
      case 'transpose': {
        const perm = a.perm as readonly number[];
        if (dynamicBatch && batched.has(x.id) && perm[0] !== 0) noBatch(n, `moves the batch axis (perm [${perm.join(', ')}])`);
        emit(n, 'Transpose', inName, [intsAttr('perm', perm)]);
        break;
      }
      case 'concat': {
        if (dynamicBatch && isBatched && a.axis === 0) noBatch(n, 'concatenates along the batch axis');
        emit(n, 'Concat', inName, [intAttr('axis', a.axis as number)]);
        break;
      }
      case 'slice': {
        const { axis, start, size } = a as { axis: number; start: number; size: number };
        if (touchesBatch([axis])) noBatch(n, 'slices the batch axis');
        emit(n, 'Slice', [inName[0]!, constant(n, 'starts', [start]), constant(n, 'ends', [start + size]), constant(n, 'axes', [axis])]);
        break;
      }
      case 'pad': {
        const { axis, before, after } = a as { axis: number; before: number; after: number };
        if (touchesBatch([axis])) noBatch(n, 'pads the batch axis');
        const pads = new Array<number>(2 * x.shape.length).fill(0);
        pads[axis] = before;
        pads[x.shape.length + axis] = after;
        emit(n, 'Pad', [inName[0]!, constant(n, 'pads', pads)]);
        break;
      }
      case 'broadcast': {
        const shape = [...(a.shape as readonly number[])];
        if (dynamicBatch && batched.has(x.id)) {
          if (x.shape.length !== shape.length || x.shape[0] !== shape[0]) noBatch(n, `broadcasts [${x.shape.join(', ')}] to [${shape.join(', ')}] across the batch axis`);
          shape[0] = 1; // Expand broadcasts both ways: 1 keeps the input's batch
        }
        emit(n, 'Expand', [inName[0]!, constant(n, 'shape', shape)]);
        break;
      }
      case 'sum':
      case 'reduce_max': {
        const axes = (a.axes as readonly number[]).map((ax) => (ax < 0 ? ax + x.shape.length : ax));
        const keepdims = a.keepdims ? 1 : 0;
        if (touchesBatch(axes)) noBatch(n, 'reduces over the batch axis');
        const user = users[n.id]!.length === 1 ? graph.node(users[n.id]![0]!) : undefined;
        // mean(x, [2, 3]) is sum then scale by 1 / (H W): global average pooling.
        if (n.op === 'sum' && x.shape.length === 4 && sameShape(axes, [2, 3]) && user?.op === 'affine' && !outputNames.has(n.id)
          && (user.attrs as { shift: number }).shift === 0 && (user.attrs as { scale: number }).scale === 1 / (x.shape[2]! * x.shape[3]!)) {
          skip.add(user.id);
          if (isBatched) batched.add(user.id);
          if (keepdims) emit(user, 'GlobalAveragePool', inName);
          else emit(user, 'Flatten', [emit(user, 'GlobalAveragePool', inName, [], `%${user.id}.pooled`, '.pool')], [intAttr('axis', 1)]);
          break;
        }
        if (n.op === 'sum') emit(n, 'ReduceSum', [inName[0]!, constant(n, 'axes', axes)], [intAttr('keepdims', keepdims)]);
        else emit(n, 'ReduceMax', inName, [intsAttr('axes', axes), intAttr('keepdims', keepdims)]);
        break;
      }
      case 'matmul': {
        const { transA, transB } = a as { transA: boolean; transB: boolean };
        if (dynamicBatch && ((batched.has(x.id) && transA) || batched.has(ins[1]!.id))) noBatch(n, 'multiplies along the batch axis');
        const attrs = [intAttr('transA', transA ? 1 : 0), intAttr('transB', transB ? 1 : 0)];
        // dense: matmul then the bias add is one Gemm.
        const user = users[n.id]!.length === 1 ? graph.node(users[n.id]![0]!) : undefined;
        const bias = user?.op === 'add' && !outputNames.has(n.id) && sameShape(user.shape, n.shape)
          ? user.inputs.map((i) => graph.node(i)).find((b) => b.id !== n.id && b.shape.length === 1 && b.shape[0] === n.shape[1] && !batched.has(b.id))
          : undefined;
        if (user && bias && user.inputs.includes(n.id)) {
          skip.add(user.id);
          if (isBatched) batched.add(user.id);
          emit(user, 'Gemm', [...inName, valueName(bias.id)], attrs);
        } else {
          emit(n, 'Gemm', inName, attrs);
        }
        break;
      }
      default:
        throw new Error(`unhandled exportable op ${n.op}`);
    }
  }

  const outputs = graph.outputs.filter((o) => o.kind === 'output').map((o) => {
    const n = graph.node(o.node);
    // An output that is a source, or a value also named otherwise, gets its own name through an Identity.
    if (valueName(o.node) !== o.name) nodes.push({ name: `output.${o.name}`, op_type: 'Identity', input: [valueName(o.node)], output: [o.name], attribute: [] });
    return valueInfo(o.name, n.shape.map((d, i) => (dynamicBatch && i === 0 && batched.has(o.node) ? BATCH_DIM : d)));
  });
  return { nodes, initializers, inputs, outputs };
}

/** Translate a traced inference graph (no passes run) with its tensors into a serialized ONNX model. */
export function graphToOnnx(graph: Graph, tensors: ReadonlyMap<string, Float32Array>, modelName: string, opts: Omit<OnnxExportOptions, 'batch'> = {}): OnnxExport {
  const dynamicBatch = opts.dynamicBatch ?? false;
  const g = translateGraph(graph, tensors, modelName, dynamicBatch);
  const type = modelProto();
  const model = {
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'tsc-nn',
    graph: { name: modelName, node: g.nodes, initializer: g.initializers, input: g.inputs, output: g.outputs },
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  const invalid = type.verify(model);
  if (invalid) throw new Error(`internal error: the ONNX model does not fit the schema: ${invalid}`);
  const bytes = type.encode(type.fromObject(model)).finish();
  const ops: Record<string, number> = {};
  for (const n of g.nodes) ops[n.op_type] = (ops[n.op_type] ?? 0) + 1;
  const dims = (vi: ValueInfoProto): Dim[] => vi.type.tensor_type.shape.dim.map((d) => ('dim_value' in d ? d.dim_value : d.dim_param));
  return {
    bytes, opset: ONNX_OPSET, irVersion: ONNX_IR_VERSION, ops, nodes: g.nodes.length, initializers: g.initializers.length,
    inputs: Object.fromEntries(g.inputs.map((vi) => [vi.name, dims(vi)])),
    outputs: Object.fromEntries(g.outputs.map((vi) => [vi.name, dims(vi)])),
  };
}

/**
 * Export a model in a configuration with its tensors (parameters and BN running statistics by checkpoint name)
 * as ONNX: the inference graph is traced at `batch` (default 1) and translated op by op.
 */
export function exportOnnx<C extends object>(model: ModelDef<C>, config: C, tensors: ReadonlyMap<string, Float32Array>, opts: OnnxExportOptions = {}): OnnxExport {
  const graph = buildGraph(model, config, { batch: opts.batch ?? 1, mode: 'infer' });
  verify(graph);
  return graphToOnnx(graph, tensors, model.name, { ...opts, metadata: { 'tsc-nn.config': JSON.stringify({ model: model.name, ...config }), ...opts.metadata } });
}
