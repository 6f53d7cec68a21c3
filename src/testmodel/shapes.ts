import type { ModelShape } from "../model/facts.js";

/** Hyper-parameters of a Qwen3 model (the fields llama.cpp's qwen3 loader reads). */
export interface Qwen3Shape extends ModelShape {
  tiedEmbeddings: boolean;
  contextLength: number;
}

/** Rows of the embedding matrix in the real files (151,669 tokens padded). */
export const VOCAB_ROWS = 151936;

/** The published Qwen3-Reranker shapes (docs/architecture.md, "Shapes") plus a tiny one for fast tests. */
export const SHAPES = {
  tiny: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 16, ffn: 128, tiedEmbeddings: true, contextLength: 40960 },
  "0.6b": { layers: 28, hidden: 1024, heads: 16, kvHeads: 8, headDim: 128, ffn: 3072, tiedEmbeddings: true, contextLength: 40960 },
  "4b": { layers: 36, hidden: 2560, heads: 32, kvHeads: 8, headDim: 128, ffn: 9728, tiedEmbeddings: true, contextLength: 40960 },
  "8b": { layers: 36, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, ffn: 12288, tiedEmbeddings: false, contextLength: 40960 },
} as const satisfies Record<string, Qwen3Shape>;

export type ShapeName = keyof typeof SHAPES;

/** Weight parameters of a shape (embedding rows included once, twice when untied). */
export function parameterCount(s: Qwen3Shape): number {
  const attn = s.hidden * s.heads * s.headDim * 2 + s.hidden * s.kvHeads * s.headDim * 2 + 2 * s.headDim;
  const mlp = 3 * s.hidden * s.ffn;
  const perLayer = attn + mlp + 2 * s.hidden;
  return s.layers * perLayer + VOCAB_ROWS * s.hidden * (s.tiedEmbeddings ? 1 : 2) + s.hidden;
}

/**
 * Forward-pass FLOPs for one token at a given context position (2 per multiply-add): the
 * matrix products of every layer, attention over `position` earlier tokens, and one head row pair.
 * The LM head is excluded: the engines compute it for the last position only.
 */
export function flopsPerToken(s: ModelShape, position: number): number {
  const proj = s.hidden * s.heads * s.headDim * 2 + s.hidden * s.kvHeads * s.headDim * 2;
  const mlp = 3 * s.hidden * s.ffn;
  const attention = 2 * s.heads * s.headDim * position;
  return 2 * s.layers * (proj + mlp + attention);
}
