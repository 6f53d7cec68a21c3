import type { MemoryBackoff } from "../engines/engine.js";

/**
 * One change of a knob, and why: made by adaptive control (batch_size, temperature) or by the
 * engine backing off to fit memory (sequences, engine_batch_tokens, context_tokens).
 */
export interface Adjustment {
  time: string;
  knob: "batch_size" | "temperature" | "sequences" | "engine_batch_tokens" | "context_tokens";
  from: number;
  to: number;
  reason: string;
  /** The figure that triggered it. */
  figure: { name: string; value: number };
}

const MEMORY = 100;

/** The last knob changes of a stack, oldest first, and who hears of new ones (logs, metrics). */
export class AdjustmentLog {
  private readonly history: Adjustment[] = [];
  private readonly listeners = new Set<(a: Adjustment) => void>();

  get list(): readonly Adjustment[] {
    return this.history;
  }

  record(adjustment: Omit<Adjustment, "time">): void {
    const a: Adjustment = { time: new Date().toISOString(), ...adjustment };
    this.history.push(a);
    if (this.history.length > MEMORY) this.history.shift();
    for (const listener of this.listeners) listener(a);
  }

  /** One entry per setting a memory back-off changed. */
  recordBackoff(e: MemoryBackoff): void {
    const reason = `out of memory (${e.trigger}): ${e.reason}`;
    const figure = { name: "needed_tokens", value: e.neededTokens };
    const changed: Array<[Adjustment["knob"], number, number]> = [
      ["sequences", e.from.sequences, e.to.sequences],
      ["engine_batch_tokens", e.from.batchSize, e.to.batchSize],
      ["context_tokens", e.from.contextSize, e.to.contextSize],
    ];
    for (const [knob, from, to] of changed) if (from !== to) this.record({ knob, from, to, reason, figure });
  }

  onAdjust(listener: (a: Adjustment) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
