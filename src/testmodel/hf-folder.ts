import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toBfloat16, toHalf } from "../gguf/half.js";
import type { TensorSpec } from "../gguf/writer.js";
import { writeAll, writeAtomically } from "../gguf/writer.js";
import type { MakeModelOptions } from "./generate.js";
import { ELEMENT_BYTES } from "../hf/safetensors.js";
import { testModelParts } from "./generate.js";
import { VOCAB_ROWS } from "./shapes.js";
import { qwen3TokenizerFiles } from "./vocab.js";

/** The element types a generated checkpoint can be saved in (the official ones are bfloat16). */
export type HfDtype = "bf16" | "f16" | "f32";
const SAFETENSORS_DTYPE = { bf16: "BF16", f16: "F16", f32: "F32" } as const;
const TORCH_DTYPE = { bf16: "bfloat16", f16: "float16", f32: "float32" } as const;

export interface MakeHfModelOptions extends Omit<MakeModelOptions, "flavor" | "type" | "roundTo" | "out"> {
  /** Default "bf16". */
  dtype?: HfDtype | undefined;
  /** Largest shard in bytes before the next starts (transformers' max_shard_size). Default 5e9. */
  shardBytes?: number | undefined;
  /** The folder to write (created; its model files are replaced). */
  out: string;
}

/**
 * GGUF tensor name -> the name transformers' Qwen3ForCausalLM saves it under. Spelled out here on
 * purpose, not derived from the converter's map: a generated folder checks the converter only if
 * the two were written independently.
 */
function hfName(gguf: string): string {
  const fixed: Record<string, string> = { "token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight" };
  const known = fixed[gguf];
  if (known) return known;
  const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(gguf);
  const part: Record<string, string> = {
    attn_norm: "input_layernorm",
    attn_q: "self_attn.q_proj",
    attn_k: "self_attn.k_proj",
    attn_v: "self_attn.v_proj",
    attn_output: "self_attn.o_proj",
    attn_q_norm: "self_attn.q_norm",
    attn_k_norm: "self_attn.k_norm",
    ffn_norm: "post_attention_layernorm",
    ffn_gate: "mlp.gate_proj",
    ffn_up: "mlp.up_proj",
    ffn_down: "mlp.down_proj",
  };
  const hf = m ? part[m[2] ?? ""] : undefined;
  if (!m || !hf) throw new Error(`no Hugging Face name for ${gguf}`);
  return `model.layers.${m[1]}.${hf}.weight`;
}

const rowBytes = (t: TensorSpec, dtype: HfDtype): number => (t.dims[0] ?? 1) * ELEMENT_BYTES[SAFETENSORS_DTYPE[dtype]];
const tensorBytes = (t: TensorSpec, dtype: HfDtype): number => t.dims.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[SAFETENSORS_DTYPE[dtype]];

/** Writes one safetensors file: the header (8-aligned, as the reference writer pads it), then each tensor's rows. */
function writeShard(path: string, tensors: readonly TensorSpec[], dtype: HfDtype): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    const size = tensorBytes(t, dtype);
    // PyTorch shape is [out, in]: ggml dims reversed, the same row-major bytes.
    header[hfName(t.name)] = { dtype: SAFETENSORS_DTYPE[dtype], shape: [...t.dims].reverse(), data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeAtomically(path, (fd) => {
    writeAll(fd, length);
    writeAll(fd, Buffer.from(json, "utf8"));
    for (const t of tensors) {
      const cols = t.dims[0] ?? 1;
      const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const row = new Float32Array(cols);
      const perChunk = Math.max(1, Math.floor((8 << 20) / rowBytes(t, dtype)));
      const chunk = Buffer.alloc(perChunk * rowBytes(t, dtype));
      for (let r = 0; r < rows; r += perChunk) {
        const n = Math.min(perChunk, rows - r);
        for (let i = 0; i < n; i++) {
          t.fillRow(r + i, row);
          const at = i * rowBytes(t, dtype);
          for (let c = 0; c < cols; c++) {
            const v = row[c] ?? 0;
            if (dtype === "f32") chunk.writeFloatLE(v, at + 4 * c);
            else chunk.writeUInt16LE(dtype === "bf16" ? toBfloat16(v) : toHalf(v), at + 2 * c);
          }
        }
        writeAll(fd, chunk, n * rowBytes(t, dtype));
      }
    }
  });
}

/**
 * Writes the generated model (the same seeded weights as `makeTestModel` with the causal head) as
 * a Hugging Face checkpoint folder laid out as `save_pretrained` lays out Qwen3-Reranker:
 * config.json, model.safetensors (or shards `model-0000N-of-0000M.safetensors` with
 * model.safetensors.index.json), and the real Qwen3 tokenizer.json / tokenizer_config.json.
 */
export function makeHfTestModel(options: MakeHfModelOptions): { shards: number; bytes: number } {
  const dtype = options.dtype ?? "bf16";
  const maxShard = options.shardBytes ?? 5e9;
  const { shape, tensors } = testModelParts({ shape: options.shape, flavor: "causal", type: "f32", seed: options.seed, outliers: options.outliers });
  const shards: TensorSpec[][] = [[]];
  let used = 0;
  for (const t of tensors) {
    const size = tensorBytes(t, dtype);
    const current = shards.at(-1) ?? [];
    if (current.length > 0 && used + size > maxShard) {
      shards.push([]);
      used = 0;
    }
    (shards.at(-1) ?? current).push(t);
    used += size;
  }
  mkdirSync(options.out, { recursive: true });
  const names = shards.length === 1 ? ["model.safetensors"] : shards.map((_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`);
  rmSync(join(options.out, "model.safetensors.index.json"), { force: true });
  shards.forEach((s, i) => writeShard(join(options.out, names[i] ?? ""), s, dtype));
  const bytes = tensors.reduce((a, t) => a + tensorBytes(t, dtype), 0);
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      for (const t of s) weightMap[hfName(t.name)] = names[i] ?? "";
    });
    writeFileSync(join(options.out, "model.safetensors.index.json"), `${JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2)}\n`);
  }
  const config = {
    architectures: ["Qwen3ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: shape.headDim,
    hidden_act: "silu",
    hidden_size: shape.hidden,
    initializer_range: 0.02,
    intermediate_size: shape.ffn,
    max_position_embeddings: shape.contextLength,
    max_window_layers: shape.layers,
    model_type: "qwen3",
    num_attention_heads: shape.heads,
    num_hidden_layers: shape.layers,
    num_key_value_heads: shape.kvHeads,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000,
    sliding_window: null,
    tie_word_embeddings: shape.tiedEmbeddings,
    torch_dtype: TORCH_DTYPE[dtype],
    transformers_version: "4.51.0",
    use_cache: true,
    use_sliding_window: false,
    vocab_size: VOCAB_ROWS,
  };
  writeFileSync(join(options.out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  const { tokenizerPath, configPath } = qwen3TokenizerFiles();
  copyFileSync(tokenizerPath, join(options.out, "tokenizer.json"));
  copyFileSync(configPath, join(options.out, "tokenizer_config.json"));
  return { shards: shards.length, bytes };
}
