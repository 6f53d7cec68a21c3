import type { ContextShape } from "../engine.js";

/** Smallest batch the ladder tries: below it prompt processing slows down more than it saves memory. */
const MIN_BATCH = 64;

const halve = (n: number, min: number) => Math.max(min, Math.floor(n / 2));

/**
 * The configurations to try, largest first, when `target` cannot be allocated: fewer parallel
 * sequences, then a smaller batch, then a smaller context, never below `floor` tokens (what the
 * longest pending pair needs). Each smaller context starts again from the target batch, because
 * the batch only had to shrink to fit the larger context. `target` itself comes first.
 */
export function* memoryLadder(target: ContextShape, floor: number, minBatch = MIN_BATCH): Generator<ContextShape> {
  for (let sequences = target.sequences; ; sequences = halve(sequences, 1)) {
    yield { ...target, sequences };
    if (sequences === 1) break;
  }
  // Batch sizes from `start` down to the smallest, each once.
  function* batches(start: number, context: number): Generator<number> {
    const lowest = Math.min(minBatch, start, context);
    for (let b = Math.min(start, context); ; b = halve(b, lowest)) {
      yield b;
      if (b === lowest) return;
    }
  }
  for (const batchSize of batches(target.batchSize, target.contextSize)) {
    if (batchSize < target.batchSize) yield { contextSize: target.contextSize, sequences: 1, batchSize };
  }
  for (let context = target.contextSize; context > floor; ) {
    context = Math.max(floor, Math.floor(context / 2));
    for (const batchSize of batches(target.batchSize, context)) yield { contextSize: context, sequences: 1, batchSize };
  }
}

/**
 * Whether an error from llama.cpp (through node-llama-cpp) says that memory ran out: the context
 * could not be allocated, a decode found no KV slot or could not allocate its compute buffers
 * (llama_decode returns -2: "Eval has failed"), or the allocator threw.
 */
export function isMemoryError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "InsufficientMemoryError") return true;
  return /too large for the available|failed to create context|could not find a kv slot|eval has failed|out of memory|bad_alloc|failed to allocate|insufficient memory/i.test(error.message);
}

/** "8192 tokens x 4 sequences, batch 512". */
export function describeShape(s: ContextShape): string {
  return `${s.contextSize} tokens x ${s.sequences} sequence${s.sequences === 1 ? "" : "s"}, batch ${s.batchSize}`;
}
