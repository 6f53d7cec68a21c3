import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { qwen3Metadata } from "../gguf/qwen3-metadata.js";
import { GgmlType } from "../gguf/types.js";
import type { GgufValue, TensorSpec } from "../gguf/writer.js";
import { writeGguf } from "../gguf/writer.js";
import { fromBfloat16, fromHalf, toBfloat16, toHalf } from "../gguf/half.js";
import { hashSeed, uniformStream } from "./rng.js";
import type { Qwen3Shape, ShapeName } from "./shapes.js";
import { SHAPES, VOCAB_ROWS } from "./shapes.js";
import { tokenId } from "../gguf/vocab.js";
import { loadQwen3Vocab } from "./vocab.js";

/** Plain causal LM (full LM head) or llama.cpp's rank head (`cls.output` with the yes/no rows). */
export type ModelFlavor = "causal" | "rank";
export type WeightType = "f32" | "f16" | "q8_0";

export interface MakeModelOptions {
  shape: ShapeName;
  /** Default "causal". */
  flavor?: ModelFlavor;
  /** Default "f32" for tiny, "q8_0" otherwise. */
  type?: WeightType;
  /** Default 1. */
  seed?: number;
  /**
   * Plants activation outliers as trained LLMs have them (LLM.int8(): a few hidden dimensions whose
   * values at the inputs of the linear layers are tens of times the rest, the same dimensions in
   * every layer and token): the RMSNorm weights of `channels` dimensions are `magnitude` instead of
   * ~1. With `weights: "damped"` (default) the matching input columns of q/k/v and gate/up are
   * divided by it, so the model's function keeps its scale (an equalizing quantizer can undo this
   * exactly); with "unchanged" they are not, and the outliers reach the products' outputs, as
   * massive activations whose weights are not small do. Default: none.
   */
  outliers?: PlantedOutliers | undefined;
  /**
   * Rounds every weight to this type before it is written, as a checkpoint saved in that type holds
   * it: the GGUF twin of `--format hf --dtype bf16` (same values, another container). Default: none.
   */
  roundTo?: "bf16" | "f16" | undefined;
  out: string;
}

export interface PlantedOutliers {
  /** Activation-outlier dimensions of the hidden state; 0 for none. */
  channels: number;
  magnitude: number;
  /** Default "damped". */
  weights?: "damped" | "unchanged" | undefined;
  /**
   * Key-outlier channels as trained LLMs' keys have them (SageAttention, KIVI: a few channels of
   * every key tens of times larger than the rest, with the same sign in every token: a bias the
   * keys share), planted the way they arise: one hidden dimension with the same positive value in
   * every token embedding (a "massive activation"), read with weight magnitude/sqrt(hidden) by the
   * last `channels` channels of each key head (the slowest RoPE pairs, so the bias survives
   * position), with every later layer's attention norm weighing that dimension 12 times (it
   * would fade as the residual stream grows). Measured with magnitude 30 (mean |k| of the planted
   * channels over a head's median channel): 0.6B shape ~15x in the first layer, 5-20x deeper, the
   * same sign in every token in most layers; tiny shape 20-30x in both layers.
   * The yes/no log-odds do not see the embedding's constant (it is the same for both rows of a
   * tied head). Default: none.
   */
  keys?: { channels: number; magnitude: number } | undefined;
}

/** The file-name suffix of a model with planted outliers (tests and bench share generated files). */
export const outliersSuffix = (o: PlantedOutliers | undefined): string =>
  o ? `${o.channels > 0 ? `-outliers${o.channels}x${o.magnitude}${o.weights === "unchanged" ? "-undamped" : ""}` : ""}${o.keys ? `-keys${o.keys.channels}x${o.keys.magnitude}` : ""}` : "";

/** A generated model before it is written: its GGUF metadata and tensors (rows on demand). */
export interface TestModelParts {
  shape: Qwen3Shape;
  meta: Array<[string, GgufValue]>;
  tensors: TensorSpec[];
}

const rounders = {
  bf16: (row: Float32Array) => {
    for (let i = 0; i < row.length; i++) row[i] = fromBfloat16(toBfloat16(row[i] ?? 0));
  },
  f16: (row: Float32Array) => {
    for (let i = 0; i < row.length; i++) row[i] = fromHalf(toHalf(row[i] ?? 0));
  },
} as const;

const ggmlTypeOf = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0 } as const;
const fileTypeOf = { f32: 0, f16: 1, q8_0: 7 } as const;

/**
 * Writes a GGUF with the real Qwen3 architecture and tokenizer and seeded random weights.
 * Deterministic: every row of every tensor has its own stream seeded from (seed, name, row), so
 * the same options give the same bytes. Scales are chosen so that the yes/no log-odds spread
 * over several units (scores that differ from pair to pair), not to resemble trained weights.
 */
export function makeTestModel(options: MakeModelOptions): void {
  const { meta, tensors } = testModelParts(options);
  mkdirSync(dirname(options.out), { recursive: true });
  writeGguf(options.out, meta, tensors);
}

/** The metadata and tensors `makeTestModel` writes (the HF-folder writer reuses the tensors' values). */
export function testModelParts(options: Omit<MakeModelOptions, "out">): TestModelParts {
  const shape: Qwen3Shape = SHAPES[options.shape];
  const flavor = options.flavor ?? "causal";
  const type = options.type ?? (options.shape === "tiny" ? "f32" : "q8_0");
  const seed = options.seed ?? 1;
  const matType = ggmlTypeOf[type];
  const vocab = loadQwen3Vocab();
  const yes = tokenId(vocab, "yes");
  const no = tokenId(vocab, "no");
  const h = shape.hidden;

  const uniform = (name: string, scale: number, offset = 0) => (rowIndex: number, row: Float32Array) => {
    const next = uniformStream(hashSeed(seed, `${name}#${rowIndex}`));
    // uniform in [-a, a] has standard deviation a / sqrt(3)
    const a = scale * Math.sqrt(3);
    for (let i = 0; i < row.length; i++) row[i] = offset + (2 * next() - 1) * a;
  };
  const matrix = (name: string, inDim: number, outDim: number, scale = 1 / Math.sqrt(inDim)): TensorSpec => ({
    name,
    dims: [inDim, outDim],
    type: matType,
    fillRow: uniform(name, scale),
  });
  const norm = (name: string, size: number): TensorSpec => ({ name, dims: [size], type: GgmlType.F32, fillRow: uniform(name, 0.05, 1) });
  // The outlier dimensions: spread over the hidden size, chosen by the seed.
  const { channels = 0, magnitude = 1, weights: outlierWeights = "damped" } = options.outliers ?? {};
  const offset = uniformStream(hashSeed(seed, "outliers"))();
  const outlierChannels = Array.from({ length: channels }, (_, i) => Math.floor(((i + offset) * h) / channels));
  const amplified = (spec: TensorSpec): TensorSpec => ({
    ...spec,
    fillRow: (r, row) => {
      spec.fillRow(r, row);
      for (const c of outlierChannels) row[c] = magnitude;
    },
  });
  const keyCount = options.outliers?.keys?.channels ?? 0;
  // The last channels of each head: RoPE pairs them at its lowest frequencies, so the bias survives position (as in trained models).
  const keyChannels = new Set(Array.from({ length: keyCount }, (_, i) => shape.headDim - keyCount + i));
  // The hidden dimension every token carries (not one of the activation outliers' dimensions).
  const massive = keyCount > 0 ? (Math.floor(offset * h) + 1) % h : -1;
  const withMassive = (spec: TensorSpec, value: number): TensorSpec => ({
    ...spec,
    fillRow: (r, row) => {
      spec.fillRow(r, row);
      row[massive] = value;
    },
  });
  const keyBiased = (spec: TensorSpec): TensorSpec => ({
    ...spec,
    fillRow: (r, row) => {
      spec.fillRow(r, row);
      if (keyChannels.has(r % shape.headDim)) row[massive] = (options.outliers?.keys?.magnitude ?? 1) / Math.sqrt(h);
    },
  });
  // Past the first layer the residual stream has grown around the massive dimension (the bias fell
  // from 15x to 2-3x on the 0.6B shape): each later layer's attention norm weighs that dimension
  // 12 times, as trained models' norms keep their massive activations in view.
  const massiveNormed = (spec: TensorSpec, layer: number): TensorSpec => ({
    ...spec,
    fillRow: (r, row) => {
      spec.fillRow(r, row);
      if (keyCount > 0 && layer > 0) row[massive] = 12;
    },
  });
  const damped = (spec: TensorSpec): TensorSpec => ({
    ...spec,
    fillRow: (r, row) => {
      spec.fillRow(r, row);
      if (outlierWeights === "damped") for (const c of outlierChannels) row[c] = (row[c] ?? 0) / magnitude;
    },
  });

  const headScale = 2 / Math.sqrt(h);
  // 16x the embedding's scale: large enough to survive the layers' residual additions (trained
  // models' massive activations are hundreds of times the median).
  const embd = keyCount > 0 ? withMassive(matrix("token_embd.weight", h, VOCAB_ROWS, headScale), 16 * headScale) : matrix("token_embd.weight", h, VOCAB_ROWS, headScale);
  const lmHeadName = shape.tiedEmbeddings ? "token_embd.weight" : "output.weight";
  const lmHeadRow = uniform(lmHeadName, headScale);

  const tensors: TensorSpec[] = [embd, norm("output_norm.weight", h)];
  // The llama.cpp converter drops an untied lm_head from rank-head files (only cls.output remains).
  if (!shape.tiedEmbeddings && flavor === "causal") tensors.push(matrix("output.weight", h, VOCAB_ROWS, headScale));
  if (flavor === "rank") {
    tensors.push({
      name: "cls.output.weight",
      dims: [h, 2],
      type: matType,
      fillRow: (r, row) => lmHeadRow(r === 0 ? yes : no, row),
    });
  }
  const qDim = shape.heads * shape.headDim;
  const kvDim = shape.kvHeads * shape.headDim;
  for (let l = 0; l < shape.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      massiveNormed(amplified(norm(`${p}attn_norm.weight`, h)), l),
      damped(matrix(`${p}attn_q.weight`, h, qDim)),
      keyBiased(damped(matrix(`${p}attn_k.weight`, h, kvDim))),
      damped(matrix(`${p}attn_v.weight`, h, kvDim)),
      matrix(`${p}attn_output.weight`, qDim, h),
      norm(`${p}attn_q_norm.weight`, shape.headDim),
      norm(`${p}attn_k_norm.weight`, shape.headDim),
      amplified(norm(`${p}ffn_norm.weight`, h)),
      damped(matrix(`${p}ffn_gate.weight`, h, shape.ffn)),
      damped(matrix(`${p}ffn_up.weight`, h, shape.ffn)),
      matrix(`${p}ffn_down.weight`, shape.ffn, h),
    );
  }

  const meta = qwen3Metadata({
    name: `qwen-rerank test model (Qwen3-Reranker ${options.shape} shape, ${flavor}, seed ${seed}${channels > 0 ? `, ${channels} outlier channels x${magnitude}${outlierWeights === "damped" ? "" : " (weights unchanged)"}` : ""}${options.outliers?.keys ? `, ${options.outliers.keys.channels} key outlier channels x${options.outliers.keys.magnitude}` : ""})`,
    fileType: fileTypeOf[type],
    shape,
    contextLength: shape.contextLength,
    ropeTheta: 1e6,
    rmsEps: 1e-6,
    head: flavor,
    vocab,
    eosTokenId: 151645,
    paddingTokenId: 151643,
    bosTokenId: 151643,
    addBos: false,
  });
  const round = options.roundTo ? rounders[options.roundTo] : undefined;
  const rounded = round
    ? tensors.map((t): TensorSpec => ({
        ...t,
        fillRow: (r, row) => {
          t.fillRow(r, row);
          round(row);
        },
      }))
    : tensors;
  return { shape, meta, tensors: rounded };
}

/** True when the file exists (the generator is deterministic, so an existing file is the same bytes). */
