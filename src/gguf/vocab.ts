/** llama.cpp token types (gguf-py TokenType). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

/** The parts of a Hugging Face `tokenizer.json` (BPE) that a GGUF vocabulary is made of. */
export interface HfTokenizerJson {
  model: { type?: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
}

/** The parts of a `tokenizer_config.json` the GGUF carries. */
export interface HfTokenizerConfig {
  chat_template?: string;
  eos_token?: string | null | { content: string };
  pad_token?: string | null | { content: string };
  bos_token?: string | null | { content: string };
  add_bos_token?: boolean;
}

export interface GgufVocab {
  tokens: string[];
  tokenTypes: Int32Array;
  merges: string[];
  chatTemplate: string | undefined;
}

// The same rule as llama.cpp's converter (does_token_look_special): <|...|> names are control tokens.
const looksSpecial = (t: string): boolean => /^<\|.*\|>$/.test(t);

/**
 * A Hugging Face BPE tokenizer in llama.cpp's GGUF form, laid out as convert_hf_to_gguf.py lays it
 * out: BPE tokens, added tokens (special ones as control tokens), then `[PADn]` rows up to `rows`
 * (the embedding matrix's row count, 151,936 for Qwen3).
 */
export function ggufVocab(tokenizer: HfTokenizerJson, config: HfTokenizerConfig, rows: number): GgufVocab {
  const tokens = new Array<string>(rows);
  const tokenTypes = new Int32Array(rows);
  const place = (id: number, text: string, type: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= rows) throw new RangeError(`${what} ${JSON.stringify(text)} has id ${id}, outside the ${rows} embedding rows`);
    tokens[id] = text;
    tokenTypes[id] = type;
  };
  for (const [text, id] of Object.entries(tokenizer.model.vocab)) place(id, text, NORMAL, "token");
  for (const added of tokenizer.added_tokens) place(added.id, added.content, added.special || looksSpecial(added.content) ? CONTROL : USER_DEFINED, "added token");
  for (let i = 0; i < rows; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      tokenTypes[i] = UNUSED;
    }
  }
  const merges = tokenizer.model.merges.map((m) => (typeof m === "string" ? m : `${m[0]} ${m[1]}`));
  return { tokens, tokenTypes, merges, chatTemplate: config.chat_template };
}

/** Looks up a token id by its exact vocabulary string. */
export function tokenId(vocab: GgufVocab, text: string): number {
  const id = vocab.tokens.indexOf(text);
  if (id < 0) throw new RangeError(`token ${JSON.stringify(text)} is not in the vocabulary`);
  return id;
}

/** The id of a special token named in tokenizer_config.json (a string or an AddedToken object), if any. */
export function configTokenId(vocab: GgufVocab, token: HfTokenizerConfig["eos_token"]): number | undefined {
  const text = typeof token === "string" ? token : token?.content;
  if (text === undefined) return undefined;
  const id = vocab.tokens.indexOf(text);
  return id < 0 ? undefined : id;
}
