import { z } from "zod";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { Monitor, MonitorSnapshot, RequestRecord } from "./monitor.js";

/** The guide's rule, every number a setting. */
export interface SeedRule {
  /** Average latency above which the batch size halves. Default 1000 ms. */
  slowMs: number;
  /** Average latency below which the batch size doubles. Default 200 ms. */
  fastMs: number;
  /** Smallest batch size the rule sets. Default 4. */
  minBatch: number;
  /** Largest batch size the rule sets. Default 16. */
  maxBatch: number;
  /** Score mean above which the temperature is multiplied by `raise`. Default 0.9. */
  highMean: number;
  /** Score mean below which the temperature is multiplied by `lower`. Default 0.6. */
  lowMean: number;
  /** Default 1.1. */
  raise: number;
  /** Default 0.9. */
  lower: number;
  /** Largest temperature the rule sets. Default 1.0. */
  maxTemperature: number;
  /** Smallest temperature the rule sets. Default 0.3. */
  minTemperature: number;
}

export const SEED_RULE: SeedRule = { slowMs: 1000, fastMs: 200, minBatch: 4, maxBatch: 16, highMean: 0.9, lowMean: 0.6, raise: 1.1, lower: 0.9, maxTemperature: 1, minTemperature: 0.3 };

/** Opt-in adaptive control of the batch size and the temperature. */
export interface AdaptiveOptions {
  /** "seed": the guide's rule (SeedRule) for both knobs. Default: off. */
  mode?: "seed" | undefined;
  /** Overrides of the seed rule's numbers. */
  rule?: Partial<SeedRule> | undefined;
  /**
   * Latency objective: the batch size follows the largest batch that keeps the window's p95
   * latency under this many ms (additive increase, multiplicative decrease), instead of the seed
   * rule's fixed band. Default: off.
   */
  sloP95Ms?: number | undefined;
  /** Largest batch size the SLO mode may reach. Default 64. */
  sloMaxBatch?: number | undefined;
  /**
   * Temperature objective: the temperature that puts the window's score mean at this value,
   * solved from the recorded log-odds, instead of the seed rule's 10% nudges. Default: off.
   */
  targetScoreMean?: number | undefined;
  /** Requests between two checks. Default 50. */
  adjustEvery?: number | undefined;
}

const positive = z.number().finite().positive("must be > 0");
const unit = z.number().gt(0, "must be in (0, 1)").lt(1, "must be in (0, 1)");
const batchSize = z.number().int("must be an integer").min(1, "must be >= 1");

/** Validation of AdaptiveOptions (bounds, and that each rule's numbers are in order). */
export const adaptiveOptionsSchema = z
  .object({
    mode: z.literal("seed", { error: 'must be "seed"' }).optional(),
    rule: z
      .object({
        slowMs: positive,
        fastMs: positive,
        minBatch: batchSize,
        maxBatch: batchSize,
        highMean: unit,
        lowMean: unit,
        raise: positive,
        lower: positive,
        maxTemperature: positive,
        minTemperature: positive,
      })
      .partial()
      .strict()
      .optional(),
    sloP95Ms: positive.optional(),
    sloMaxBatch: batchSize.optional(),
    targetScoreMean: unit.optional(),
    adjustEvery: batchSize.optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    const r = { ...SEED_RULE, ...o.rule };
    if (r.fastMs >= r.slowMs) ctx.addIssue({ code: "custom", path: ["rule", "fastMs"], message: "must be below slowMs" });
    if (r.minBatch > r.maxBatch) ctx.addIssue({ code: "custom", path: ["rule", "minBatch"], message: "must not exceed maxBatch" });
    if (r.lowMean >= r.highMean) ctx.addIssue({ code: "custom", path: ["rule", "lowMean"], message: "must be below highMean" });
    if (r.minTemperature > r.maxTemperature) ctx.addIssue({ code: "custom", path: ["rule", "minTemperature"], message: "must not exceed maxTemperature" });
  });

/** One change of a knob, and why. */
export interface Adjustment {
  time: string;
  knob: "batch_size" | "temperature";
  from: number;
  to: number;
  reason: string;
  /** The figure that triggered it. */
  figure: { name: string; value: number };
}

/** What the controller turns: the owner's knobs. */
export interface AdjustableKnobs {
  /** The batch size (most pairs per engine call), or undefined where there is none (the library). */
  batchSize(): number | undefined;
  setBatchSize(pairs: number): void;
  temperature(): number;
  bias(): number;
  setTemperature(t: number): void;
}

/** The seed rule's batch decision. */
export function seedBatch(avgLatencyMs: number, batch: number, r: SeedRule): number {
  if (avgLatencyMs > r.slowMs) return Math.max(r.minBatch, Math.floor(batch / 2));
  if (avgLatencyMs < r.fastMs) return Math.min(r.maxBatch, batch * 2);
  return batch;
}

/** The seed rule's temperature decision. */
export function seedTemperature(scoreMean: number, t: number, r: SeedRule): number {
  if (scoreMean > r.highMean) return Math.min(r.maxTemperature, t * r.raise);
  if (scoreMean < r.lowMean) return Math.max(r.minTemperature, t * r.lower);
  return t;
}

/** Additive increase (+1) while p95 is under the objective, multiplicative decrease (halving) when over. */
export function sloBatch(p95Ms: number, objectiveMs: number, batch: number, minBatch: number, maxBatch: number): number {
  if (p95Ms > objectiveMs) return Math.max(minBatch, Math.floor(batch / 2));
  return Math.min(maxBatch, batch + 1);
}

/**
 * The temperature whose mean score over `logits` is closest to `target`: a search over a log grid
 * of [minT, maxT] then a refinement, since the mean need not be monotone in T when z has both signs.
 */
export function solveTemperature(logits: readonly number[], bias: number, target: number, minT: number, maxT: number): number {
  if (logits.length === 0) return 1;
  const meanAt = (t: number) => logits.reduce((s, z) => s + scoreFromLogit(z, t, bias), 0) / logits.length;
  const miss = (t: number) => Math.abs(meanAt(t) - target);
  let best = minT;
  const steps = 200;
  for (let i = 0; i <= steps; i++) {
    const t = minT * (maxT / minT) ** (i / steps);
    if (miss(t) < miss(best)) best = t;
  }
  // Golden-section refinement between the grid neighbours of the best point.
  const ratio = (maxT / minT) ** (1 / steps);
  let lo = Math.max(minT, best / ratio);
  let hi = Math.min(maxT, best * ratio);
  for (let i = 0; i < 40; i++) {
    const a = hi - (hi - lo) / 1.618033988749895;
    const b = lo + (hi - lo) / 1.618033988749895;
    if (miss(a) < miss(b)) hi = b;
    else lo = a;
  }
  return (lo + hi) / 2;
}

const LOGIT_MEMORY = 10_000;
const ADJUSTMENT_MEMORY = 100;

/**
 * Watches the monitor and turns the knobs every `adjustEvery` requests, by the seed rule or by
 * the latency and score objectives. Each change is kept (`adjustments`), logged and announced to
 * listeners (the server counts them in /metrics and logs a JSON line).
 */
export class AdaptiveController {
  readonly rule: SeedRule;
  private readonly every: number;
  private seen = 0;
  private readonly logits: number[] = [];
  private readonly history: Adjustment[] = [];
  private readonly listeners = new Set<(a: Adjustment) => void>();
  private readonly stop: () => void;

  constructor(
    private readonly options: AdaptiveOptions,
    private readonly monitor: Monitor,
    private readonly knobs: AdjustableKnobs,
  ) {
    this.rule = { ...SEED_RULE, ...options.rule };
    this.every = Math.max(1, Math.floor(options.adjustEvery ?? 50));
    this.stop = monitor.onRecord((r) => this.onRecord(r));
  }

  /** True when some mode is on. */
  static wanted(options: AdaptiveOptions | undefined): options is AdaptiveOptions {
    return options !== undefined && (options.mode !== undefined || options.sloP95Ms !== undefined || options.targetScoreMean !== undefined);
  }

  /** The last changes, oldest first. */
  get adjustments(): readonly Adjustment[] {
    return this.history;
  }

  onAdjust(listener: (a: Adjustment) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    this.stop();
  }

  private onRecord(record: RequestRecord): void {
    if (record.error !== undefined) return;
    for (const z of record.logits) this.logits.push(z);
    if (this.logits.length > LOGIT_MEMORY) this.logits.splice(0, this.logits.length - LOGIT_MEMORY);
    if (++this.seen % this.every === 0) this.check(this.monitor.snapshot());
  }

  /** One check over the window (public for tests). */
  check(s: MonitorSnapshot): void {
    const r = this.rule;
    const batch = this.knobs.batchSize();
    if (batch !== undefined) {
      if (this.options.sloP95Ms !== undefined) {
        const to = sloBatch(s.latency_ms.p95, this.options.sloP95Ms, batch, r.minBatch, this.options.sloMaxBatch ?? 64);
        this.apply("batch_size", batch, to, `p95 latency ${to < batch ? "above" : "within"} the ${this.options.sloP95Ms} ms objective`, { name: "latency_ms.p95", value: s.latency_ms.p95 });
      } else if (this.options.mode === "seed") {
        const to = seedBatch(s.avg_latency_ms, batch, r);
        this.apply("batch_size", batch, to, to < batch ? `average latency above ${r.slowMs} ms` : `average latency below ${r.fastMs} ms`, { name: "avg_latency_ms", value: s.avg_latency_ms });
      }
    }
    const t = this.knobs.temperature();
    if (this.options.targetScoreMean !== undefined) {
      const to = solveTemperature(this.logits, this.knobs.bias(), this.options.targetScoreMean, r.minTemperature, r.maxTemperature);
      this.apply("temperature", t, to, `puts the score mean at ${this.options.targetScoreMean}`, { name: "score_mean", value: s.score_mean });
    } else if (this.options.mode === "seed") {
      const to = seedTemperature(s.score_mean, t, r);
      this.apply("temperature", t, to, to > t ? `score mean above ${r.highMean}` : `score mean below ${r.lowMean}`, { name: "score_mean", value: s.score_mean });
    }
  }

  private apply(knob: Adjustment["knob"], from: number, to: number, reason: string, figure: Adjustment["figure"]): void {
    // A change below 0.1% is noise from the solver, not a decision.
    if (to === from || Math.abs(to - from) <= 1e-3 * Math.abs(from)) return;
    if (knob === "batch_size") this.knobs.setBatchSize(to);
    else this.knobs.setTemperature(to);
    const adjustment: Adjustment = { time: new Date().toISOString(), knob, from, to, reason, figure };
    this.history.push(adjustment);
    if (this.history.length > ADJUSTMENT_MEMORY) this.history.shift();
    for (const listener of this.listeners) listener(adjustment);
  }
}
