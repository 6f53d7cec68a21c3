import assert from "node:assert/strict";
import { test } from "node:test";
import { RerankError } from "../errors/errors.js";
import type { LogOdds, LogOddsSource, PreparedPair } from "../pipeline/log-odds.js";
import { Scheduler } from "./scheduler.js";

/** Log-odds = the pair's first token; a batch holding token 666 fails as a whole (as an engine does). */
class SourceWithPoison implements LogOddsSource {
  readonly calls: number[] = [];
  async evaluate(pairs: readonly PreparedPair[]): Promise<LogOdds> {
    this.calls.push(pairs.length);
    await new Promise((r) => setTimeout(r, 5));
    if (pairs.some((p) => p.tokens[0] === 666)) throw new RerankError("insufficient_memory", "a pair does not fit");
    return { logits: Float64Array.from(pairs, (p) => p.tokens[0] ?? 0), stats: { evaluatedTokens: 0, pairTokens: 0 }, cached: 0, queueMs: 0, inferenceMs: 0 };
  }
}

const pair = (t: number): PreparedPair => ({ tokens: [t, 1, 2], truncated: false, headLength: 0 });

test("a merged batch that fails is retried per request: only the request that owns the failing pair fails", async () => {
  const source = new SourceWithPoison();
  const scheduler = new Scheduler(source, { maxBatchPairs: 64 });
  // Held back so that all three requests land in one merged batch.
  const first = scheduler.evaluate([pair(1)]);
  const [a, poisoned, b] = [scheduler.evaluate([pair(2), pair(3)]), scheduler.evaluate([pair(4), pair(666)]), scheduler.evaluate([pair(5)])];
  assert.deepEqual([...(await first).logits], [1]);
  assert.deepEqual([...(await a).logits], [2, 3]);
  await assert.rejects(poisoned, (e: RerankError) => e.code === "insufficient_memory");
  assert.deepEqual([...(await b).logits], [5]);
  assert.deepEqual(source.calls, [1, 5, 2, 2, 1], "one merged call of 5 pairs, then each request alone");
});
