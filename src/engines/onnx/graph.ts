import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";

// A CommonJS package: its namespace comes as the default export.
const { onnx } = onnxProto;
import type { ModelShape } from "../engine.js";
import type { OnnxPrecision } from "./precision.js";
import type { GgufWeights, WeightMatrix } from "./weights.js";
import { toBlock8, toFloat32, toFloat32Transposed, toInt8PerColumn } from "./weights.js";


export interface Qwen3Facts {
  shape: ModelShape;
  eps: number;
  ropeTheta: number;
  /** Rows of the LM head (or rank head) that give the yes and no logits. */
  yesRow: number;
  noRow: number;
  /** "cls.output.weight" (rank head), "output.weight" or the tied "token_embd.weight". */
  headTensor: string;
}

const T = onnx.TensorProto.DataType;

/** Builds nodes with unique output names. */
class GraphBuilder {
  readonly nodes: proto.INodeProto[] = [];
  readonly initializers: proto.ITensorProto[] = [];
  private n = 0;

  op(opType: string, inputs: string[], attributes: proto.IAttributeProto[] = [], domain = "", outputs = 1): string[] {
    const names = Array.from({ length: outputs }, (_, i) => `${opType.toLowerCase()}_${this.n}${outputs > 1 ? `_${i}` : ""}`);
    this.nodes.push({ opType, input: inputs, output: names, attribute: attributes, domain, name: `${opType}_${this.n}` });
    this.n++;
    return names;
  }

  one(opType: string, inputs: string[], attributes: proto.IAttributeProto[] = [], domain = ""): string {
    return this.op(opType, inputs, attributes, domain)[0] ?? "";
  }

  tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): string {
    this.initializers.push({ name, dataType, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  ints(name: string, values: number[]): string {
    return this.tensor(name, T.INT64, [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  scalar(name: string, value: number): string {
    return this.tensor(name, T.FLOAT, [], Float32Array.of(value));
  }
}

const intAttr = (name: string, i: number): proto.IAttributeProto => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
const intsAttr = (name: string, ints: number[]): proto.IAttributeProto => ({ name, ints, type: onnx.AttributeProto.AttributeType.INTS });

const valueInfo = (name: string, elemType: number, dims: Array<number | string>): proto.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
});

/**
 * The Qwen3 reranker as an ONNX graph, weights from the GGUF: every layer (RMSNorm, q/k/v, per-head
 * q/k RMSNorm, RoPE, GQA attention over a reusable past, SwiGLU), then the final norm and only the
 * yes/no rows of the head at each sequence's last real token: z = logit(yes) - logit(no).
 *
 * Inputs: `hidden` [B,S,H] (token embeddings, looked up outside the graph), `cos`/`sin` [S,D] (RoPE
 * of positions P..P+S-1), `mask` [S,P+S] (additive causal mask), `last` [B] (index of each
 * sequence's last real token; sequences are right-padded), and per layer `past_k.L`/`past_v.L`
 * [1,kvH,P,D] (the shared prompt head, P may be 0). Outputs: `z` [B], and `present_k.L`/`present_v.L`
 * [B,kvH,P+S,D] (the head's cache when B = 1).
 */
export function buildQwen3Graph(weights: GgufWeights, facts: Qwen3Facts, precision: OnnxPrecision): Uint8Array {
  const { shape } = facts;
  const { hidden: H, heads: nH, kvHeads: kvH, headDim: D, layers } = shape;
  const rep = nH / kvH;
  const g = new GraphBuilder();
  const eps = g.scalar("eps", facts.eps);
  const axisLast = [intsAttr("axes", [-1]), intAttr("keepdims", 1)];

  const rmsNorm = (x: string, weight: string): string => {
    const ms = g.one("ReduceMean", [g.one("Mul", [x, x])], axisLast);
    const rms = g.one("Sqrt", [g.one("Add", [ms, eps])]);
    return g.one("Mul", [g.one("Div", [x, rms]), weight]);
  };
  const vector = (name: string) => g.tensor(name, T.FLOAT, [H], toFloat32(weights.matrix(name)));
  const linear = (x: string, m: WeightMatrix): string => {
    if (precision === "fp32") return g.one("MatMul", [x, g.tensor(m.name, T.FLOAT, [m.cols, m.rows], toFloat32Transposed(m))]);
    if (precision === "block8") {
      const { data, scales, blocks } = toBlock8(m);
      const b = g.tensor(m.name, T.UINT8, [m.rows, blocks, 32], data);
      const s = g.tensor(`${m.name}.scales`, T.FLOAT, [m.rows * blocks], scales);
      return g.one("MatMulNBits", [x, b, s], [intAttr("K", m.cols), intAttr("N", m.rows), intAttr("bits", 8), intAttr("block_size", 32), intAttr("accuracy_level", 4)], "com.microsoft");
    }
    const { data, scales } = toInt8PerColumn(m);
    const b = g.tensor(m.name, T.INT8, [m.cols, m.rows], data);
    const s = g.tensor(`${m.name}.scales`, T.FLOAT, [m.rows], scales);
    return g.one("DynamicQuantizeMatMul", [x, b, s], [], "com.microsoft");
  };

  const cos = g.one("Unsqueeze", ["cos", g.ints("axis1", [1])]); // [S,1,D]: broadcast over heads
  const sin = g.one("Unsqueeze", ["sin", g.ints("axis1b", [1])]);
  const halves = g.ints("halves", [D / 2, D / 2]);
  const rope = (x: string): string => {
    const [x1, x2] = g.op("Split", [x, halves], [intAttr("axis", -1)], "", 2) as [string, string];
    const rotated = g.one("Concat", [g.one("Neg", [x2]), x1], [intAttr("axis", -1)]);
    return g.one("Add", [g.one("Mul", [x, cos]), g.one("Mul", [rotated, sin])]);
  };
  const qShape = g.ints("q_shape", [0, 0, nH, D]);
  const kvShape = g.ints("kv_shape", [0, 0, kvH, D]);
  const groupShape = g.ints("group_shape", [0, kvH, rep, -1, D]);
  const headsShape = g.ints("heads_shape", [0, nH, -1, D]);
  const flatShape = g.ints("flat_shape", [0, 0, nH * D]);
  const scale = g.scalar("attn_scale", 1 / Math.sqrt(D));
  const one = g.ints("one", [1]);
  // The past, shared by the batch: [1,kvH,P,D] expanded to [B,kvH,P,D].
  const batch = g.one("Slice", [g.one("Shape", ["hidden"]), g.ints("zero", [0]), one]);
  const pastTail = g.one("Slice", [g.one("Shape", ["past_k.0"]), one, g.ints("four", [4])]);
  const pastShape = g.one("Concat", [batch, pastTail], [intAttr("axis", 0)]);
  const unsqueeze2 = g.ints("axis2", [2]);

  let x = "hidden";
  for (let l = 0; l < layers; l++) {
    const w = (n: string) => weights.matrix(`blk.${l}.${n}.weight`);
    const h = rmsNorm(x, vector(`blk.${l}.attn_norm.weight`));
    const qNorm = g.tensor(`blk.${l}.attn_q_norm.weight`, T.FLOAT, [D], toFloat32(weights.matrix(`blk.${l}.attn_q_norm.weight`)));
    const kNorm = g.tensor(`blk.${l}.attn_k_norm.weight`, T.FLOAT, [D], toFloat32(weights.matrix(`blk.${l}.attn_k_norm.weight`)));
    const q = g.one("Transpose", [rope(rmsNorm(g.one("Reshape", [linear(h, w("attn_q")), qShape]), qNorm))], [intsAttr("perm", [0, 2, 1, 3])]);
    const k = g.one("Transpose", [rope(rmsNorm(g.one("Reshape", [linear(h, w("attn_k")), kvShape]), kNorm))], [intsAttr("perm", [0, 2, 1, 3])]);
    const v = g.one("Transpose", [g.one("Reshape", [linear(h, w("attn_v")), kvShape])], [intsAttr("perm", [0, 2, 1, 3])]);
    const keys = g.op("Concat", [g.one("Expand", [`past_k.${l}`, pastShape]), k], [intAttr("axis", 2)])[0] ?? "";
    const values = g.op("Concat", [g.one("Expand", [`past_v.${l}`, pastShape]), v], [intAttr("axis", 2)])[0] ?? "";
    g.nodes.push({ opType: "Identity", input: [keys], output: [`present_k.${l}`], name: `present_k_${l}` });
    g.nodes.push({ opType: "Identity", input: [values], output: [`present_v.${l}`], name: `present_v_${l}` });
    // GQA: query head h uses key/value head h / rep, so the queries are grouped [B,kvH,rep,S,D].
    const grouped = g.one("Reshape", [q, groupShape]);
    const keysT = g.one("Transpose", [g.one("Unsqueeze", [keys, unsqueeze2])], [intsAttr("perm", [0, 1, 2, 4, 3])]);
    const scores = g.one("Add", [g.one("Mul", [g.one("MatMul", [grouped, keysT]), scale]), "mask"]);
    const probs = g.one("Softmax", [scores], [intAttr("axis", -1)]);
    const context = g.one("MatMul", [probs, g.one("Unsqueeze", [values, unsqueeze2])]);
    const merged = g.one("Reshape", [g.one("Transpose", [g.one("Reshape", [context, headsShape])], [intsAttr("perm", [0, 2, 1, 3])]), flatShape]);
    x = g.one("Add", [x, linear(merged, w("attn_output"))]);
    const h2 = rmsNorm(x, vector(`blk.${l}.ffn_norm.weight`));
    const gate = linear(h2, w("ffn_gate"));
    const act = g.one("Mul", [g.one("Mul", [gate, g.one("Sigmoid", [gate])]), linear(h2, w("ffn_up"))]);
    x = g.one("Add", [x, linear(act, w("ffn_down"))]);
  }
  // Only each sequence's last real token, and only the yes/no rows of the head.
  const lastRows = g.one("GatherND", [x, g.one("Unsqueeze", ["last", g.ints("axis_last", [-1])])], [intAttr("batch_dims", 1)]);
  const normed = rmsNorm(lastRows, vector("output_norm.weight"));
  const yn = new Float32Array(H * 2);
  for (const [k, r] of [facts.yesRow, facts.noRow].entries()) {
    const row = toFloat32(weights.matrix(facts.headTensor, r, 1));
    for (let i = 0; i < H; i++) yn[i * 2 + k] = row[i] ?? 0;
  }
  const logits = g.one("MatMul", [normed, g.tensor("yes_no", T.FLOAT, [H, 2], yn)]);
  const [yes, no] = g.op("Split", [logits, g.ints("pair", [1, 1])], [intAttr("axis", -1)], "", 2) as [string, string];
  g.nodes.push({ opType: "Reshape", input: [g.one("Sub", [yes, no]), g.ints("flat", [-1])], output: ["z"], name: "z" });

  const inputs = [
    valueInfo("hidden", T.FLOAT, ["B", "S", H]),
    valueInfo("cos", T.FLOAT, ["S", D]),
    valueInfo("sin", T.FLOAT, ["S", D]),
    valueInfo("mask", T.FLOAT, ["S", "T"]),
    valueInfo("last", T.INT64, ["B"]),
  ];
  const outputs = [valueInfo("z", T.FLOAT, ["B"])];
  for (let l = 0; l < layers; l++) {
    for (const kind of ["k", "v"]) {
      inputs.push(valueInfo(`past_${kind}.${l}`, T.FLOAT, [1, kvH, "P", D]));
      outputs.push(valueInfo(`present_${kind}.${l}`, T.FLOAT, ["B", kvH, "T", D]));
    }
  }
  const model: proto.IModelProto = {
    irVersion: 8,
    producerName: "qwen-rerank",
    opsetImport: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    graph: { name: "qwen3-reranker", node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
  };
  return onnx.ModelProto.encode(model).finish();
}
