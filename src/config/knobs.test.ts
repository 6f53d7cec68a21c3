import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../errors/errors.js";
import { readFileSync } from "node:fs";
import { KNOBS, callOptionsSchema, extensionFields, knobTableMarkdown, knobsFromWire, knobsOfCommand } from "./knobs.js";
import { parseOrThrow } from "./validation.js";

test("call options validate and name the field", () => {
  assert.deepEqual(parseOrThrow(callOptionsSchema, { temperature: 0.5, topN: 3 }), { temperature: 0.5, topN: 3 });
  const bad: Array<[unknown, string]> = [
    [{ temperature: 0 }, "temperature"],
    [{ temperature: -1 }, "temperature"],
    [{ temperature: Number.NaN }, "temperature"],
    [{ topN: 0 }, "topN"],
    [{ topN: 1.5 }, "topN"],
    [{ maxLength: 40000 }, "maxLength"],
    [{ instruction: "   " }, "instruction"],
    [{ tempreature: 1 }, "input"],
  ];
  for (const [value, field] of bad) {
    assert.throws(() => parseOrThrow(callOptionsSchema, value), (e: unknown) => e instanceof ValidationError && e.message.startsWith(field), JSON.stringify(value));
  }
});

test("the knob table in docs/tuning.md is the one the code declares", () => {
  const docs = readFileSync(new URL("../../docs/tuning.md", import.meta.url), "utf8");
  const between = /<!-- knob-table:begin -->\n([\s\S]*?)\n<!-- knob-table:end -->/.exec(docs)?.[1];
  assert.equal(between, knobTableMarkdown(), "regenerate the table from knobTableMarkdown()");
});

test("the server's extension fields and the CLI flags come from the table", () => {
  for (const [name, spec] of Object.entries(KNOBS)) {
    if (spec.perCall && "wire" in spec && name !== "topN") assert.ok(spec.wire in extensionFields, `${name} is accepted over HTTP as ${spec.wire}`);
  }
  assert.deepEqual(knobsFromWire({ top_p: 0.5, max_length: 100, overflow: "chunk", unrelated: 1 }), { topP: 0.5, maxLength: 100, overflow: "chunk" });
  assert.deepEqual(
    knobsOfCommand("tune").map(([n]) => n),
    ["instruction", "preset", "language", "languageInstructions", "maxLength", "overflow"],
    "tune searches temperature, top_p and threshold itself",
  );
  const serve = knobsOfCommand("serve").map(([n]) => n);
  for (const name of ["overflow", "language", "temperature", "bias"]) assert.ok(serve.includes(name as never), `serve --${name}`);
});
