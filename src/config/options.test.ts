import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../errors/errors.js";
import { callOptionsSchema, parseOrThrow } from "./options.js";

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
