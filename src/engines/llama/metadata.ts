import type { GgufFileInfo } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import type { ModelFlavor, ModelShape } from "../../model/facts.js";

interface Qwen3Metadata {
  block_count?: number;
  embedding_length?: number;
  feed_forward_length?: number;
  context_length?: number;
  pooling_type?: number;
  attention?: { head_count?: number; head_count_kv?: number; key_length?: number };
  classifier?: { output_labels?: string[] };
}

const RANK_POOLING = 4;

/** What the engine needs from a GGUF's metadata: the flavour, the shape, the context length. */
export interface ModelFacts {
  flavor: ModelFlavor;
  shape: ModelShape | undefined;
  trainContext: number;
}

/**
 * Detects the GGUF flavour (docs/architecture.md, "GGUF flavours"): rank head when pooling_type is RANK and
 * `cls.output.weight` is present, with labels ["yes","no"]; plain causal LM otherwise.
 */
export function readModelFacts(info: GgufFileInfo, trainContext: number): ModelFacts {
  const meta = info.metadata as unknown as { general?: { architecture?: string } } & Record<string, Qwen3Metadata | undefined>;
  const arch = meta.general?.architecture;
  if (arch !== "qwen3") {
    throw new RerankError("model_unsupported", `expected a Qwen3-Reranker GGUF (architecture qwen3), found ${arch ?? "no architecture"}`);
  }
  const q = meta.qwen3 ?? {};
  const hasClsHead = (info.tensorInfo ?? []).some((t) => t.name === "cls.output.weight");
  let flavor: ModelFlavor = "causal";
  if (q.pooling_type === RANK_POOLING && hasClsHead) {
    const labels = q.classifier?.output_labels;
    if (!labels || labels.length !== 2 || labels[0] !== "yes" || labels[1] !== "no") {
      throw new RerankError("model_unsupported", `rank-head GGUF must have classifier labels ["yes","no"], found ${JSON.stringify(labels)}`);
    }
    flavor = "rank";
  }
  const heads = q.attention?.head_count;
  const hidden = q.embedding_length;
  const shape =
    q.block_count && hidden && heads && q.feed_forward_length
      ? {
          layers: q.block_count,
          hidden,
          heads,
          kvHeads: q.attention?.head_count_kv ?? heads,
          headDim: q.attention?.key_length ?? hidden / heads,
          ffn: q.feed_forward_length,
        }
      : undefined;
  return { flavor, shape, trainContext: q.context_length ?? trainContext };
}
