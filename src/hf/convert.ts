import { mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { RerankError } from "../errors/errors.js";
import { GgmlType } from "../gguf/types.js";
import { qwen3Metadata } from "../gguf/qwen3-metadata.js";
import type { GgufVocab } from "../gguf/vocab.js";
import { configTokenId, ggufVocab, tokenId } from "../gguf/vocab.js";
import type { GgufValue, TensorSpec } from "../gguf/writer.js";
import { writeGguf } from "../gguf/writer.js";
import type { Checkpoint } from "./checkpoint.js";
import type { SafetensorsTensor } from "./safetensors.js";
import { RowReader } from "./safetensors.js";

/** The GGUF weight types a conversion writes (norms are always F32, as llama.cpp's converter keeps them). */
export type ConvertType = "f32" | "f16" | "q8_0";
export const CONVERT_TYPES: readonly ConvertType[] = ["f16", "q8_0", "f32"];
/**
 * "rank": llama.cpp's rank head for this family (`cls.output` from the yes/no rows of lm_head,
 * pooling RANK; an untied lm_head is dropped). "causal": the whole lm_head kept.
 */
export type HeadKind = "rank" | "causal";
export const HEAD_KINDS: readonly HeadKind[] = ["rank", "causal"];

export interface ConvertOptions {
  out: string;
  /** Default "f16". */
  type?: ConvertType | undefined;
  /** Default "rank". */
  head?: HeadKind | undefined;
  /** The model's name in the GGUF (general.name). Default: the folder's name. */
  name?: string | undefined;
  onProgress?: ((written: number, total: number) => void) | undefined;
}

export interface ConversionSummary {
  out: string;
  type: ConvertType;
  head: HeadKind;
  tensors: number;
  /** GGUF tensor count per ggml type name. */
  types: Record<string, number>;
  bytes: number;
  seconds: number;
}

const ggmlTypeOf = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0 } as const;
const fileTypeOf = { f32: 0, f16: 1, q8_0: 7 } as const;
const typeNames: Record<number, string> = { [GgmlType.F32]: "F32", [GgmlType.F16]: "F16", [GgmlType.Q8_0]: "Q8_0" };

/** Hugging Face tensor name → GGUF name, for the tensors of one layer (convert_hf_to_gguf.py's map for qwen3). */
const LAYER_TENSORS: ReadonlyArray<readonly [hf: string, gguf: string]> = [
  ["input_layernorm", "attn_norm"],
  ["self_attn.q_proj", "attn_q"],
  ["self_attn.k_proj", "attn_k"],
  ["self_attn.v_proj", "attn_v"],
  ["self_attn.o_proj", "attn_output"],
  ["self_attn.q_norm", "attn_q_norm"],
  ["self_attn.k_norm", "attn_k_norm"],
  ["post_attention_layernorm", "ffn_norm"],
  ["mlp.gate_proj", "ffn_gate"],
  ["mlp.up_proj", "ffn_up"],
  ["mlp.down_proj", "ffn_down"],
];

/** A tensor to copy: where it comes from, its GGUF name and PyTorch shape [out, in] (or [n]). */
interface Planned {
  source: SafetensorsTensor;
  gguf: string;
  shape: readonly number[];
  /** Rows of the source to take, in order (the rank head takes two rows of lm_head). Default: all. */
  rows?: readonly number[];
}

/** Checks every tensor the config implies against the checkpoint and lays out the GGUF's tensors. */
function plan(ckpt: Checkpoint, head: HeadKind, yes: number, no: number): Planned[] {
  const c = ckpt.config;
  const used = new Set<string>();
  const take = (hf: string, gguf: string, shape: readonly number[]): Planned => {
    const source = ckpt.tensors.get(hf);
    if (!source) throw new RerankError("model_unsupported", `the checkpoint has no tensor ${hf} (config.json implies it)`);
    if (source.shape.length !== shape.length || source.shape.some((d, i) => d !== shape[i])) {
      throw new RerankError("model_unsupported", `tensor ${hf} has shape ${JSON.stringify(source.shape)}; config.json implies ${JSON.stringify(shape)}`);
    }
    used.add(hf);
    return { source, gguf, shape };
  };
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const layerShape: Record<string, readonly number[]> = {
    attn_norm: [c.hidden],
    attn_q: [q, c.hidden],
    attn_k: [kv, c.hidden],
    attn_v: [kv, c.hidden],
    attn_output: [c.hidden, q],
    attn_q_norm: [c.headDim],
    attn_k_norm: [c.headDim],
    ffn_norm: [c.hidden],
    ffn_gate: [c.ffn, c.hidden],
    ffn_up: [c.ffn, c.hidden],
    ffn_down: [c.hidden, c.ffn],
  };
  const embd = take("model.embed_tokens.weight", "token_embd.weight", [c.vocabSize, c.hidden]);
  const out: Planned[] = [embd, take("model.norm.weight", "output_norm.weight", [c.hidden])];
  // A tied checkpoint may still store lm_head (a copy); transformers ignores it, and so do we.
  if (c.tiedEmbeddings) used.add("lm_head.weight");
  const lmHead = c.tiedEmbeddings ? embd : take("lm_head.weight", "output.weight", [c.vocabSize, c.hidden]);
  if (head === "causal" && !c.tiedEmbeddings) out.push(lmHead);
  if (head === "rank") out.push({ source: lmHead.source, gguf: "cls.output.weight", shape: [2, c.hidden], rows: [yes, no] });
  for (let l = 0; l < c.layers; l++) {
    for (const [hf, gguf] of LAYER_TENSORS) {
      out.push(take(`model.layers.${l}.${hf}.weight`, `blk.${l}.${gguf}.weight`, layerShape[gguf] ?? []));
    }
  }
  const unexpected = [...ckpt.tensors.keys()].filter((n) => !used.has(n));
  if (unexpected.length > 0) {
    throw new RerankError(
      "model_unsupported",
      `the checkpoint has tensors a Qwen3 model does not: ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ""}`,
    );
  }
  return out;
}

/** The GGUF metadata: Qwen3 hyper-parameters from config.json, the tokenizer, and the head's keys. */
function metadata(ckpt: Checkpoint, options: Required<Pick<ConvertOptions, "type" | "head" | "name">>, vocab: GgufVocab): Array<[string, GgufValue]> {
  const c = ckpt.config;
  return qwen3Metadata({
    name: options.name,
    fileType: fileTypeOf[options.type],
    shape: c,
    contextLength: c.contextLength,
    ropeTheta: c.ropeTheta,
    rmsEps: c.rmsEps,
    head: options.head,
    vocab,
    eosTokenId: c.eosTokenId ?? configTokenId(vocab, ckpt.tokenizerConfig.eos_token),
    paddingTokenId: configTokenId(vocab, ckpt.tokenizerConfig.pad_token),
    bosTokenId: c.bosTokenId ?? configTokenId(vocab, ckpt.tokenizerConfig.bos_token),
    addBos: ckpt.tokenizerConfig.add_bos_token === true,
  });
}

/**
 * Converts an opened checkpoint to a GGUF that both engines and llama.cpp load, tensor by tensor
 * and row by row (memory stays a few buffers, whatever the model's size). The file appears under
 * `out` only when complete; a failure leaves nothing behind.
 */
export function convertCheckpoint(ckpt: Checkpoint, options: ConvertOptions): ConversionSummary {
  const started = performance.now();
  const type = options.type ?? "f16";
  const head = options.head ?? "rank";
  const name = options.name ?? basename(ckpt.dir);
  let vocab: GgufVocab;
  let yes: number;
  let no: number;
  try {
    vocab = ggufVocab(ckpt.tokenizer, ckpt.tokenizerConfig, ckpt.config.vocabSize);
    yes = tokenId(vocab, "yes");
    no = tokenId(vocab, "no");
  } catch (error) {
    throw new RerankError("model_unsupported", `tokenizer.json does not fit this model: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const planned = plan(ckpt, head, yes, no);
  const matType = ggmlTypeOf[type];
  // One open file per tensor being written, closed after its last row (or by the finally below).
  const readers = new Set<RowReader>();
  const specs: TensorSpec[] = planned.map((p) => {
    const ggmlType = p.shape.length === 1 ? GgmlType.F32 : matType;
    const lastRow = (p.rows?.length ?? (p.shape.length > 1 ? (p.shape[0] ?? 1) : 1)) - 1;
    let reader: RowReader | undefined;
    return {
      name: p.gguf,
      dims: [...p.shape].reverse(),
      type: ggmlType,
      fillRow: (r, row) => {
        reader ??= new RowReader(p.source);
        readers.add(reader);
        reader.row(p.rows ? (p.rows[r] ?? 0) : r, row);
        if (r === lastRow) {
          reader.close();
          readers.delete(reader);
          reader = undefined;
        }
      },
    };
  });
  mkdirSync(dirname(options.out), { recursive: true });
  let bytes = 0;
  try {
    writeGguf(options.out, metadata(ckpt, { type, head, name }, vocab), specs, {
      onProgress: (written, total) => {
        bytes = total;
        options.onProgress?.(written, total);
      },
    });
  } catch (error) {
    if (error instanceof RerankError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new RerankError(
      "invalid_request",
      `cannot write ${options.out}${code ? ` (${code}${code === "ENOSPC" || code === "EFBIG" || code === "EDQUOT" ? ": the disk or file-size limit is full" : ""})` : ""}: ${error instanceof Error ? error.message : String(error)}; nothing was left behind`,
      { cause: error },
    );
  } finally {
    for (const r of readers) r.close();
  }
  const types: Record<string, number> = {};
  for (const s of specs) types[typeNames[s.type] ?? String(s.type)] = (types[typeNames[s.type] ?? String(s.type)] ?? 0) + 1;
  return { out: options.out, type, head, tensors: specs.length, types, bytes, seconds: (performance.now() - started) / 1000 };
}
