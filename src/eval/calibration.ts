import { scoreFromLogit } from "../scoring/temperature.js";

/** Score = sigmoid(z / temperature + bias), as the reranker computes it. */
export interface Calibration {
  temperature: number;
  bias: number;
}

export interface CalibrationFit extends Calibration {
  /** Newton iterations taken. */
  iterations: number;
  /** True when the best temperature lies outside [MIN_T, MAX_T] and was clamped. */
  clamped: boolean;
}

export const MIN_TEMPERATURE = 0.01;
export const MAX_TEMPERATURE = 100;

const EPS = 1e-15;

/** Mean negative log-likelihood of binary labels under the scores (natural log). */
export function logLoss(logits: ArrayLike<number>, labels: ArrayLike<number>, c: Calibration): number {
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = Math.min(1 - EPS, Math.max(EPS, scoreFromLogit(logits[i] ?? 0, c.temperature, c.bias)));
    sum -= (labels[i] ?? 0) > 0 ? Math.log(p) : Math.log(1 - p);
  }
  return logits.length === 0 ? 0 : sum / logits.length;
}

/** Mean squared error of the scores against the labels. */
export function brier(logits: ArrayLike<number>, labels: ArrayLike<number>, c: Calibration): number {
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += (scoreFromLogit(logits[i] ?? 0, c.temperature, c.bias) - (labels[i] ?? 0)) ** 2;
  return logits.length === 0 ? 0 : sum / logits.length;
}

export interface ReliabilityBin {
  /** The bin's score range [lo, hi). */
  lo: number;
  hi: number;
  count: number;
  /** Mean score in the bin. */
  confidence: number;
  /** Fraction of relevant documents in the bin. */
  accuracy: number;
}

/** Equal-width reliability bins over [0, 1] (a score of exactly 1 falls in the last bin). */
export function reliability(logits: ArrayLike<number>, labels: ArrayLike<number>, c: Calibration, bins = 10): ReliabilityBin[] {
  const out = Array.from({ length: bins }, (_, b) => ({ lo: b / bins, hi: (b + 1) / bins, count: 0, confidence: 0, accuracy: 0 }));
  for (let i = 0; i < logits.length; i++) {
    const p = scoreFromLogit(logits[i] ?? 0, c.temperature, c.bias);
    const bin = out[Math.min(bins - 1, Math.floor(p * bins))];
    if (!bin) continue;
    bin.count++;
    bin.confidence += p;
    bin.accuracy += (labels[i] ?? 0) > 0 ? 1 : 0;
  }
  for (const bin of out) {
    if (bin.count === 0) continue;
    bin.confidence /= bin.count;
    bin.accuracy /= bin.count;
  }
  return out;
}

/** Expected calibration error: the count-weighted mean |accuracy - confidence| over the bins. */
export function expectedCalibrationError(logits: ArrayLike<number>, labels: ArrayLike<number>, c: Calibration, bins = 10): number {
  if (logits.length === 0) return 0;
  return reliability(logits, labels, c, bins).reduce((s, b) => s + (b.count / logits.length) * Math.abs(b.accuracy - b.confidence), 0);
}

/**
 * Fits sigmoid(a z + b) to binary labels by Newton's method on the log-loss (Platt scaling, a
 * convex problem), then reports T = 1 / a. With `fitBias` false, b stays 0 and only a is fitted.
 * A slope outside [1 / MAX_T, 1 / MIN_T] is clamped there (and the bias refitted): a non-positive
 * slope means the scores rank against the labels, which no temperature can fix.
 */
export function fitCalibration(logits: ArrayLike<number>, labels: ArrayLike<number>, fitBias = true): CalibrationFit {
  const n = logits.length;
  if (n === 0) return { temperature: 1, bias: 0, iterations: 0, clamped: false };
  const minA = 1 / MAX_TEMPERATURE;
  const maxA = 1 / MIN_TEMPERATURE;
  let a = 1;
  let b = 0;
  let iterations = 0;
  const loss = (a_: number, b_: number) => logLoss(logits, labels, { temperature: 1 / a_, bias: b_ });
  const step = (fixA: boolean): void => {
    for (let it = 0; it < 100; it++) {
      iterations++;
      let ga = 0;
      let gb = 0;
      let haa = 0;
      let hab = 0;
      let hbb = 0;
      for (let i = 0; i < n; i++) {
        const z = logits[i] ?? 0;
        const p = scoreFromLogit(a * z + b);
        const r = p - ((labels[i] ?? 0) > 0 ? 1 : 0);
        const w = p * (1 - p);
        ga += r * z;
        gb += r;
        haa += w * z * z;
        hab += w * z;
        hbb += w;
      }
      // A small ridge keeps the Hessian invertible when the data are separable or constant.
      const ridge = 1e-9 * n;
      let da = 0;
      let db = 0;
      if (fixA) {
        db = fitBias ? gb / (hbb + ridge) : 0;
      } else if (fitBias) {
        const det = (haa + ridge) * (hbb + ridge) - hab * hab;
        da = ((hbb + ridge) * ga - hab * gb) / det;
        db = ((haa + ridge) * gb - hab * ga) / det;
      } else {
        da = ga / (haa + ridge);
      }
      // Backtracking: Newton steps can overshoot on near-separable data.
      const before = loss(a, b);
      let t = 1;
      let na = a - da;
      let nb = b - db;
      while (t > 1e-6 && loss(Math.min(maxA, Math.max(minA, na)), nb) > before + 1e-12) {
        t /= 2;
        na = a - t * da;
        nb = b - t * db;
      }
      const clampedA = Math.min(maxA, Math.max(minA, na));
      const moved = Math.abs(clampedA - a) + Math.abs(nb - b);
      a = clampedA;
      b = nb;
      if (moved < 1e-10 || t <= 1e-6) break;
    }
  };
  step(false);
  const clamped = a <= minA || a >= maxA;
  // At a bound the slope is fixed: refit the bias alone so it is optimal for that slope.
  if (clamped) step(true);
  return { temperature: 1 / a, bias: fitBias ? b : 0, iterations, clamped };
}
