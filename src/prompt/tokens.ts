import { commonPrefixLength } from "./groups.js";
import { DEFAULT_INSTRUCTION, formatBody, PREFIX, SUFFIX } from "./template.js";

/** What the prompt builder needs from a tokenizer (the model's own, in the llama engine). */
export interface PromptTokenizer {
  /** Tokenizes without adding BOS; `parseSpecial` turns `<|im_start|>`-style strings into control tokens. */
  tokenize(text: string, parseSpecial: boolean): readonly number[];
  /** Text of plain tokens (needed to cut long documents into windows). */
  detokenize?(tokens: readonly number[]): string;
}

/** Which end of an over-long document truncation removes: its end (official) or its start. */
export type TruncationSide = "end" | "start";

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
  /**
   * Length of the pair's reusable head: PREFIX plus the BODY tokens that do not depend on the
   * document (instruction and query). A function of the pair alone, never of the pairs it is
   * batched with: engines evaluate the head and the rest as two fixed pieces, so that a pair's
   * log-odds do not depend on what was evaluated before it (docs/architecture.md, determinism).
   */
  headLength: number;
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
  /** BODY tokens with an empty document, per instruction and query (the head candidates). */
  private readonly heads = new Map<string, readonly number[]>();

  constructor(private readonly tokenizer: PromptTokenizer) {
    this.prefix = tokenizer.tokenize(PREFIX, true);
    this.suffix = tokenizer.tokenize(SUFFIX, true);
  }

  /** The smallest max_length that leaves room for at least one BODY token. */
  get minMaxLength(): number {
    return this.prefix.length + this.suffix.length + 1;
  }

  /**
   * Official truncation: only BODY is cut, keeping its beginning; PREFIX and SUFFIX always survive.
   * `cut: "start"` (TEI's `truncation_direction: "Left"`) keeps the end of the document instead:
   * the instruction and query stay whole and the document loses its first tokens.
   */
  build(pair: PairText, maxLength: number, cut: TruncationSide = "end"): PairTokens {
    const budget = maxLength - this.prefix.length - this.suffix.length;
    if (budget < 1) throw new RangeError(`max_length ${maxLength} leaves no room for the query and document (minimum ${this.minMaxLength})`);
    const instruction = (pair.instruction ?? DEFAULT_INSTRUCTION).normalize("NFC");
    const query = pair.query.normalize("NFC");
    const body = this.tokenizer.tokenize(formatBody(instruction, query, pair.document.normalize("NFC")), false);
    // The head is where this body stops agreeing with the body of an empty document: BPE may merge
    // the document's first characters into the template's last token, so it is measured, not assumed.
    const head = commonPrefixLength([body, this.emptyDocumentBody(instruction, query)]);
    let kept = body;
    if (body.length > budget) kept = cut === "start" && head < budget ? [...body.slice(0, head), ...body.slice(body.length - (budget - head))] : body.slice(0, budget);
    const headLength = this.prefix.length + Math.min(head, kept.length);
    return { tokens: [...this.prefix, ...kept, ...this.suffix], truncated: kept.length < body.length, bodyTokens: body.length, headLength };
  }

  private emptyDocumentBody(instruction: string, query: string): readonly number[] {
    const key = `${instruction}\0${query}`;
    let head = this.heads.get(key);
    if (!head) {
      // Bounded: a request brings few queries, and re-tokenizing a head is cheap.
      if (this.heads.size >= 256) this.heads.clear();
      head = this.tokenizer.tokenize(formatBody(instruction, query, ""), false);
      this.heads.set(key, head);
    }
    return head;
  }
}
