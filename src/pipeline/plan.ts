import { RerankError, ValidationError } from "../errors/errors.js";
import type { ChunkSpan, Overflow } from "../prompt/chunking.js";
import { CHUNK_OVERLAP, chunkWindows } from "../prompt/chunking.js";
import { formatBody } from "../prompt/template.js";
import type { PairText, PromptBuilder, PromptTokenizer, TruncationSide } from "../prompt/tokens.js";
import type { PreparedPair } from "./log-odds.js";

/** A pair whose instruction has been chosen (by routing). */
export type RoutedPair = PairText & { instruction: string };

/** Pairs turned into engine work: one prepared pair per pair, or one per window of a chunked document. */
export interface PairPlan {
  prepared: PreparedPair[];
  /** For each prepared pair, the index of the pair it belongs to. */
  owner: number[];
  /** For each prepared pair, its window (chunked documents only). */
  spans: Array<ChunkSpan | undefined>;
  pairs: number;
}

/** Per pair, after reduction: its log-odds, whether it was cut, and its best window when chunked. */
export interface ReducedPair {
  logit: number;
  truncated: boolean;
  chunk: ChunkSpan | undefined;
}

/**
 * Tokenizes pairs for the engine (official template and truncation). With overflow "chunk", a
 * document whose pair does not fit is cut into overlapping windows of its own tokens, each a pair
 * of its own with the same instruction and query; `reduce` then keeps each document's best window
 * (MaxP).
 */
export class Planner {
  constructor(
    private readonly prompt: PromptBuilder,
    private readonly tokenizer: PromptTokenizer,
  ) {}

  /** Tokens of PREFIX plus SUFFIX: what every pair costs besides its BODY. */
  get templateTokens(): number {
    return this.prompt.prefix.length + this.prompt.suffix.length;
  }

  /** The smallest max_length that leaves room for at least one BODY token. */
  get minMaxLength(): number {
    return this.prompt.minMaxLength;
  }

  /** Tokens of a text in the model's vocabulary (plain text, no special tokens). */
  countTokens(text: string): number {
    return this.tokenizer.tokenize(text, false).length;
  }

  /** The token ids of a text (special-token strings such as `<|im_start|>` parsed when `special`). */
  tokenize(text: string, special: boolean): readonly number[] {
    return this.tokenizer.tokenize(text, special);
  }

  /** The text of token ids, or undefined when the engine cannot detokenize. */
  detokenize(tokens: readonly number[]): string | undefined {
    return this.tokenizer.detokenize?.(tokens);
  }

  /** Tokens of a pair besides its document. */
  overhead(instruction: string, query: string): number {
    return this.countTokens(formatBody(instruction.normalize("NFC"), query.normalize("NFC"), "")) + this.templateTokens;
  }

  /** `cut` applies to truncation: "start" keeps the end of an over-long document (TEI's Left). */
  plan(pairs: readonly RoutedPair[], maxLengthOf: number | ((pair: number) => number), overflow: Overflow, cut: TruncationSide = "end"): PairPlan {
    const plan: PairPlan = { prepared: [], owner: [], spans: [], pairs: pairs.length };
    pairs.forEach((pair, i) => {
      const maxLength = typeof maxLengthOf === "number" ? maxLengthOf : maxLengthOf(i);
      const whole = this.prepare(pair, maxLength, cut);
      if (overflow === "truncate" || !whole.truncated) {
        plan.prepared.push(whole);
        plan.owner.push(i);
        plan.spans.push(undefined);
        return;
      }
      for (const w of this.windows(pair, maxLength)) {
        plan.prepared.push(this.prepare({ ...pair, document: w.text }, maxLength));
        plan.owner.push(i);
        plan.spans.push(w);
      }
    });
    return plan;
  }

  /** MaxP: each pair's log-odds is the best of its windows; results in pair order. */
  reduce(plan: PairPlan, logits: Float64Array): ReducedPair[] {
    const out: ReducedPair[] = Array.from({ length: plan.pairs }, () => ({ logit: Number.NEGATIVE_INFINITY, truncated: false, chunk: undefined }));
    plan.owner.forEach((i, k) => {
      const r = out[i];
      if (!r) return;
      const z = logits[k] ?? Number.NaN;
      if (z > r.logit || Number.isNaN(z)) {
        r.logit = z;
        r.chunk = plan.spans[k];
      }
      if (!plan.spans[k]) r.truncated = plan.prepared[k]?.truncated ?? false;
    });
    return out;
  }

  private prepare(pair: RoutedPair, maxLength: number, cut: TruncationSide = "end"): PreparedPair {
    const built = this.prompt.build(pair, maxLength, cut);
    return { tokens: built.tokens, truncated: built.truncated, headLength: built.headLength };
  }

  private windows(pair: RoutedPair, maxLength: number): ChunkSpan[] {
    const tokenizer = this.tokenizer;
    if (!tokenizer.detokenize) throw new RerankError("engine_unavailable", "this engine cannot detokenize, so documents cannot be chunked");
    // Two tokens of slack: BPE may merge across the boundary between the template and the window.
    const size = maxLength - this.overhead(pair.instruction, pair.query) - 2;
    if (size < 8) throw new ValidationError(`max_length ${maxLength} leaves ${Math.max(0, size)} tokens per window after the instruction and query; raise it to chunk`, "maxLength");
    const tokens = this.tokenizer.tokenize(pair.document.normalize("NFC"), false);
    const spans = chunkWindows(tokens.length, size, Math.floor(size * CHUNK_OVERLAP));
    return spans.map(([start, end]) => ({ start, end, windows: spans.length, text: tokenizer.detokenize?.(tokens.slice(start, end)) ?? "" }));
  }
}
