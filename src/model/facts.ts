// The model's own facts, below everything that reads, converts, generates or runs a model file.

/** How the model file produces the yes/no decision (docs/architecture.md, "GGUF flavours"). */
export type ModelFlavor = "causal" | "rank";

/** The Qwen3 hyper-parameters an engine found in the model (used for FLOP accounting). */
export interface ModelShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
}
