/**
 * The calibrated score of a pair: sigmoid(z / T). T = 1 is the official score (softmax over
 * [no, yes]); T < 1 sharpens, T > 1 flattens. A monotone map: it never changes the ranking.
 */
export function scoreFromLogit(z: number, temperature = 1): number {
  const x = z / temperature;
  // Two branches keep exp() from overflowing for large |x|.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
