import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { RuleFacts } from "./engine-selection.js";
import { ENGINES_SIDE_BY_SIDE_FROM_BYTES, cachedSelection, decide, onnxLayout, selectByRule, writeCache } from "./engine-selection.js";

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
  assert.equal(s.source, "measured");
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
    assert.equal(cachedSelection(path, "a")?.source, "measured");
    assert.equal(cachedSelection(path, "b")?.onnxPrecision, "int8");
    assert.equal(cachedSelection(path, "c"), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const vnniMachine: RuleFacts = {
  gpu: false,
  onnxRuntimeMissing: undefined,
  llamaOnlySettings: [],
  unreadableTensor: undefined,
  int8Bytes: 1e9,
  memoryBytes: 20e9,
  vnni: true,
  kernelFlags: "x64 avx2 avx512f avx512_vnni",
};

test("the default rule: onnx int8 on a CPU with VNNI, with nothing measured", () => {
  const s = selectByRule(vnniMachine);
  assert.deepEqual([s.engine, s.onnxPrecision, s.source], ["onnx", "int8", "rule"]);
  assert.match(s.reason, /^onnx int8: x86 VNNI here \(x64 avx2 avx512f avx512_vnni\)/);
});

test("the default rule: the llama.cpp engine wherever onnx int8 was not measured faster or cannot run, each reason named", () => {
  const cases: Array<[Partial<RuleFacts>, RegExp]> = [
    [{ gpu: "cuda" }, /a GPU is present \(cuda\)/],
    [{ llamaOnlySettings: ["--kv-cache-type"] }, /--kv-cache-type is a setting of the llama\.cpp engine only/],
    [{ llamaOnlySettings: ["--kv-cache-type", "--no-mmap"] }, /--kv-cache-type, --no-mmap are settings/],
    [{ onnxRuntimeMissing: "Cannot find package 'onnxruntime-node'" }, /onnxruntime-node cannot be loaded \(Cannot find package/],
    [{ unreadableTensor: "Q4_K" }, /cannot read this file's Q4_K tensors/],
    [{ vnni: false, kernelFlags: "x64 avx2 fma" }, /this CPU \(x64 avx2 fma\) has no VNNI.*doctor --engines/],
    [{ int8Bytes: 30e9 }, /needs about 27\.9 GB for this model, 18\.6 GB are free/],
  ];
  for (const [facts, reason] of cases) {
    const s = selectByRule({ ...vnniMachine, ...facts });
    assert.equal(s.engine, "llama", JSON.stringify(facts));
    assert.equal(s.source, "rule");
    assert.match(s.reason, reason);
  }
});

test("the default layout of onnx int8: one engine a thread where the weights are packed and memory holds them all, else one engine of every thread, each reason named", () => {
  const GB = 2 ** 30;
  const base = { threads: 2, packedWeights: true, int8Bytes: 0.9 * GB, memoryBytes: 20 * GB };
  const side = onnxLayout(base);
  assert.equal(side.engines, 2);
  assert.match(side.reason, /^2 engines of one thread each, side by side, .* same bits .* 0\.9 GB each; a lone pair runs on one thread; --onnx-engines 1 .* one engine of 2 threads$/);
  assert.equal(onnxLayout({ ...base, threads: 16 }).engines, 16);
  // Memory caps the count: 3.5 GB holds three engines of 0.9 GB.
  assert.equal(onnxLayout({ ...base, threads: 16, memoryBytes: 3.5 * GB }).engines, 3);
  const one = (facts: Partial<typeof base>, why: RegExp) => {
    const layout = onnxLayout({ ...base, ...facts });
    assert.equal(layout.engines, 1, why.source);
    assert.match(layout.reason, why);
  };
  one({ threads: 1 }, /^one engine of 1 thread \(one thread to use\)$/);
  one({ packedWeights: false }, /^one engine of 2 threads \(weights memory-mapped, not packed/);
  one({ int8Bytes: ENGINES_SIDE_BY_SIDE_FROM_BYTES - 1 }, /model this small/);
  one({ memoryBytes: 1.5 * GB }, /memory for one engine only: 0\.9 GB each, 1\.5 GB free/);
});
