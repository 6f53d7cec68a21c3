import type { ModelShape } from "../model/facts.js";
import { QWEN3_RERANK_TEMPLATE } from "../prompt/template.js";
import type { GgufVocab } from "./vocab.js";
import type { GgufValue } from "./writer.js";

/** What a Qwen3 GGUF's metadata says (docs/architecture.md, "GGUF flavours"). */
export interface Qwen3GgufFacts {
  name: string;
  /** general.file_type: 0 F32, 1 F16, 7 Q8_0. */
  fileType: number;
  shape: ModelShape;
  contextLength: number;
  ropeTheta: number;
  rmsEps: number;
  /** "rank": pooling RANK, the yes/no classifier labels and the rerank chat template. */
  head: "rank" | "causal";
  vocab: GgufVocab;
  eosTokenId: number | undefined;
  paddingTokenId: number | undefined;
  bosTokenId: number | undefined;
  addBos: boolean;
}

/** The metadata of a Qwen3 GGUF, in the keys and order llama.cpp's qwen3 loader and converter use: one place for the generator and the converter. */
export function qwen3Metadata(f: Qwen3GgufFacts): Array<[string, GgufValue]> {
  const a = "qwen3";
  const meta: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: a }],
    ["general.type", { type: "string", value: "model" }],
    ["general.name", { type: "string", value: f.name }],
    ["general.file_type", { type: "u32", value: f.fileType }],
    ["general.quantization_version", { type: "u32", value: 2 }],
    [`${a}.block_count`, { type: "u32", value: f.shape.layers }],
    [`${a}.context_length`, { type: "u32", value: f.contextLength }],
    [`${a}.embedding_length`, { type: "u32", value: f.shape.hidden }],
    [`${a}.feed_forward_length`, { type: "u32", value: f.shape.ffn }],
    [`${a}.attention.head_count`, { type: "u32", value: f.shape.heads }],
    [`${a}.attention.head_count_kv`, { type: "u32", value: f.shape.kvHeads }],
    [`${a}.attention.key_length`, { type: "u32", value: f.shape.headDim }],
    [`${a}.attention.value_length`, { type: "u32", value: f.shape.headDim }],
    [`${a}.rope.freq_base`, { type: "f32", value: f.ropeTheta }],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: "f32", value: f.rmsEps }],
  ];
  if (f.head === "rank") {
    meta.push([`${a}.pooling_type`, { type: "u32", value: 4 }], [`${a}.classifier.output_labels`, { type: "string[]", value: ["yes", "no"] }]);
  }
  meta.push(
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: "qwen2" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: f.vocab.tokens }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: f.vocab.tokenTypes }],
    ["tokenizer.ggml.merges", { type: "string[]", value: f.vocab.merges }],
  );
  if (f.eosTokenId !== undefined) meta.push(["tokenizer.ggml.eos_token_id", { type: "u32", value: f.eosTokenId }]);
  if (f.paddingTokenId !== undefined) meta.push(["tokenizer.ggml.padding_token_id", { type: "u32", value: f.paddingTokenId }]);
  if (f.bosTokenId !== undefined) meta.push(["tokenizer.ggml.bos_token_id", { type: "u32", value: f.bosTokenId }]);
  meta.push(["tokenizer.ggml.add_bos_token", { type: "bool", value: f.addBos }]);
  if (f.vocab.chatTemplate !== undefined) meta.push(["tokenizer.chat_template", { type: "string", value: f.vocab.chatTemplate }]);
  if (f.head === "rank") {
    meta.push(["tokenizer.chat_templates", { type: "string[]", value: ["rerank"] }], ["tokenizer.chat_template.rerank", { type: "string", value: QWEN3_RERANK_TEMPLATE }]);
  }
  return meta;
}
