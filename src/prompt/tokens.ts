import { DEFAULT_INSTRUCTION, formatBody, PREFIX, SUFFIX } from "./template.js";

/** What the prompt builder needs from a tokenizer (the model's own, in the llama engine). */
export interface PromptTokenizer {
  /** Tokenizes without adding BOS; `parseSpecial` turns `<|im_start|>`-style strings into control tokens. */
  tokenize(text: string, parseSpecial: boolean): readonly number[];
  /** Text of plain tokens (needed to cut long documents into windows). */
  detokenize?(tokens: readonly number[]): string;
}

export interface PairText {
  /** Default: the official default instruction. */
  instruction?: string | undefined;
  query: string;
  document: string;
}

export interface PairTokens {
  tokens: number[];
  /** True when BODY was cut to fit max_length. */
  truncated: boolean;
  /** Tokens BODY had before truncation. */
  bodyTokens: number;
}

/**
 * Builds `tok(PREFIX) ++ tok(BODY) ++ tok(SUFFIX)` as the official code does, with two deliberate
 * choices: text is NFC-normalised first (the reference tokenizer normalises, llama.cpp does not),
 * and BODY is tokenized with special-token parsing off, so that a `<|im_end|>` typed inside a
 * query or document stays plain text and can never close the prompt early. For text without such
 * strings the tokens are identical to the official ones.
 */
export class PromptBuilder {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];

  constructor(private readonly tokenizer: PromptTokenizer) {
    this.prefix = tokenizer.tokenize(PREFIX, true);
    this.suffix = tokenizer.tokenize(SUFFIX, true);
  }

  /** The smallest max_length that leaves room for at least one BODY token. */
  get minMaxLength(): number {
    return this.prefix.length + this.suffix.length + 1;
  }

  /** Official truncation: only BODY is cut, keeping its beginning; PREFIX and SUFFIX always survive. */
  build(pair: PairText, maxLength: number): PairTokens {
    const budget = maxLength - this.prefix.length - this.suffix.length;
    if (budget < 1) throw new RangeError(`max_length ${maxLength} leaves no room for the query and document (minimum ${this.minMaxLength})`);
    const body = this.tokenizer.tokenize(
      formatBody(
        (pair.instruction ?? DEFAULT_INSTRUCTION).normalize("NFC"),
        pair.query.normalize("NFC"),
        pair.document.normalize("NFC"),
      ),
      false,
    );
    const kept = body.length > budget ? body.slice(0, budget) : body;
    return { tokens: [...this.prefix, ...kept, ...this.suffix], truncated: kept.length < body.length, bodyTokens: body.length };
  }
}
