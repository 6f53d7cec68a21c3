import assert from "node:assert/strict";
import { test } from "node:test";
import { intArg, sizeArg, sizeAtLeast } from "./flags.js";
import { parseModelArgument, servedModels } from "./served-models.js";

test("--model takes a path, a URI, or NAME=PATH", () => {
  assert.deepEqual(parseModelArgument("models/a.gguf"), { name: undefined, source: "models/a.gguf" });
  assert.deepEqual(parseModelArgument("hf:Qwen/Qwen3-Reranker-0.6B-GGUF:Q8_0"), { name: undefined, source: "hf:Qwen/Qwen3-Reranker-0.6B-GGUF:Q8_0" });
  assert.deepEqual(parseModelArgument("Qwen/Qwen3-Reranker-8B=/m/8b.gguf"), { name: "Qwen/Qwen3-Reranker-8B", source: "/m/8b.gguf" });
  assert.deepEqual(parseModelArgument("small=hf:org/repo:Q8_0"), { name: "small", source: "hf:org/repo:Q8_0" });
  assert.throws(() => parseModelArgument("bad name=/m/a.gguf"), /not a model name/);
  assert.throws(() => parseModelArgument("small="), /path of "small" is empty/);
});

test("one unnamed model is the single-model server; several get names", () => {
  assert.deepEqual(servedModels([{ name: undefined, source: "a.gguf" }], undefined, "custom"), { single: "a.gguf" });
  assert.deepEqual(servedModels([{ name: "x", source: "a.gguf" }], undefined, undefined), { several: { x: "a.gguf" } });
  assert.deepEqual(servedModels([{ name: "x", source: "a.gguf" }, { name: undefined, source: "dir/b.gguf" }], undefined, undefined), { several: { x: "a.gguf", "b.gguf": "dir/b.gguf" } });
  assert.deepEqual(servedModels([], { s: "s.gguf", l: "l.gguf" }, undefined), { several: { s: "s.gguf", l: "l.gguf" } });
  // the command line wins over the config file
  assert.deepEqual(servedModels([{ name: undefined, source: "a.gguf" }], { s: "s.gguf" }, undefined), { single: "a.gguf" });
  assert.throws(() => servedModels([], undefined, undefined), /a model is required/);
  assert.throws(() => servedModels([{ name: undefined, source: "x/a.gguf" }, { name: undefined, source: "y/a.gguf" }], undefined, undefined), /two models are named "a\.gguf"/);
  assert.throws(() => servedModels([{ name: "x", source: "a" }, { name: "y", source: "b" }], undefined, "z"), /--model-name names a single/);
});

test("--models-memory takes sizes", () => {
  assert.equal(sizeArg("12GB"), 12 * 1024 ** 3);
  assert.equal(sizeArg("512mb"), 512 * 1024 ** 2);
  assert.equal(sizeArg("1000000"), 1_000_000);
  for (const bad of ["lots", "0", "-5GB", "", "12 apples", "0x10"]) assert.throws(() => sizeArg(bad), /expected a size/);
  assert.equal(sizeAtLeast(0)("0"), 0, "0 where 0 means off");
  assert.equal(sizeAtLeast(1024)("64kb"), 64 * 1024);
  assert.throws(() => sizeAtLeast(1024)("100"), /at least 1KB/);
  // An unbounded count says so, not "from 1 to 9007199254740991".
  assert.throws(() => intArg(1)("0"), /^InvalidArgumentError: expected a whole number >= 1$/);
  assert.throws(() => intArg(1, 10)("11"), /expected an integer from 1 to 10/);
});
