// The official Qwen3-Reranker prompt (Qwen3-Embedding repository, Transformers path). These strings
// are byte-exact; every engine and every dialect gets its tokens from here and nowhere else.

export const PREFIX =
  '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n';

export const SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

/** The official default instruction. */
export const DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query";

/** The BODY of the prompt for one pair. */
export function formatBody(instruction: string, query: string, document: string): string {
  return `<Instruct>: ${instruction}\n<Query>: ${query}\n<Document>: ${document}`;
}

/**
 * The rank template that llama.cpp's converter stores in rank-head GGUFs
 * (`tokenizer.chat_template.rerank`); the test-model generator writes it so that other tools
 * accept our files. We never score with it: its instruction is fixed.
 */
export const QWEN3_RERANK_TEMPLATE =
  PREFIX + `<Instruct>: ${DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}` + SUFFIX;

/** The official examples use 8192; the models accept 32,768 tokens. */
export const DEFAULT_MAX_LENGTH = 8192;
export const MAX_SUPPORTED_LENGTH = 32768;
