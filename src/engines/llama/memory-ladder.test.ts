import assert from "node:assert/strict";
import { test } from "node:test";
import { describeShape, isMemoryError, memoryLadder } from "./memory-ladder.js";

const list = (...a: Parameters<typeof memoryLadder>) => [...memoryLadder(...a)].map(describeShape);

test("the ladder: fewer sequences, then a smaller batch, then a smaller context down to the floor", () => {
  assert.deepEqual(list({ contextSize: 32768, sequences: 8, batchSize: 256 }, 10000), [
    "32768 tokens x 8 sequences, batch 256",
    "32768 tokens x 4 sequences, batch 256",
    "32768 tokens x 2 sequences, batch 256",
    "32768 tokens x 1 sequence, batch 256",
    "32768 tokens x 1 sequence, batch 128",
    "32768 tokens x 1 sequence, batch 64",
    // A smaller context starts again from the full batch.
    "16384 tokens x 1 sequence, batch 256",
    "16384 tokens x 1 sequence, batch 128",
    "16384 tokens x 1 sequence, batch 64",
    "10000 tokens x 1 sequence, batch 256",
    "10000 tokens x 1 sequence, batch 128",
    "10000 tokens x 1 sequence, batch 64",
  ]);
});

test("the ladder never goes below the floor, the smallest batch, or a batch larger than the context", () => {
  assert.deepEqual(list({ contextSize: 100, sequences: 1, batchSize: 512 }, 100), ["100 tokens x 1 sequence, batch 512", "100 tokens x 1 sequence, batch 100", "100 tokens x 1 sequence, batch 64"]);
  assert.deepEqual(list({ contextSize: 512, sequences: 3, batchSize: 32 }, 300), [
    "512 tokens x 3 sequences, batch 32",
    "512 tokens x 1 sequence, batch 32",
    "300 tokens x 1 sequence, batch 32",
  ]);
  assert.deepEqual(list({ contextSize: 4096, sequences: 1, batchSize: 512 }, 5000), ["4096 tokens x 1 sequence, batch 512", "4096 tokens x 1 sequence, batch 256", "4096 tokens x 1 sequence, batch 128", "4096 tokens x 1 sequence, batch 64"]);
});

test("memory errors are told from other failures by what llama.cpp and node-llama-cpp say", () => {
  const named = new Error("A context size of 32769 with 64 sequences is too large for the available RAM");
  named.name = "InsufficientMemoryError";
  assert.ok(isMemoryError(named));
  assert.ok(isMemoryError(new Error("Failed to create context")));
  assert.ok(isMemoryError(new Error("Eval has failed")));
  assert.ok(isMemoryError(new Error("could not find a KV slot for the batch (try reducing the size of the batch or increase the context)")));
  assert.ok(!isMemoryError(new Error("the model produced a non-finite score (NaN)")));
  assert.ok(!isMemoryError("out of memory"));
});
