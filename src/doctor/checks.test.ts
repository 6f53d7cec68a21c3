import assert from "node:assert/strict";
import { test } from "node:test";
import { SHAPES } from "../testmodel/shapes.js";
import type { EngineTrial } from "./checks.js";
import { kvBytesPerToken } from "../engines/llama/kv-bytes.js";
import { cpuCheck, engineChoiceCheck, languageGapCheck, memoryCheck, onnxMemoryCheck, scoreShapeChecks, truncationCheck } from "./checks.js";

const GiB = 1024 ** 3;

test("memory: fits, fewer sequences fit, one shorter sequence fits, nothing fits", () => {
  const kv = kvBytesPerToken(SHAPES["0.6b"], "f16");
  const base = { device: "cpu", modelBytes: 0.6 * GiB, kvPerToken: kv, totalBytes: 24 * GiB };
  assert.equal(memoryCheck({ ...base, maxLength: 8192, sequences: 1, freeBytes: 20 * GiB }).status, "ok");
  const fewer = memoryCheck({ ...base, maxLength: 32768, sequences: 64, freeBytes: 20 * GiB });
  assert.equal(fewer.status, "warn");
  assert.equal(fewer.fix, "--sequences 4");
  const shorter = memoryCheck({ ...base, maxLength: 32768, sequences: 1, freeBytes: 2 * GiB });
  assert.equal(shorter.status, "warn");
  assert.match(shorter.fix ?? "", /^--sequences 1 --max-length \d+$/);
  assert.equal(memoryCheck({ ...base, maxLength: 32768, sequences: 1, freeBytes: 0.65 * GiB }).status, "fail");
  assert.equal(memoryCheck({ ...base, modelBytes: 30 * GiB, maxLength: 512, sequences: 1, freeBytes: 20 * GiB }).status, "fail");
});

test("onnx memory: a max_length pair fits, or the longest that fits is the fix, or the other cache and engine", () => {
  // 1 MiB a token (about the fp32 cache of a 4B shape), measured against what is left after the weights.
  const pairBytes = (t: number) => t * 1024 ** 2;
  assert.equal(onnxMemoryCheck({ maxLength: 8192, pairBytes, kvCache: "fp32", roomBytes: 20 * GiB, limitedBy: "available memory" }).status, "ok");
  const long = onnxMemoryCheck({ maxLength: 32768, pairBytes, kvCache: "fp32", roomBytes: 20 * GiB, limitedBy: "available memory" });
  assert.equal(long.status, "warn");
  assert.equal(long.fix, "--max-length 18432 (or --onnx-precision int8: 8-bit keys and values, or --engine llama: flash attention)");
  assert.match(long.message, /32768 tokens needs 32\.00 GiB \(fp32 keys and values, a run's attention scores\) .* 20\.00 GiB left \(available memory\): longer pairs than about 18432 tokens will be refused/);
  // The int8 cache already: only the llama.cpp engine is left to suggest.
  const tight = onnxMemoryCheck({ maxLength: 8192, pairBytes, kvCache: "int8", roomBytes: 0.3 * GiB, limitedBy: "ulimit -v" });
  assert.equal(tight.fix, "--engine llama: flash attention; or free memory");
});

test("saturated scores with spread log-odds ask for a temperature; flat log-odds ask for an instruction", () => {
  const saturated = scoreShapeChecks([{ logits: [8, 6, -7, -9], scores: [0.9997, 0.9975, 0.0009, 0.0001] }], 1);
  assert.deepEqual(saturated.map((c) => [c.id, c.status]), [["flat-logits", "ok"], ["score-saturation", "warn"]]);
  const t = Number(/--temperature (\S+)/.exec(saturated[1]?.fix ?? "")?.[1]);
  assert.ok(t > 2 && t < 4, `temperature ${t}`);
  const flat = scoreShapeChecks([{ logits: [5.01, 5.0, 4.99], scores: [0.9934, 0.9933, 0.9932] }], 1);
  assert.deepEqual(flat.map((c) => [c.id, c.status]), [["flat-logits", "warn"], ["score-saturation", "ok"]]);
  assert.match(flat[0]?.fix ?? "", /--instruction/);
});

test("truncation: the rate, and a max_length that covers 95% of pairs", () => {
  const lengths = [100, 200, 300, 400, 900, 1000, 1100, 1200, 1300, 1400];
  const c = truncationCheck(lengths, 512, 40960);
  assert.equal(c.status, "warn");
  assert.match(c.message, /6 of 10 pairs \(60\.0%\) exceed max_length 512/);
  assert.equal(c.fix, "--max-length 1536 (or --overflow chunk)");
  assert.equal(truncationCheck([100, 200], 512, 40960).status, "ok");
});

test("language gaps: nDCG with labels (0.1), mean score without (0.2)", () => {
  const labelled = languageGapCheck([{ language: "en", queries: 10, scoreMean: 0.5, ndcg: 0.7 }, { language: "zh", queries: 5, scoreMean: 0.5, ndcg: 0.55 }], false);
  assert.equal(labelled.status, "warn");
  assert.match(labelled.message, /nDCG@10 .* zh trails by more than 0\.1/);
  assert.match(labelled.fix ?? "", /^--language auto --language-instruction "zh=/);
  assert.equal(languageGapCheck([{ language: "en", queries: 10, scoreMean: 0.5 }, { language: "zh", queries: 5, scoreMean: 0.35 }], true).status, "ok");
});

test("cpu: AVX-512 VNNI, AVX2, none", () => {
  assert.match(cpuCheck(new Set(["avx2", "avx512f", "avx512_vnni"]), "EPYC", "cpu").message, /AVX-512 VNNI/);
  assert.equal(cpuCheck(new Set(["sse4_2"]), "old", "cpu").status, "warn");
  assert.equal(cpuCheck(new Set(["sse4_2"]), "old", "cuda").status, "ok");
});

test("engine choice: the fastest trial that meets the bars, as flags; the current one when within 10%", () => {
  const trials: EngineTrial[] = [
    { name: "llama", flags: "--engine llama", pairsPerSecond: 0.7, missed: [] },
    { name: "onnx fp32", flags: "--engine onnx --onnx-precision fp32", pairsPerSecond: 1.0, missed: [] },
    { name: "onnx block8", flags: "--engine onnx --onnx-precision block8", pairsPerSecond: 1.2, missed: [], agreement: "max |dz| 0.08" },
    { name: "onnx int8", flags: "--engine onnx --onnx-precision int8", pairsPerSecond: 2.0, missed: ["Kendall tau 0.800 < 0.9"], agreement: "max |dz| 0.6" },
  ];
  const check = engineChoiceCheck(trials, "llama");
  assert.equal(check.status, "warn");
  assert.equal(check.fix, "--engine onnx --onnx-precision block8");
  assert.match(check.message, /^fastest meeting the agreement bars: onnx block8 \(1\.71x llama\)\. .*onnx int8 2\.00 pairs\/s \(max \|dz\| 0\.6; misses: Kendall tau/);
  assert.equal(engineChoiceCheck(trials, "onnx block8").status, "ok");
  assert.equal(engineChoiceCheck([...trials.slice(0, 2), { ...trials[2], pairsPerSecond: 1.05 } as EngineTrial], "onnx fp32").status, "ok", "5% is noise");
  const broken = engineChoiceCheck([{ name: "onnx fp32", flags: "", pairsPerSecond: 0, missed: [], error: "onnxruntime-node is not installed" }], "llama");
  assert.equal(broken.status, "warn");
  assert.match(broken.message, /no engine measured: onnx fp32: onnxruntime-node is not installed/);
});
