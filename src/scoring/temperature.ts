/**
 * The calibrated score of a pair: sigmoid(z / T + bias). T = 1 and bias = 0 give the official
 * score (softmax over [no, yes]); T < 1 sharpens, T > 1 flattens, and a bias (fitted by
 * `qwen-rerank calibrate`) shifts the probability. A monotone map: it never changes the ranking.
 */
export function scoreFromLogit(z: number, temperature = 1, bias = 0): number {
  const x = z / temperature + bias;
  // Two branches keep exp() from overflowing for large |x|.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
