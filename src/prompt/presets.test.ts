import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../errors/errors.js";
import { BUILTIN_PRESETS, PresetRegistry } from "./presets.js";
import { DEFAULT_INSTRUCTION } from "./template.js";

test("built-in presets cover the scenarios with the documented knobs", () => {
  const r = new PresetRegistry();
  assert.equal(r.get("web").instruction, DEFAULT_INSTRUCTION);
  assert.deepEqual([r.get("ecommerce").temperature, r.get("ecommerce").topP, r.get("ecommerce").batchSize], [0.3, 0.8, 12]);
  assert.deepEqual([r.get("academic").temperature, r.get("academic").topP, r.get("academic").batchSize], [0.7, 0.9, 4]);
  assert.deepEqual([r.get("multilingual").temperature, r.get("multilingual").topP, r.get("multilingual").batchSize], [0.6, 0.85, 8]);
  for (const name of ["code", "qa", "legal", "medical"]) assert.ok(r.get(name).instruction.length > 20);
  // English task descriptions (the model was trained on English instructions)
  for (const p of BUILTIN_PRESETS) assert.match(p.instruction, /^[\x20-\x7e]+$/, p.name);
});

test("custom presets add to or replace built-ins; unknown names are a validation error", () => {
  const r = new PresetRegistry([
    { name: "support", description: "tickets", instruction: "Given a support ticket, retrieve the help article that solves it" },
    { name: "web", description: "mine", instruction: "Given a query, retrieve anything" },
  ]);
  assert.equal(r.get("support").instruction.startsWith("Given a support ticket"), true);
  assert.equal(r.get("web").description, "mine");
  assert.throws(() => r.get("nope"), (e: unknown) => e instanceof ValidationError && /unknown preset "nope"/.test(e.message));
});
