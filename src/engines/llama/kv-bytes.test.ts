import assert from "node:assert/strict";
import { test } from "node:test";
import { SHAPES } from "../../testmodel/shapes.js";
import { kvBytesPerToken } from "./kv-bytes.js";

test("KV bytes per token: keys and values of every layer (0.6B F16: 112 KiB)", () => {
  assert.equal(kvBytesPerToken(SHAPES["0.6b"], "f16"), 112 * 1024);
  assert.equal(kvBytesPerToken(SHAPES["8b"], "f32"), 2 * 36 * 8 * 128 * 4);
  assert.equal(kvBytesPerToken(SHAPES["0.6b"], "q8_0"), (112 * 1024 * 34) / 64);
});
