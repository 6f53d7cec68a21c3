import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cachedSelection, decide, writeCache } from "./engine-selection.js";

const ranks = Array.from({ length: 16 }, (_, i) => i / 4);
const close = ranks.map((z) => z + 0.05);
// Reversed order: misses every bar.
const wrong = [...ranks].reverse();

test("auto: the fastest onnx mode within the bars of onnx fp32, if 1.1x the llama.cpp engine", () => {
  const s = decide(
    [
      { name: "llama", pairsPerSecond: 1, missed: [], logits: close },
      { name: "onnx fp32", pairsPerSecond: 1.2, missed: [], logits: ranks },
      { name: "onnx block8", pairsPerSecond: 1.5, missed: [], logits: close },
      { name: "onnx int8", pairsPerSecond: 2.5, missed: [], logits: close },
    ],
    "k",
  );
  assert.equal(s.engine, "onnx");
  assert.equal(s.onnxPrecision, "int8");
  assert.match(s.reason, /^onnx int8: 2\.50x the llama\.cpp engine .* onnx fp32/);
  assert.equal(s.source, "calibrated");
  assert.equal(s.trials.length, 4);
});

test("auto: a faster mode that reorders the documents is not chosen; under 1.1x stays llama.cpp", () => {
  const s = decide(
    [
      { name: "llama", pairsPerSecond: 1, missed: [], logits: close },
      { name: "onnx fp32", pairsPerSecond: 1.05, missed: [], logits: ranks },
      { name: "onnx block8", pairsPerSecond: 1.5, missed: [], logits: close },
      { name: "onnx int8", pairsPerSecond: 3, missed: [], logits: wrong },
    ],
    "k",
  );
  assert.equal(s.onnxPrecision, "block8");
  assert.ok((s.trials.find((t) => t.name === "onnx int8")?.missed.length ?? 0) > 0);
  const slow = decide(
    [
      { name: "llama", pairsPerSecond: 1, missed: [], logits: close },
      { name: "onnx fp32", pairsPerSecond: 1.05, missed: [], logits: ranks },
    ],
    "k",
  );
  assert.equal(slow.engine, "llama");
  assert.match(slow.reason, /1\.05x, under 1\.1x/);
});

test("auto: without fp32 (it does not fit) the llama.cpp engine is the reference; a failed candidate is named", () => {
  const s = decide(
    [
      { name: "llama", pairsPerSecond: 0.05, missed: [], logits: ranks },
      { name: "onnx fp32", pairsPerSecond: 0, missed: [], error: "needs about 29.3 GB, the machine has 23.5 GB" },
      { name: "onnx block8", pairsPerSecond: 0, missed: [], error: "failed to load" },
      { name: "onnx int8", pairsPerSecond: 0.16, missed: [], logits: close },
    ],
    "k",
  );
  assert.equal(s.onnxPrecision, "int8");
  assert.match(s.reason, /the llama\.cpp engine \(onnx fp32 does not fit\)/);
  assert.match(s.reason, /onnx fp32: needs about 29\.3 GB/);
  const none = decide([{ name: "llama", pairsPerSecond: 0, missed: [], error: "no" }], "k");
  assert.equal(none.engine, "llama");
  assert.match(none.reason, /measured no engine/);
});

test("auto: calibrations are cached per key in one file; a broken file is no cache", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-choice-"));
  try {
    const path = join(dir, "sub", "engine-choice.json");
    assert.equal(cachedSelection(path, "a"), undefined);
    const s = decide([{ name: "llama", pairsPerSecond: 1, missed: [], logits: ranks }], "a");
    writeCache(path, s);
    writeCache(path, { ...s, key: "b", engine: "onnx", onnxPrecision: "int8" });
    assert.equal(cachedSelection(path, "a")?.engine, "llama");
    assert.equal(cachedSelection(path, "a")?.source, "cached");
    assert.equal(cachedSelection(path, "b")?.onnxPrecision, "int8");
    assert.equal(cachedSelection(path, "c"), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
