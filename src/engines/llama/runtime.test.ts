import assert from "node:assert/strict";
import { test } from "node:test";
import { sharedLlama } from "./runtime.js";

test("a CPU llama.cpp runtime asked for after the 'auto' one is that one when it found no GPU (one runtime a process, not two)", async () => {
  const auto = await sharedLlama(undefined, "error");
  const cpu = await sharedLlama(false, "error");
  if (auto.gpu === false) assert.equal(cpu, auto);
  else assert.notEqual(cpu, auto);
  assert.equal(cpu.gpu, false);
  assert.equal(await sharedLlama(false, "error"), cpu);
});
