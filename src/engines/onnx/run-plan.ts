/** The shortest run a long document is cut into (shorter ones would leave the matrix products mostly idle). */
export const MIN_RUN = 64;

/** The default `runScoreBytes` of the onnx engine: most bytes of one run's attention scores in a layer. */
export const DEFAULT_RUN_SCORE_BYTES = 512 * 2 ** 20;

/**
 * Tokens in the next run of a document after `past` cached positions. A run of s tokens holds
 * attention scores of heads × s × (past + s) floats a layer, and as many again for the masked
 * scores and the probabilities: with runs of 512, a 32k-token pair on the 8B shape (32 heads) held
 * 2.1 GB a tensor and was killed at 24.3 GB. So a run is `batchSize` tokens until its scores
 * would pass `scoreBytes`, then shorter, down to MIN_RUN: the attention's work per token is the
 * same, only the weights' products get fewer rows at once.
 */
export function runLength(past: number, batchSize: number, heads: number, scoreBytes: number): number {
  const fits = Math.floor(scoreBytes / (4 * heads * (past + batchSize)));
  return Math.max(Math.min(MIN_RUN, batchSize), Math.min(batchSize, fits));
}

/**
 * A document's last piece of at most `batchSize / TAIL_FOLD` tokens joins the run before it (when
 * their scores stay within the budget): every run costs a pass over every weight matrix and each of
 * the graph's ~5,000 nodes, however short it is, and a 512-token chunk with its prompt's end was
 * 512 + 12 tokens, two runs: 524 tokens after an 80-token head ran 1.051x faster as one (0.6B
 * shape, int8, one thread, bench/onnx-ab.ts). Its log-odds move by int8 rounding (the outlier
 * features are picked over one run of 524 tokens instead of 512 and 12; max |dz| 0.17 on those
 * documents), within the agreement bars against the llama.cpp engine (docs/benchmarks.md).
 */
export const TAIL_FOLD = 4;

/** The runs `tokens` tokens after `past` cached positions are evaluated in, in order: their lengths (the last one scores). */
export function runPlan(past: number, tokens: number, batchSize: number, heads: number, scoreBytes: number): number[] {
  const runs: number[] = [];
  for (let done = 0; done < tokens; ) {
    let length = Math.min(tokens - done, runLength(past + done, batchSize, heads, scoreBytes));
    const rest = tokens - done - length;
    if (rest > 0 && rest <= Math.floor(batchSize / TAIL_FOLD) && 4 * heads * (length + rest) * (past + done + length + rest) <= scoreBytes) length += rest;
    runs.push(length);
    done += length;
  }
  return runs;
}
