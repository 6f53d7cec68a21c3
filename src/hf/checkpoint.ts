import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ModelShape } from "../model/facts.js";
import { RerankError } from "../errors/errors.js";
import type { HfTokenizerConfig, HfTokenizerJson } from "../gguf/vocab.js";
import type { SafetensorsTensor } from "./safetensors.js";
import { readSafetensorsHeader } from "./safetensors.js";

/** The fields of a Qwen3 `config.json` that the GGUF needs (transformers' Qwen3Config). */
interface Qwen3Config extends ModelShape {
  architecture: string;
  vocabSize: number;
  ropeTheta: number;
  rmsEps: number;
  contextLength: number;
  tiedEmbeddings: boolean;
  bosTokenId: number | undefined;
  eosTokenId: number | undefined;
  torchDtype: string | undefined;
}

/** An official-layout Hugging Face checkpoint folder, its headers read and checked; no weights loaded. */
export interface Checkpoint {
  dir: string;
  config: Qwen3Config;
  /** Every tensor by its Hugging Face name. */
  tensors: Map<string, SafetensorsTensor>;
  /** The shard files, in index order. */
  shards: string[];
  tokenizer: HfTokenizerJson;
  tokenizerConfig: HfTokenizerConfig;
  /** The files whose bytes define the checkpoint (the conversion cache hashes them). */
  files: string[];
}

export const CONFIG_FILE = "config.json";
const INDEX_FILE = "model.safetensors.index.json";
const SINGLE_SHARD = "model.safetensors";
const TOKENIZER_FILE = "tokenizer.json";
const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

/** Whether a directory looks like a Hugging Face model folder (what `--model` tells apart from a GGUF). */
export const isCheckpointDir = (path: string): boolean => {
  try {
    return statSync(path).isDirectory() && existsSync(join(path, CONFIG_FILE));
  } catch {
    return false;
  }
};

const readJson = (dir: string, file: string): unknown => {
  const path = join(dir, file);
  if (!existsSync(path)) throw new RerankError("model_not_found", `${file} is missing from ${dir}`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new RerankError("model_unsupported", `${path} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
};

/** Reads config.json; anything that is not Qwen3 (or not a shape we can write) is refused by name. */
function parseQwen3Config(raw: unknown, dir: string): Qwen3Config {
  const c = (raw ?? {}) as Record<string, unknown>;
  const architectures = Array.isArray(c.architectures) ? c.architectures.map(String) : [];
  const architecture = architectures[0] ?? (typeof c.model_type === "string" ? c.model_type : "an unknown architecture");
  if (c.model_type !== "qwen3" || !architectures.includes("Qwen3ForCausalLM")) {
    throw new RerankError(
      "model_unsupported",
      `${join(dir, CONFIG_FILE)} describes ${architecture} (model_type ${JSON.stringify(c.model_type)}); qwen-rerank converts Qwen3 checkpoints (Qwen3ForCausalLM, model_type "qwen3"), the architecture of Qwen3-Reranker`,
    );
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new RerankError("model_unsupported", `${join(dir, CONFIG_FILE)}: ${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) throw new RerankError("model_unsupported", `${join(dir, CONFIG_FILE)}: ${key} must be a positive number, got ${JSON.stringify(c[key])}`);
    return v;
  };
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    throw new RerankError("model_unsupported", `${join(dir, CONFIG_FILE)}: rope_scaling ${JSON.stringify(c.rope_scaling)} is not converted (the Qwen3-Reranker checkpoints have none)`);
  }
  if (c.attention_bias === true) throw new RerankError("model_unsupported", `${join(dir, CONFIG_FILE)}: attention_bias is true; Qwen3 has no attention biases`);
  const hidden = int("hidden_size");
  const heads = int("num_attention_heads");
  const optionalId = (key: string): number | undefined => (typeof c[key] === "number" ? c[key] : undefined);
  return {
    architecture,
    layers: int("num_hidden_layers"),
    hidden,
    heads,
    kvHeads: int("num_key_value_heads", heads),
    headDim: int("head_dim", Math.floor(hidden / heads)),
    ffn: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    ropeTheta: num("rope_theta", 1e6),
    rmsEps: num("rms_norm_eps", 1e-6),
    contextLength: int("max_position_embeddings"),
    tiedEmbeddings: c.tie_word_embeddings === true,
    bosTokenId: optionalId("bos_token_id"),
    eosTokenId: optionalId("eos_token_id"),
    torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : typeof c.dtype === "string" ? c.dtype : undefined,
  };
}

/** The shard files and which tensor each holds: from the index when there is one, else the single file. */
function shardMap(dir: string): { shards: string[]; weightMap: Map<string, string> | undefined; indexFile?: string } {
  if (existsSync(join(dir, INDEX_FILE))) {
    const index = readJson(dir, INDEX_FILE) as { weight_map?: Record<string, string> };
    if (!index.weight_map || typeof index.weight_map !== "object") throw new RerankError("model_unsupported", `${join(dir, INDEX_FILE)} has no weight_map`);
    const weightMap = new Map(Object.entries(index.weight_map).map(([t, f]) => [t, String(f)]));
    const shards = [...new Set(weightMap.values())];
    const missing = shards.filter((f) => !existsSync(join(dir, f)));
    if (missing.length > 0) {
      throw new RerankError("model_not_found", `missing shard${missing.length > 1 ? "s" : ""} ${missing.join(", ")} in ${dir} (named by ${INDEX_FILE}; an interrupted download?)`);
    }
    return { shards, weightMap, indexFile: INDEX_FILE };
  }
  if (existsSync(join(dir, SINGLE_SHARD))) return { shards: [SINGLE_SHARD], weightMap: undefined };
  throw new RerankError("model_not_found", `no weights in ${dir}: neither ${INDEX_FILE} nor ${SINGLE_SHARD} is there`);
}

/**
 * Opens a checkpoint folder: config.json, the tokenizer files, every shard's header (checked
 * against the index). Nothing is written and no weight is read: any problem is found before a
 * conversion starts.
 */
export function openCheckpoint(dir: string): Checkpoint {
  if (!isCheckpointDir(dir)) throw new RerankError("model_not_found", `${dir} is not a Hugging Face model folder (no ${CONFIG_FILE})`);
  const config = parseQwen3Config(readJson(dir, CONFIG_FILE), dir);
  const tokenizer = readJson(dir, TOKENIZER_FILE) as HfTokenizerJson;
  if (tokenizer.model?.type !== "BPE" || typeof tokenizer.model.vocab !== "object" || !Array.isArray(tokenizer.model.merges) || !Array.isArray(tokenizer.added_tokens)) {
    throw new RerankError("model_unsupported", `${join(dir, TOKENIZER_FILE)} is not a BPE tokenizer with vocab, merges and added_tokens (Qwen3's is)`);
  }
  const tokenizerConfig = existsSync(join(dir, TOKENIZER_CONFIG_FILE)) ? (readJson(dir, TOKENIZER_CONFIG_FILE) as HfTokenizerConfig) : {};
  const { shards, weightMap, indexFile } = shardMap(dir);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const shard of shards) {
    for (const t of readSafetensorsHeader(join(dir, shard))) {
      // A tensor in a shard the index does not assign it to is not ours to read (it may be stale).
      if (weightMap && weightMap.get(t.name) !== shard) continue;
      tensors.set(t.name, t);
    }
  }
  if (weightMap) {
    for (const [name, shard] of weightMap) {
      if (!tensors.has(name)) throw new RerankError("model_unsupported", `${INDEX_FILE} puts tensor ${name} in ${shard}, but ${shard} has no such tensor`);
    }
  }
  const files = [CONFIG_FILE, TOKENIZER_FILE, ...(existsSync(join(dir, TOKENIZER_CONFIG_FILE)) ? [TOKENIZER_CONFIG_FILE] : []), ...(indexFile ? [indexFile] : []), ...shards];
  return { dir, config, tensors, shards, tokenizer, tokenizerConfig, files };
}
