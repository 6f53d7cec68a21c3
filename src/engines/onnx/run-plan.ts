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

/** The runs `tokens` tokens after `past` cached positions are evaluated in, in order: their lengths (the last one scores). */
export function runPlan(past: number, tokens: number, batchSize: number, heads: number, scoreBytes: number): number[] {
  const runs: number[] = [];
  for (let done = 0; done < tokens; ) {
    const length = Math.min(tokens - done, runLength(past + done, batchSize, heads, scoreBytes));
    runs.push(length);
    done += length;
  }
  return runs;
}
