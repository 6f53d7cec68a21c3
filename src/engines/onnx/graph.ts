import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";

// A CommonJS package: its namespace comes as the default export.
const { onnx } = onnxProto;
import type { ModelShape } from "../../model/facts.js";
import type { KvCacheType, OnnxPrecision } from "./precision.js";
import type { InitializerSink } from "./initializers.js";
import { inlineInitializers } from "./initializers.js";
import type { GgufWeights, Int8Matrix, WeightMatrix } from "./weights.js";
import { coarseFeatures, inputFeatureRows, inputRowMax, toBlock8, toFloat32, toFloat32Transposed, toInt8PerColumn } from "./weights.js";


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

/**
 * At most this many input features of a product are multiplied with their exact weights (the
 * coarse ones, weights.ts coarseFeatures): each adds an fp32 row of every weight matrix that reads
 * the input and a column to the outlier Gemm.
 */
const MAX_EXACT_FEATURES = 16;

/** Layers [first, end) of the model in one graph; the last stage (end = layers) ends with z. */
export interface GraphStage {
  first: number;
  end: number;
}

/**
 * Splits the layers into stages whose weights stay under `maxBytes` each (protobuf caps a model
 * at 2 GB; the 4B and 8B shapes are bigger in every mode): greedy, at least one layer a stage.
 */
export function planStages(layers: number, layerBytes: number, maxBytes: number): GraphStage[] {
  const perStage = Math.max(1, Math.floor(maxBytes / Math.max(1, layerBytes)));
  const stages: GraphStage[] = [];
  for (let first = 0; first < layers; first += perStage) stages.push({ first, end: Math.min(layers, first + perStage) });
  return stages;
}

/**
 * The stages of a model kept in the graph cache and of one built in memory. Cached graphs keep
 * their weights in a data file, so by default they are `cachedParts` graphs of consecutive layers
 * (one, or two halves: cachedPartsFor). Fewer graphs, fewer sessions, and each
 * session's memory arena keeps a long document's largest tensors once. In memory the weights are
 * inside each graph, under protobuf's 2 GB: `stageBytes` or `memoryBytes`.
 */
export function stagePlans(layers: number, layerBytes: number, stageBytes: number | undefined, memoryBytes: number, cachedParts = 1): { cached: GraphStage[]; inMemory: GraphStage[] } {
  return {
    cached: stageBytes === undefined ? planStages(layers, 1, Math.ceil(layers / Math.max(1, Math.min(layers, cachedParts)))) : planStages(layers, layerBytes, stageBytes),
    inMemory: planStages(layers, layerBytes, stageBytes ?? memoryBytes),
  };
}

/** Weights up to which an engine of two threads or more keeps its cached graphs as two halves (cachedPartsFor). */
const HALVES_UP_TO_BYTES = 5e9;

/**
 * The cached graphs an engine loads: two halves where it has two threads or more and at most
 * HALVES_UP_TO_BYTES of weights in its graphs, else one graph. ONNX Runtime creates a session on
 * one thread, in a time that grows faster than the graph: as two halves created side by side the
 * 0.6B shape's sessions opened in 2.1 s against 3.9 s (1.7-2.0 s against 3.1-3.2 s with its weights
 * mapped), the 4B's (3.6 GB of int8, mapped) in 3.9-4.1 s against 6.0-6.6 s, with the same bits. A
 * run through two sessions costs a little more (0.5-5% measured on 128-512-token documents, 6% on a
 * lone 4,096-token one), and each session keeps its own arena (that document: 2.63 GB peak against
 * 2.20). An engine of one thread (each of a pool's) could not create them side by side; the 8B's
 * open (6.6 GB) is bound by the sha256 of its data file beside the sessions (6.5-8.2 s as halves
 * against 6.1-8.1 s as one graph), and one graph keeps one arena for its long pairs (a 32k-token
 * pair: 11.3 GiB peak). Both keep one graph. docs/benchmarks.md.
 */
export const cachedPartsFor = (threads: number, weightBytes: number): number => (threads >= 2 && weightBytes <= HALVES_UP_TO_BYTES ? 2 : 1);

/** How the graph's matrix products are built. */
export interface GraphPrecision {
  precision: OnnxPrecision;
  /** int8 only: input features per product multiplied in fp32 instead (the largest in the batch); 0 quantizes them all. */
  outlierChannels: number;
  /**
   * int8 only: activations as int8 with zero point 0 (true) or uint8 with zero point 128 (false).
   * The same quantized values either way (the integer products are exact); what differs is ONNX
   * Runtime's kernel: pass `!hasUnsignedDotProduct()` (src/engines/cpu-features.ts); no default, a
   * wrong one costs 20x (VNNI) or saturates (AVX2).
   */
  signedActivations: boolean;
  /**
   * How the past keys and values come in: fp32, or int8 per token and head with the pair's key
   * center and gain (src/engines/onnx/kv-quant.ts). No default: kvCacheOf(precision).
   */
  kvCache: KvCacheType;
  /**
   * With the int8 cache: QK^T as an int8 product over it (MatMulIntegerToFloat) instead of fp32 on
   * the dequantized keys. Default false (OnnxEngineOptions.int8Attention has why).
   */
  int8Attention?: boolean | undefined;
}

/** Builds nodes with unique output names. */
class GraphBuilder {
  readonly nodes: proto.INodeProto[] = [];
  readonly initializers: proto.ITensorProto[] = [];
  private n = 0;
  private readonly names = new Set<string>();

  constructor(private readonly sink: InitializerSink) {}

  op(opType: string, inputs: string[], attributes: proto.IAttributeProto[] = [], domain = "", outputs = 1): string[] {
    const names = Array.from({ length: outputs }, (_, i) => `${opType.toLowerCase()}_${this.n}${outputs > 1 ? `_${i}` : ""}`);
    this.nodes.push({ opType, input: inputs, output: names, attribute: attributes, domain, name: `${opType}_${this.n}` });
    this.n++;
    return names;
  }

  one(opType: string, inputs: string[], attributes: proto.IAttributeProto[] = [], domain = ""): string {
    return this.op(opType, inputs, attributes, domain)[0] ?? "";
  }

  /** A node whose output has a given name (a graph output), instead of an Identity after it: a session's start grows with the square of the nodes. */
  named(output: string, opType: string, inputs: string[], attributes: proto.IAttributeProto[] = []): string {
    this.nodes.push({ opType, input: inputs, output: [output], attribute: attributes, domain: "", name: output.replace(".", "_") });
    return output;
  }

  tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): string {
    if (this.names.has(name)) throw new Error(`internal: initializer ${name} defined twice`);
    this.names.add(name);
    this.initializers.push(this.sink.place(name, dataType, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
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
const floatAttr = (name: string, f: number): proto.IAttributeProto => ({ name, f, type: onnx.AttributeProto.AttributeType.FLOAT });

const valueInfo = (name: string, elemType: number, dims: Array<number | string>): proto.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
});

/**
 * Query-row blocks of a run's attention (buildQwen3Graph). Measured against one block (one process,
 * the two graphs alternating document by document, 0.6B shape, int8, one thread): 1.12-1.15x at 512
 * tokens after an 80-token head, 1.04-1.07x at 256, 1.02-1.04x at 900, 1.02x at 4,096, 0.99x at 128
 * (docs/benchmarks.md).
 */
const QUERY_BLOCKS = 4;
/**
 * Blocks are used where the run's past is shorter than this many times the run: each earlier block
 * copies the keys and values it reads (the whole past and its part of the run), which a long past
 * makes cost more than the masked scores they save. Measured (same setup as QUERY_BLOCKS, blocks
 * where P < c·S against P < S): a 909-token document after an 80-token head (runs of 512 and 397
 * after 592, both under c = 4) 1.047x with blocks in every run; 4,096-token documents (runs of 512 after 80, 592, ...,
 * 3,664) 1.027x with c = 4, 1.004x with c = 2, 0.944x with blocks in every run, and c = 5 0.993x
 * of c = 3; z bit-identical in each.
 */
const BLOCKED_PAST_RUNS = 4;

/**
 * The Qwen3 reranker as an ONNX graph, weights from the GGUF: every layer (RMSNorm, q/k/v, per-head
 * q/k RMSNorm, RoPE, GQA attention over a reusable past, SwiGLU), then the final norm and only the
 * yes/no rows of the head at each sequence's last real token: z = logit(yes) - logit(no).
 *
 * Inputs: `hidden` [B,S,H] (token embeddings, looked up outside the graph), `cos`/`sin` [S,D] (RoPE
 * of positions P..P+S-1), `mask` [S,P+S] (additive causal mask), `last` [B] (index of each
 * sequence's last real token; sequences are right-padded), and per layer `past_k.L`/`past_v.L`
 * [1,P,kvH,D] (the shared prompt head, P may be 0; position-major, so that the engine grows one
 * buffer and feeds its first P positions as a view). Outputs: `z` [B], and `new_k.L`/`new_v.L`
 * [B,S,kvH,D] (this run's keys and values only: the engine appends them to its buffer, so a long
 * document's cache is held once, never also returned whole by every run).
 *
 * With a `stage` short of every layer, the graph holds layers [first, end) only, reads `hidden`
 * from the stage before, and outputs `hidden_out` instead of z unless it is the last stage; `last`
 * is an input of the last stage only.
 *
 * `sink` decides where the weights go: inline in the returned bytes (the default), or appended to
 * a data file the returned model refers to (src/engines/onnx/initializers.ts), which ONNX Runtime
 * then memory-maps.
 */
export function buildQwen3Graph(
  weights: GgufWeights,
  facts: Qwen3Facts,
  { precision, outlierChannels, signedActivations, kvCache, int8Attention: int8AttentionAsked }: GraphPrecision,
  stage: GraphStage = { first: 0, end: facts.shape.layers },
  sink: InitializerSink = inlineInitializers,
): Uint8Array {
  const { shape } = facts;
  const { hidden: H, heads: nH, kvHeads: kvH, headDim: D } = shape;
  const isLast = stage.end === shape.layers;
  const rep = nH / kvH;
  const g = new GraphBuilder(sink);

  // RMSNorm as ONNX Runtime's own kernel (one node instead of six: a graph's session takes time
  // with the square of its nodes, and each node is a pass over the tensor).
  const rmsNorm = (x: string, weight: string): string => g.one("SimplifiedLayerNormalization", [x, weight], [intAttr("axis", -1), floatAttr("epsilon", facts.eps)]);
  const vector = (name: string) => g.tensor(name, T.FLOAT, [H], toFloat32(weights.matrix(name)));
  /**
   * The products of inputs with matrices. Matrices that read the same input (q/k/v, gate/up) are
   * one call and share its int8 activations; a call may also read different rows of that input per
   * group (the last layer's q reads each sequence's last row, its k/v every row), and the groups
   * still share what int8 derives from the weights (equalization, exact features), so the
   * products do not depend on which rows a group reads.
   */
  const products = (groups: ReadonlyArray<{ x: string; matrices: WeightMatrix[]; tokens?: string }>): string[] => {
    if (precision === "fp32") return groups.flatMap(({ x, matrices }) => matrices.map((m) => g.one("MatMul", [x, g.tensor(m.name, T.FLOAT, [m.cols, m.rows], toFloat32Transposed(m))])));
    if (precision === "block8") {
      return groups.flatMap(({ x, matrices }) =>
        matrices.map((m) => {
          const { data, scales, blocks } = toBlock8(m);
          const b = g.tensor(m.name, T.UINT8, [m.rows, blocks, 32], data);
          const s = g.tensor(`${m.name}.scales`, T.FLOAT, [m.rows * blocks], scales);
          return g.one("MatMulNBits", [x, b, s], [intAttr("K", m.cols), intAttr("N", m.rows), intAttr("bits", 8), intAttr("block_size", 32), intAttr("accuracy_level", 4)], "com.microsoft");
        }),
      );
    }
    const all = groups.flatMap(({ matrices }) => matrices);
    const K = all[0]?.cols ?? 0;
    const rowMax = inputRowMax(all);
    const int8 = new Map(all.map((m) => [m, toInt8PerColumn(m, rowMax)]));
    // TopK must still find `outlierChannels` features outside the exact ones.
    const exact = coarseFeatures([...int8.values()], Math.min(MAX_EXACT_FEATURES, K - Math.min(outlierChannels, K)));
    return groups.flatMap(({ x, matrices, tokens = tokensShape }) => {
      const a = int8Activations(x, tokens, K, rowMax, exact);
      return matrices.map((m) => {
        const { data, scales } = int8.get(m) as Int8Matrix;
        const b = g.tensor(m.name, T.INT8, [m.cols, m.rows], data);
        const s = g.tensor(`${m.name}.scales`, T.FLOAT, [m.rows], scales);
        // The int8 product; its epilogue applies each token's scale ([T,1]) and each column's.
        let y = g.one("MatMulIntegerToFloat", [a.quantized, b, a.scale, s, zeroPoint], [], "com.microsoft");
        // Plus the outlier features times their rows of the weights (dequantized: [k, N]), and the
        // exact features times theirs (fp32: [e, N]), in one Gemm (it adds C).
        const rows: string[] = [];
        if (a.outliers) rows.push(g.one("Mul", [g.one("DequantizeLinear", [g.one("Gather", [b, a.outliers.index], [intAttr("axis", 0)]), s], [intAttr("axis", 1)]), a.outliers.rowScale]));
        if (exact.length > 0) rows.push(g.tensor(`${m.name}.exact_rows`, T.FLOAT, [exact.length, m.rows], inputFeatureRows(m, exact)));
        if (a.fp32Values) y = g.one("Gemm", [a.fp32Values, rows.length > 1 ? g.one("Concat", rows, [intAttr("axis", 0)]) : (rows[0] ?? ""), y]);
        return g.one("Reshape", [y, outputShape(m.rows, tokens)]);
      });
    });
  };
  const linear = (x: string, matrices: WeightMatrix[], tokens?: string): string[] => products([{ x, matrices, ...(tokens ? { tokens } : {}) }]);

  // int8 activations, shared by the products that read the same input (q/k/v, gate/up). Trained
  // LLMs carry a few hidden dimensions with values tens of times larger than the rest (LLM.int8(),
  // "massive activations"): one scale for the whole tensor (or even per token) then rounds every
  // other dimension to a few levels. So the
  // `outlierChannels` input features with the largest magnitude in the batch are multiplied in fp32,
  // and the rest are quantized per token (symmetric, scale = max|x| / 127: int8 with zero point 0,
  // or the same values shifted into uint8 with zero point 128). Which of the two is the CPU's: on
  // x86 without VNNI, ONNX Runtime's u8×s8 kernel (AVX2 vpmaddubsw) adds two products in int16 and
  // saturates past 32,767 (255·127·2), which measured |dz| 2.8 on an AVX2 machine, so there the
  // activations are int8 (its s8×s8 kernel: 127·127·2 fits); with VNNI the u8×s8 kernel is exact
  // and its s8×s8 path measured 20x slower (1050 vs 52 GOP/s, bench/gemm-roofline.ts).
  // Before quantizing, each input feature j is multiplied by its weight rows' largest magnitude
  // (and the rows divided by it: SmoothQuant with alpha 0): the per-column weight scales then fit
  // every row, including the small rows that large activations meet, whose rounding they magnify.
  // Everything is 2-D [tokens, features] here: per-axis QuantizeLinear and Gemm want that. The
  // constants are in the graph only in int8 mode (ONNX Runtime warns of unused initializers).
  // (The 8-bit cache quantizes each run's keys and values with the same scale constants, and int8
  // QK its queries with the zero point.)
  const int8Attention = kvCache === "int8" && int8AttentionAsked === true;
  const zeroPoint =
    precision === "int8" || int8Attention ? (signedActivations ? g.tensor("zero_point", T.INT8, [], Int8Array.of(0)) : g.tensor("zero_point", T.UINT8, [], Uint8Array.of(128))) : "";
  const [inv127, tiny] = precision === "int8" || kvCache === "int8" ? [g.scalar("inv_127", 1 / 127), g.scalar("tiny", 1e-30)] : ["", ""];
  const tokensShape = precision === "int8" ? g.one("Slice", [g.one("Shape", ["hidden"]), g.ints("from0", [0]), g.ints("to2", [2])]) : "";
  const rowShapes = new Map<string, { shape: string; scaleShape: string; zero: string }>();
  let rowsOfD: string | undefined;
  let int8ZeroPoint: string | undefined;
  /** The int8 zero point (0) of the cache's keys and values (the activations' own when they are int8). */
  const int8Zero = (): string => (int8ZeroPoint ??= signedActivations && zeroPoint ? zeroPoint : g.tensor("zero_i8", T.INT8, [], Int8Array.of(0)));
  /**
   * x ([..., D]) in 8 bits, each row of D with its own symmetric scale (max|row| / 127): one
   * QuantizeLinear over the rows ([N, D], N scales) where Div, Round and Cast (and Add, for uint8)
   * were a pass each, with the same bits (it divides and rounds half to even as they do). `zero`
   * picks int8 (0) or uint8 (128); `rowsOf` names the tensors of one shape, which share the shapes
   * and zero points derived from it. Returns the bytes shaped as x and the scales as [..., 1],
   * named when they are graph outputs.
   */
  const int8Rows = (x: string, zero: string, rowsOf: string, output?: string, scaleOutput?: string): [string, string] => {
    rowsOfD ??= g.ints("rows_of_d", [-1, D]);
    const rows = g.one("Reshape", [x, rowsOfD]);
    const scale = g.one("Mul", [g.one("Max", [g.one("ReduceMax", [g.one("Abs", [rows])], [intsAttr("axes", [1]), intAttr("keepdims", 0)]), tiny]), inv127]);
    let known = rowShapes.get(rowsOf);
    if (!known) {
      const shape = g.one("Shape", [x]);
      const leading = g.one("Slice", [shape, g.ints(`${rowsOf}.from`, [0]), g.ints(`${rowsOf}.to`, [-1])]);
      known = { shape, scaleShape: g.one("Concat", [leading, g.ints(`${rowsOf}.one`, [1])], [intAttr("axis", 0)]), zero: g.one("Expand", [zero, g.one("ReduceProd", [leading], [intAttr("keepdims", 1)])]) };
      rowShapes.set(rowsOf, known);
    }
    const quantized = g.one("QuantizeLinear", [rows, scale, known.zero], [intAttr("axis", 0)]);
    const shaped = (name: string | undefined, y: string, to: string) => (name ? g.named(name, "Reshape", [y, to]) : g.one("Reshape", [y, to]));
    return [shaped(output, quantized, known.shape), shaped(scaleOutput, scale, known.scaleShape)];
  };
  const outputShapes = new Map<string, string>();
  const namedInts = new Map<number, string>();
  const widthOf = (n: number): string => {
    const width = namedInts.get(n) ?? g.ints(`n_${n}`, [n]);
    namedInts.set(n, width);
    return width;
  };
  /** [B,S,n] (or [B,1,n] for the last rows), for the 2-D int8 products' outputs. */
  const outputShape = (n: number, rows: string): string => {
    const width = widthOf(n);
    const known = outputShapes.get(`${rows}:${n}`) ?? g.one("Concat", [rows, width], [intAttr("axis", 0)]);
    outputShapes.set(`${rows}:${n}`, known);
    return known;
  };
  interface Int8Input {
    quantized: string;
    scale: string;
    /** The outlier features' indices [k] and their rows' equalization [k,1]. */
    outliers?: { index: string; rowScale: string };
    /** The features multiplied in fp32, [T, k + e]: the outliers', then the exact ones'. */
    fp32Values?: string;
  }
  const zeroPoints = new Map<string, string>();
  const columnShapes = new Map<string, string>();
  /**
   * The columns `index` ([n]) of `flat` ([T,K]): the values Gather on axis 1 gives, which copies
   * them one float at a time: 32-43 ms of a 512-token run's kernels (0.6B shape, one thread)
   * against 10-12 ms for GatherElements and its Expand.
   */
  const fp32Columns = (flat: string, index: string, rows: string, n: number): string => {
    const key = `${rows}:${n}`;
    const shape = columnShapes.get(key) ?? g.one("Concat", [g.one("ReduceProd", [rows], [intAttr("keepdims", 1)]), widthOf(n)], [intAttr("axis", 0)]);
    columnShapes.set(key, shape);
    return g.one("GatherElements", [flat, g.one("Expand", [index, shape])], [intAttr("axis", 1)]);
  };
  /** `rows` names the rows x has (the tokens' shape it was computed over): products over the same rows share their zero points. */
  const int8Activations = (x: string, rows: string, K: number, rowMax: Float32Array, exact: readonly number[]): Int8Input => {
    const k = Math.min(outlierChannels, K);
    const flat = g.one("Reshape", [x, g.ints(`${x}.flat`, [-1, K])]);
    // The exact features are left out of the int8 product (zero in its equalizer) and of TopK's choice (ranked below every other).
    const equalizeRest = Float32Array.from(rowMax);
    const rank = Float32Array.from(rowMax);
    for (const c of exact) [equalizeRest[c], rank[c]] = [0, -1];
    const equalize = g.tensor(`${x}.equalize`, T.FLOAT, [K], equalizeRest);
    let rest: string;
    let outliers: Int8Input["outliers"];
    const columns: string[] = [];
    if (k > 0) {
      const magnitude = g.one("Mul", [g.one("ReduceMax", [g.one("Abs", [flat])], [intsAttr("axes", [0]), intAttr("keepdims", 0)]), exact.length > 0 ? g.tensor(`${x}.rank`, T.FLOAT, [K], rank) : equalize]);
      const index = g.op("TopK", [magnitude, g.ints(`${x}.k`, [k])], [], "", 2)[1] ?? "";
      const rowScale = g.one("Unsqueeze", [g.one("Gather", [equalize, index], [intAttr("axis", 0)]), g.ints(`${x}.axis1k`, [1])]);
      outliers = { index, rowScale };
      columns.push(index);
      // Equalized, with the outlier features zeroed: one multiplication.
      rest = g.one("Mul", [flat, g.one("ScatterElements", [equalize, index, g.tensor(`${x}.zeros`, T.FLOAT, [k], new Float32Array(k))], [intAttr("axis", 0)])]);
    } else {
      rest = g.one("Mul", [flat, equalize]);
    }
    if (exact.length > 0) columns.push(g.ints(`${x}.exact`, [...exact]));
    const values = columns.length > 0 ? fp32Columns(flat, columns.length > 1 ? g.one("Concat", columns, [intAttr("axis", 0)]) : (columns[0] ?? ""), rows, k + exact.length) : undefined;
    const reduce = [intsAttr("axes", [1]), intAttr("keepdims", 0)];
    const perToken = g.one("Mul", [g.one("Max", [g.one("ReduceMax", [rest], reduce), g.one("Neg", [g.one("ReduceMin", [rest], reduce)]), tiny]), inv127]);
    // QuantizeLinear wants a zero point per scale: one Expand for every product over these rows.
    const points = zeroPoints.get(rows) ?? g.one("Expand", [zeroPoint, g.one("Shape", [perToken])]);
    zeroPoints.set(rows, points);
    const quantized = g.one("QuantizeLinear", [rest, perToken, points], [intAttr("axis", 0)]);
    return { quantized, scale: g.one("Unsqueeze", [perToken, g.ints(`${x}.axis1`, [1])]), ...(outliers ? { outliers } : {}), ...(values ? { fp32Values: values } : {}) };
  };

  // RoPE as ONNX Runtime's RotaryEmbedding (rotate-half, one node instead of six): its caches are
  // the first halves of the run's cos/sin rows ([S,D/2]), read from position 0 on.
  const half = [g.ints("zero_d", [0]), g.ints("half_d", [D / 2]), g.ints("axis_d", [1])];
  const [cosHalf, sinHalf] = [g.one("Slice", ["cos", ...half]), g.one("Slice", ["sin", ...half])];
  const firstPosition = g.ints("first_position", [0]);
  /** RoPE of [B,heads,S,D], or of [B,S,heads*D]; `positions` [B,S] picks rows of the run's cos/sin (default: all, in order). */
  const rope = (x: string, positions = firstPosition): string => g.one("RotaryEmbedding", [x, positions, cosHalf, sinHalf], [], "com.microsoft");
  const qShape = g.ints("q_shape", [0, 0, nH, D]);
  const kvShape = g.ints("kv_shape", [0, 0, kvH, D]);
  const groupShape = g.ints("group_shape", [0, kvH, rep, -1, D]);
  const headsShape = g.ints("heads_shape", [0, nH, -1, D]);
  const flatShape = g.ints("flat_shape", [0, 0, nH * D]);
  const tokensFlat = g.ints("tokens_flat", [0, 0, -1]);
  const gainShape = kvCache === "int8" ? g.ints("gain_shape", [1, kvH, 1, 1, D]) : "";
  const scale = g.scalar("attn_scale", 1 / Math.sqrt(D));
  const one = g.ints("one", [1]);
  // The past, shared by the batch: [1,P,kvH,D] transposed and expanded to [B,kvH,P,D], one layer at a time.
  const batch = g.one("Slice", [g.one("Shape", ["hidden"]), g.ints("zero", [0]), one]);
  const pastTail = g.one("Gather", [g.one("Shape", [`past_k.${stage.first}`]), g.ints("kv_h_p_d", [2, 1, 3])]);
  const pastShape = g.one("Concat", [batch, pastTail], [intAttr("axis", 0)]);
  const unsqueeze2 = g.ints("axis2", [2]);
  // The int8 cache's past as int8 QK reads it, position-major: [B,P,kvH,D] and its scales [B,P,kvH,1].
  const pastShapeByPosition = int8Attention ? g.one("Concat", [batch, g.one("Gather", [g.one("Shape", [`past_k.${stage.first}`]), g.ints("p_kv_h_d", [1, 2, 3])])], [intAttr("axis", 0)]) : "";
  const pastScaleShape = int8Attention ? g.one("Concat", [batch, g.one("Gather", [g.one("Shape", [`past_k_scale.${stage.first}`]), g.ints("p_kv_h_1", [1, 2, 3])])], [intAttr("axis", 0)]) : "";

  // Causal attention in blocks of query rows: block i's rows [b_i, b_i+1) see keys [0, P + b_i+1)
  // only, so the zero part of the causal mask is neither multiplied nor softmaxed (FlashAttention's
  // point, in whole ONNX ops): with k blocks a run of S tokens after P computes S·P + S²(k+1)/2k
  // scores instead of S·(P + S), for a copy of each earlier block's keys and values. Only where the
  // past is short enough (P < BLOCKED_PAST_RUNS·S) does that pay; else every row falls in the last
  // block, which reads the keys uncopied, and the others are empty.
  // Bounds from the mask's shape [S, P + S], and what every layer's blocks share, made once (every
  // node costs the session's start) and only in a graph with a layer that uses them (a stage of the
  // last layer alone, or int8 QK^T, has none: ONNX Runtime warns of unused initializers).
  let shared: { zero: string; axis3: string; axis4: string; keyEnds: string[]; blockRows: string; blockMasks: string[] } | undefined;
  const queryBlocks = () => {
    if (shared) return shared;
    const maskShape = g.one("Shape", ["mask"]);
    const runRows = g.one("Slice", [maskShape, g.ints("qb_from0", [0]), one]);
    const pastLength = g.one("Sub", [g.one("Slice", [maskShape, one, g.ints("qb_to2", [2])]), runRows]);
    const split = g.one("Cast", [g.one("Less", [pastLength, g.one("Mul", [runRows, g.ints("qb_past_runs", [BLOCKED_PAST_RUNS])])])], [intAttr("to", T.INT64)]);
    const zero = g.ints("qb_zero", [0]);
    const bounds = Array.from({ length: QUERY_BLOCKS + 1 }, (_, i) =>
      i === 0 ? zero : i === QUERY_BLOCKS ? runRows : g.one("Mul", [split, g.one("Div", [g.one("Mul", [runRows, g.ints(`qb_times_${i}`, [i])]), g.ints(`qb_by_${i}`, [QUERY_BLOCKS])])]),
    );
    const keyEnds = bounds.map((b, i) => (i === 0 ? zero : g.one("Mul", [split, g.one("Add", [pastLength, b])])));
    const axes01 = g.ints("qb_axes01", [0, 1]);
    // The blocks' row counts, for one Split of the queries, and each block's rows and keys of the mask.
    const blockRows = g.one("Concat", bounds.slice(1).map((to, i) => g.one("Sub", [to, bounds[i] ?? ""])), [intAttr("axis", 0)]);
    const blockMasks = bounds.slice(1).map((to, i) => {
      const from = bounds[i] ?? "";
      if (i === QUERY_BLOCKS - 1) return g.one("Slice", ["mask", from, to, zero]);
      return g.one("Slice", ["mask", g.one("Concat", [from, zero], [intAttr("axis", 0)]), g.one("Concat", [to, keyEnds[i + 1] ?? ""], [intAttr("axis", 0)]), axes01]);
    });
    shared = { zero, axis3: g.ints("qb_axis3", [3]), axis4: g.ints("qb_axis4", [4]), keyEnds, blockRows, blockMasks };
    return shared;
  };
  /**
   * Attention of the queries over the keys [0, end) (every key when `end` is undefined), before
   * the mask: `queries` are tensors split by query row alike (the fp32 queries, or the int8
   * queries and their row scales), a block of each at a time.
   */
  type Scores = (queries: string[], end: string | undefined) => string;
  const attend = (queries: string[], scoresOf: Scores, values: string, mask: string, lastOnly: boolean): string => {
    const probsOf = (q: string[], end: string | undefined, m: string) => g.one("Softmax", [g.one("Add", [scoresOf(q, end), m])], [intAttr("axis", -1)]);
    if (lastOnly) return g.one("MatMul", [probsOf(queries, undefined, mask), values]);
    const { zero, axis3, keyEnds, blockRows, blockMasks } = queryBlocks();
    const blocks = queries.map((q) => g.op("Split", [q, blockRows], [intAttr("axis", 3)], "", QUERY_BLOCKS));
    const parts = blockMasks.map((m, i) => {
      const q = blocks.map((b) => b[i] ?? "");
      if (i === QUERY_BLOCKS - 1) return g.one("MatMul", [probsOf(q, undefined, m), values]);
      const keys = keyEnds[i + 1] ?? "";
      return g.one("MatMul", [probsOf(q, keys, m), g.one("Slice", [values, zero, keys, axis3])]);
    });
    return g.one("Concat", parts, [intAttr("axis", 3)]);
  };
  /** The first `end` columns of [..., T] (all when `end` is undefined). */
  const firstKeys = (x: string, end: string | undefined): string => {
    if (end === undefined) return x;
    const { zero, axis4 } = queryBlocks();
    return g.one("Slice", [x, zero, end, axis4]);
  };
  /** QK^T in fp32 of grouped queries [B,kvH,rep,S,D] and head-major keys [B,kvH,T,D], scaled by 1/sqrt(D). */
  const fp32Scores = (queries: string, keys: string): { queries: string[]; scores: Scores } => {
    const keysT = g.one("Transpose", [g.one("Unsqueeze", [keys, unsqueeze2])], [intsAttr("perm", [0, 1, 2, 4, 3])]);
    return { queries: [queries], scores: ([q], end) => g.one("Mul", [g.one("MatMul", [q ?? "", firstKeys(keysT, end)]), scale]) };
  };

  // z reads only each sequence's last row of the last layer, so that layer computes everything but
  // its keys and values (which the cache keeps for every token) for those rows alone: [B,1,...].
  const lastIndex = isLast ? g.one("Unsqueeze", ["last", g.ints("axis_last", [-1])]) : "";
  const lastRows = (x: string): string => g.one("Unsqueeze", [g.one("GatherND", [x, lastIndex], [intAttr("batch_dims", 1)]), one]);
  let x = "hidden";
  for (let l = stage.first; l < stage.end; l++) {
    const w = (n: string) => weights.matrix(`blk.${l}.${n}.weight`);
    const lastOnly = isLast && l === stage.end - 1;
    const h = rmsNorm(x, vector(`blk.${l}.attn_norm.weight`));
    const qNorm = g.tensor(`blk.${l}.attn_q_norm.weight`, T.FLOAT, [D], toFloat32(weights.matrix(`blk.${l}.attn_q_norm.weight`)));
    const kNorm = g.tensor(`blk.${l}.attn_k_norm.weight`, T.FLOAT, [D], toFloat32(weights.matrix(`blk.${l}.attn_k_norm.weight`)));
    // The rows this layer computes past its keys and values: every token, or the last of each sequence.
    const rows = lastOnly && precision === "int8" ? g.one("Concat", [batch, one], [intAttr("axis", 0)]) : tokensShape;
    const [qLin, kLin, vLin] = (
      lastOnly
        ? products([
            { x: lastRows(h), matrices: [w("attn_q")], tokens: rows },
            { x: h, matrices: [w("attn_k"), w("attn_v")] },
          ])
        : linear(h, [w("attn_q"), w("attn_k"), w("attn_v")])
    ) as [string, string, string];
    const queryPositions = lastOnly ? lastIndex : firstPosition;
    const q = rope(g.one("Transpose", [rmsNorm(g.one("Reshape", [qLin, qShape]), qNorm)], [intsAttr("perm", [0, 2, 1, 3])]), queryPositions);
    // The mask's rows of the queries: [S,T], or each sequence's last row as [B,1,1,1,T].
    const mask = lastOnly ? g.one("Reshape", [g.one("Gather", ["mask", "last"], [intAttr("axis", 0)]), g.ints(`mask_rows_${l}`, [0, 1, 1, 1, -1])]) : "mask";
    const kTokens = g.named(`new_k.${l}`, "Reshape", [rope(g.one("Reshape", [rmsNorm(g.one("Reshape", [kLin, kvShape]), kNorm), tokensFlat])), kvShape]);
    const vTokens = g.named(`new_v.${l}`, "Reshape", [vLin, kvShape]);
    const headMajor = (x: string) => g.one("Transpose", [x], [intsAttr("perm", [0, 2, 1, 3])]);
    // GQA: query head h uses key/value head h / rep, so the queries are grouped [B,kvH,rep,S,D].
    const grouped = g.one("Reshape", [q, groupShape]);
    let values: string;
    let attention: { queries: string[]; scores: Scores };
    if (kvCache === "int8") {
      // The 8-bit cache (kv-quant.ts). Keys are stored as (k - center) / gain, int8 per token and
      // head with their scales; the run's own keys are taken the same way and the queries
      // multiplied by the gain instead, so q·k loses only q·center, the same for every key of a
      // query row, which softmax does not see.
      const keyRelative = g.one("Div", [g.one("Sub", [kTokens, `k_center.${l}`]), `k_gain.${l}`]);
      // The run's keys and values as the cache keeps them (graph outputs): the engine appends these
      // bytes (only a run with no past, whose center and gain are not known yet, is quantized from new_k in JS).
      const [keyInt8, keyScale] = int8Rows(keyRelative, int8Zero(), "kv_rows", `new_k8.${l}`, `new_k_scale.${l}`);
      int8Rows(vTokens, int8Zero(), "kv_rows", `new_v8.${l}`, `new_v_scale.${l}`);
      const queries = g.one("Mul", [grouped, g.one("Reshape", [`k_gain.${l}`, gainShape])]);
      const dequantized = (kind: "k" | "v") => headMajor(g.one("Mul", [g.one("Cast", [`past_${kind}.${l}`], [intAttr("to", T.FLOAT)]), `past_${kind}_scale.${l}`]));
      if (int8Attention) {
        // QK^T as an int8 product over the cache (SageAttention): the run's keys in int8 after the
        // past's (the transposes move int8), the queries quantized per row (a row's scale is its
        // own: the same bits whatever else the run holds), and MatMulIntegerToFloat applying each
        // key's scale per column in its epilogue and each query's (times 1/sqrt(D)) after it.
        const allKeys = g.one("Concat", [g.one("Expand", [`past_k.${l}`, pastShapeByPosition]), keyInt8], [intAttr("axis", 1)]);
        const allScales = g.one("Concat", [g.one("Expand", [`past_k_scale.${l}`, pastScaleShape]), keyScale], [intAttr("axis", 1)]);
        // [B,P+S,kvH,D] -> [B,kvH,1,D,P+S]; scales [B,P+S,kvH,1] -> [B,kvH,1,1,P+S] (one per column).
        const keysT = g.one("Unsqueeze", [g.one("Transpose", [allKeys], [intsAttr("perm", [0, 2, 3, 1])]), unsqueeze2]);
        const keyScalesT = g.one("Unsqueeze", [g.one("Transpose", [allScales], [intsAttr("perm", [0, 2, 3, 1])]), unsqueeze2]);
        // The queries in the form the CPU multiplies fast and exactly (as the int8 products' activations).
        const [queryInt8, queryScale] = int8Rows(queries, zeroPoint, lastOnly ? "last_query_rows" : "query_rows");
        attention = {
          queries: [queryInt8, g.one("Mul", [queryScale, scale])],
          scores: ([q, qScale], end) => g.one("MatMulIntegerToFloat", [q ?? "", firstKeys(keysT, end), qScale ?? "", firstKeys(keyScalesT, end), zeroPoint], [], "com.microsoft"),
        };
      } else {
        const keys = g.op("Concat", [g.one("Expand", [dequantized("k"), pastShape]), headMajor(keyRelative)], [intAttr("axis", 2)])[0] ?? "";
        attention = fp32Scores(queries, keys);
      }
      values = g.op("Concat", [g.one("Expand", [dequantized("v"), pastShape]), headMajor(vTokens)], [intAttr("axis", 2)])[0] ?? "";
    } else {
      const keys = g.op("Concat", [g.one("Expand", [headMajor(`past_k.${l}`), pastShape]), headMajor(kTokens)], [intAttr("axis", 2)])[0] ?? "";
      values = g.op("Concat", [g.one("Expand", [headMajor(`past_v.${l}`), pastShape]), headMajor(vTokens)], [intAttr("axis", 2)])[0] ?? "";
      attention = fp32Scores(grouped, keys);
    }
    const valuesGrouped = g.one("Unsqueeze", [values, unsqueeze2]);
    const context = attend(attention.queries, attention.scores, valuesGrouped, mask, lastOnly);
    const merged = g.one("Reshape", [g.one("Transpose", [g.one("Reshape", [context, headsShape])], [intsAttr("perm", [0, 2, 1, 3])]), flatShape]);
    x = g.one("Add", [lastOnly ? lastRows(x) : x, linear(merged, [w("attn_output")], rows)[0] ?? ""]);
    const h2 = rmsNorm(x, vector(`blk.${l}.ffn_norm.weight`));
    const [gate, up] = linear(h2, [w("ffn_gate"), w("ffn_up")], rows) as [string, string];
    const act = g.one("Mul", [g.one("Mul", [gate, g.one("Sigmoid", [gate])]), up]);
    x = g.one("Add", [x, linear(act, [w("ffn_down")], rows)[0] ?? ""]);
  }
  /** The last layer's rows ([B,1,H], each sequence's last real token), and only the yes/no rows of the head: z. */
  const finalHead = (x: string): void => {
    const normed = rmsNorm(g.one("Squeeze", [x, one]), vector("output_norm.weight"));
    const yn = new Float32Array(H * 2);
    for (const [k, r] of [facts.yesRow, facts.noRow].entries()) {
      const row = toFloat32(weights.matrix(facts.headTensor, r, 1));
      for (let i = 0; i < H; i++) yn[i * 2 + k] = row[i] ?? 0;
    }
    const logits = g.one("MatMul", [normed, g.tensor("yes_no", T.FLOAT, [H, 2], yn)]);
    const [yes, no] = g.op("Split", [logits, g.ints("pair", [1, 1])], [intAttr("axis", -1)], "", 2) as [string, string];
    g.nodes.push({ opType: "Reshape", input: [g.one("Sub", [yes, no]), g.ints("flat", [-1])], output: ["z"], name: "z" });
  };

  const inputs = [valueInfo("hidden", T.FLOAT, ["B", "S", H]), valueInfo("cos", T.FLOAT, ["S", D]), valueInfo("sin", T.FLOAT, ["S", D]), valueInfo("mask", T.FLOAT, ["S", "T"])];
  const outputs: proto.IValueInfoProto[] = [];
  if (isLast) {
    inputs.push(valueInfo("last", T.INT64, ["B"]));
    outputs.push(valueInfo("z", T.FLOAT, ["B"]));
    finalHead(x);
  } else {
    g.nodes.push({ opType: "Identity", input: [x], output: ["hidden_out"], name: "hidden_out" });
    outputs.push(valueInfo("hidden_out", T.FLOAT, ["B", "S", H]));
  }
  for (let l = stage.first; l < stage.end; l++) {
    for (const kind of ["k", "v"]) {
      inputs.push(valueInfo(`past_${kind}.${l}`, kvCache === "int8" ? T.INT8 : T.FLOAT, [1, "P", kvH, D]));
      if (kvCache === "int8") inputs.push(valueInfo(`past_${kind}_scale.${l}`, T.FLOAT, [1, "P", kvH, 1]));
      outputs.push(valueInfo(`new_${kind}.${l}`, T.FLOAT, ["B", "S", kvH, D]));
      if (kvCache === "int8") outputs.push(valueInfo(`new_${kind}8.${l}`, T.INT8, ["B", "S", kvH, D]), valueInfo(`new_${kind}_scale.${l}`, T.FLOAT, ["B", "S", kvH, 1]));
    }
    if (kvCache === "int8") inputs.push(valueInfo(`k_center.${l}`, T.FLOAT, [1, 1, kvH, D]), valueInfo(`k_gain.${l}`, T.FLOAT, [1, 1, kvH, D]));
  }
  const model: proto.IModelProto = {
    irVersion: 8,
    producerName: "qwen-rerank",
    opsetImport: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    graph: { name: `qwen3-reranker-layers-${stage.first}-${stage.end}`, node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
  };
  return onnx.ModelProto.encode(model).finish();
}
