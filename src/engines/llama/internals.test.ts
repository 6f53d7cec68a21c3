import assert from "node:assert/strict";
import { test } from "node:test";
import { checkNodeLlamaCppVersion, PINNED_NODE_LLAMA_CPP } from "./internals.js";

test("the installed node-llama-cpp is the pinned one; another version is a clear startup error", () => {
  assert.doesNotThrow(() => checkNodeLlamaCppVersion());
  assert.throws(() => checkNodeLlamaCppVersion(() => "3.22.0"), new RegExp(`needs node-llama-cpp ${PINNED_NODE_LLAMA_CPP.replace(/\./g, "\\.")}, found 3\\.22\\.0`));
  assert.throws(() => checkNodeLlamaCppVersion(() => undefined), /found an unreadable version/);
});
