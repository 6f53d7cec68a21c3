import { z } from "zod";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { Adjustment } from "./adjustments.js";
import { AdjustmentLog } from "./adjustments.js";
import type { Monitor, MonitorSnapshot, RequestRecord } from "./monitor.js";
import { percentileOf } from "./monitor.js";

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
  // Within the band the size stays, brought into the rule's bounds.
  return Math.min(r.maxBatch, Math.max(r.minBatch, batch));
}

/** The seed rule's temperature decision. */
export function seedTemperature(scoreMean: number, t: number, r: SeedRule): number {
  if (scoreMean > r.highMean) return Math.min(r.maxTemperature, t * r.raise);
  if (scoreMean < r.lowMean) return Math.max(r.minTemperature, t * r.lower);
  return Math.min(r.maxTemperature, Math.max(r.minTemperature, t));
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

/**
 * Watches the monitor and turns the knobs every `adjustEvery` requests, by the seed rule or by
 * the latency and score objectives. Each change goes into the stack's adjustment log, whose
 * listeners count it in /metrics and log a JSON line (the server).
 */
export class AdaptiveController {
  readonly rule: SeedRule;
  private readonly every: number;
  private seen = 0;
  private readonly logits: number[] = [];
  /** Latencies recorded since the batch size last changed (what the SLO mode judges). */
  private sinceChange: number[] = [];
  private readonly stop: () => void;

  constructor(
    private readonly options: AdaptiveOptions,
    private readonly monitor: Monitor,
    private readonly knobs: AdjustableKnobs,
    readonly log: AdjustmentLog = new AdjustmentLog(),
  ) {
    this.rule = { ...SEED_RULE, ...options.rule };
    this.every = Math.max(1, Math.floor(options.adjustEvery ?? 50));
    this.stop = monitor.onRecord((r) => this.onRecord(r));
  }

  /** True when some mode is on. */
  static wanted(options: AdaptiveOptions | undefined): options is AdaptiveOptions {
    return options !== undefined && (options.mode !== undefined || options.sloP95Ms !== undefined || options.targetScoreMean !== undefined);
  }

  dispose(): void {
    this.stop();
  }

  private onRecord(record: RequestRecord): void {
    if (record.error !== undefined) return;
    for (const z of record.logits) this.logits.push(z);
    if (this.logits.length > LOGIT_MEMORY) this.logits.splice(0, this.logits.length - LOGIT_MEMORY);
    this.sinceChange.push(record.latencyMs);
    if (this.sinceChange.length > LOGIT_MEMORY) this.sinceChange.shift();
    if (++this.seen % this.every === 0) this.check(this.monitor.snapshot());
  }

  /** One check over the window (public for tests). */
  check(s: MonitorSnapshot): void {
    const r = this.rule;
    const batch = this.knobs.batchSize();
    if (batch !== undefined) {
      if (this.options.sloP95Ms !== undefined) {
        // Judged on the requests served since the last change: the window still holds requests of
        // the old batch size, which would halve it twice for one overshoot.
        const p95 = this.sinceChange.length > 0 ? percentileOf(this.sinceChange, 95) : s.latency_ms.p95;
        const to = sloBatch(p95, this.options.sloP95Ms, batch, r.minBatch, this.options.sloMaxBatch ?? 64);
        this.apply("batch_size", batch, to, `p95 latency since the last change ${to < batch ? "above" : "within"} the ${this.options.sloP95Ms} ms objective`, {
          name: "latency_ms.p95_since_change",
          value: p95,
        });
      } else if (this.options.mode === "seed") {
        const to = seedBatch(s.avg_latency_ms, batch, r);
        const why = s.avg_latency_ms > r.slowMs ? `average latency above ${r.slowMs} ms` : s.avg_latency_ms < r.fastMs ? `average latency below ${r.fastMs} ms` : "average latency within the band";
        this.apply("batch_size", batch, to, `${why}${to === r.maxBatch || to === r.minBatch ? ` (bounds ${r.minBatch}-${r.maxBatch})` : ""}`, { name: "avg_latency_ms", value: s.avg_latency_ms });
      }
    }
    const t = this.knobs.temperature();
    if (this.options.targetScoreMean !== undefined) {
      const to = solveTemperature(this.logits, this.knobs.bias(), this.options.targetScoreMean, r.minTemperature, r.maxTemperature);
      this.apply("temperature", t, to, `puts the score mean at ${this.options.targetScoreMean}`, { name: "score_mean", value: s.score_mean });
    } else if (this.options.mode === "seed") {
      const to = seedTemperature(s.score_mean, t, r);
      const why = s.score_mean > r.highMean ? `score mean above ${r.highMean}` : s.score_mean < r.lowMean ? `score mean below ${r.lowMean}` : "score mean within the band";
      this.apply("temperature", t, to, `${why}${to === r.maxTemperature || to === r.minTemperature ? ` (bounds ${r.minTemperature}-${r.maxTemperature})` : ""}`, { name: "score_mean", value: s.score_mean });
    }
  }

  private apply(knob: "batch_size" | "temperature", from: number, to: number, reason: string, figure: Adjustment["figure"]): void {
    // A change below 0.1% is noise from the solver, not a decision.
    if (to === from || Math.abs(to - from) <= 1e-3 * Math.abs(from)) return;
    if (knob === "batch_size") {
      this.knobs.setBatchSize(to);
      this.sinceChange = [];
    }
    else this.knobs.setTemperature(to);
    this.log.record({ knob, from, to, reason, figure });
  }
}
