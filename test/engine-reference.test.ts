import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LlamaEngine } from "../src/engines/llama/llama-engine.js";
import type { ModelFlavor } from "../src/model/facts.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { ReferenceQwen3 } from "./fixtures/reference-forward.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

const MAX_LENGTH = 160;

const variants: Array<{ flavor: ModelFlavor; rankHead?: "rank-pooling"; path: "lm-head" | "rank-pooling" }> = [
  { flavor: "causal", path: "lm-head" },
  { flavor: "rank", path: "lm-head" },
  { flavor: "rank", rankHead: "rank-pooling", path: "rank-pooling" },
];

for (const { flavor, rankHead, path } of variants) {
  describe(`${flavor} flavour through ${path} against the float64 reference forward pass`, () => {
    let engine: LlamaEngine;
    let reference: ReferenceQwen3;
    before(async () => {
      engine = await LlamaEngine.open({ model: testModel(flavor), contextSize: MAX_LENGTH, sequences: 3, rankHead, ...exactEngine });
      reference = new ReferenceQwen3(testModel(flavor));
    });
    after(async () => {
      reference.close();
      await engine.dispose();
    });

    test("detects the flavour and the yes/no ids", () => {
      assert.equal(engine.info.flavor, flavor);
      assert.equal(engine.info.scoringPath, path);
      assert.equal(engine.info.sequences, path === "rank-pooling" ? 1 : 3);
      assert.equal(engine.info.yesTokenId, 9693);
      assert.equal(engine.info.noTokenId, 2152);
    });

    test("z matches the reference within 1e-3 for 26 pairs (EN, ZH, mixed, empty, truncated)", async () => {
      const prompt = new PromptBuilder(engine.tokenizer);
      const pairs = [
        ...DOCUMENTS.map((document) => ({ query: QUERY_EN, document })),
        ...DOCUMENTS.map((document) => ({ query: QUERY_ZH, document, instruction: "Given a Chinese question, retrieve passages that answer it" })),
        { query: QUERY_EN, document: LONG_DOCUMENT },
        { query: QUERY_ZH, document: LONG_DOCUMENT },
      ];
      const built = pairs.map((p) => prompt.build(p, MAX_LENGTH));
      assert.ok(built.at(-1)?.truncated && built.at(-2)?.truncated, "the long documents are truncated");
      const { groups, indices } = groupByHead(built);
      const { logits } = await engine.score(groups);
      const flat = indices.flat();
      let spread = 0;
      for (let k = 0; k < flat.length; k++) {
        const i = flat[k] ?? -1;
        const expected = reference.logOdds(built[i]?.tokens ?? []);
        const actual = logits[k] ?? Number.NaN;
        spread = Math.max(spread, Math.abs(expected));
        assert.ok(Math.abs(actual - expected) < 1e-3, `pair ${i}: engine ${actual} vs reference ${expected}`);
      }
      assert.ok(spread > 0.5, "the test model's scores are not all near zero");
    });
  });
}
