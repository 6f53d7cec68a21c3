import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { ContextualCompressionRetriever } from "@langchain/classic/retrievers/contextual_compression";
import type { DocumentInterface } from "@langchain/core/documents";
import { BaseRetriever } from "@langchain/core/retrievers";
import { rerank } from "ai";
import { createQwenRerank } from "../src/integrations/ai-sdk.js";
import { QwenRerankCompressor } from "../src/integrations/langchain.js";
import type { Reranker } from "../src/reranker.js";
import { createReranker } from "../src/reranker.js";
import { exactEngine, repoRoot, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

const model = testModel("causal");
const engine = { maxLength: 256, ...exactEngine };

/** A first stage that returns a fixed list, as a vector store retriever would. */
class FixedRetriever extends BaseRetriever {
  lc_namespace = ["qwen-rerank", "test"];
  constructor(private readonly docs: DocumentInterface[]) {
    super();
  }
  override _getRelevantDocuments(): Promise<DocumentInterface[]> {
    return Promise.resolve(this.docs);
  }
}

describe("in-process framework adapters (tiny model)", () => {
  let library: Reranker;
  let expected: Map<number, { score: number; logit: number }>;
  before(async () => {
    library = await createReranker({ model, ...engine });
    expected = new Map((await library.rerank(QUERY_EN, DOCUMENTS)).map((r) => [r.index, { score: r.score, logit: r.logit }]));
  });
  after(() => library.dispose());

  test("qwen-rerank/ai-sdk: rerank() from `ai` runs the model here, with our knobs as provider options", async () => {
    const provider = createQwenRerank(engine);
    try {
      const model1 = provider.reranking(model);
      const { ranking, rerankedDocuments } = await rerank({ model: model1, query: QUERY_EN, documents: DOCUMENTS, topN: 4 });
      assert.equal(ranking.length, 4);
      for (const r of ranking) assert.ok(Object.is(r.score, expected.get(r.originalIndex)?.score), `index ${r.originalIndex}`);
      assert.equal(rerankedDocuments[0], DOCUMENTS[ranking[0]?.originalIndex ?? -1]);
      // Knobs through providerOptions: temperature 0.5 doubles every log-odds before the sigmoid.
      const sharp = await rerank({ model: provider.reranking(model), query: QUERY_EN, documents: DOCUMENTS, providerOptions: { "qwen-rerank": { temperature: 0.5 } } });
      for (const r of sharp.ranking) {
        const z = expected.get(r.originalIndex)?.logit ?? Number.NaN;
        assert.ok(Math.abs(r.score - 1 / (1 + Math.exp(-z / 0.5))) < 1e-12);
      }
      const viaOptions = await rerank({ model: provider.reranking(model), query: QUERY_EN, documents: DOCUMENTS, providerOptions: { "qwen-rerank": { topN: 2 } } });
      assert.equal(viaOptions.ranking.length, 2, "topN in provider options applies when rerank() has none");
      // Objects are scored as their JSON text, with a warning, and come back as objects.
      const objects = DOCUMENTS.slice(0, 3).map((text, id) => ({ id, text }));
      const o = await rerank({ model: provider.reranking(model), query: QUERY_EN, documents: objects });
      assert.equal(o.ranking.length, 3);
      assert.deepEqual(o.originalDocuments, objects);
      // Bad input: the library's ValidationError, naming the field.
      await assert.rejects(rerank({ model: provider.reranking(model), query: QUERY_EN, documents: DOCUMENTS, providerOptions: { "qwen-rerank": { temperature: -1 } } }), (e: Error) => e.name === "ValidationError" && /temperature/.test(e.message));
      await assert.rejects(rerank({ model: provider.reranking(model), query: "", documents: ["a"] }), (e: Error) => e.name === "ValidationError" && /query/.test(e.message));
    } finally {
      await provider.dispose();
    }
  });

  test("qwen-rerank/langchain: a document compressor in ContextualCompressionRetriever; rerank() like CohereRerank's", async () => {
    const compressor = new QwenRerankCompressor({ model, engine, topN: 3 });
    try {
      const docs = DOCUMENTS.map((pageContent, i) => ({ pageContent, metadata: { source: `doc-${i}` } }));
      const retriever = new ContextualCompressionRetriever({ baseCompressor: compressor, baseRetriever: new FixedRetriever(docs) });
      const top = await retriever.invoke(QUERY_EN);
      assert.equal(top.length, 3);
      for (let i = 0; i < top.length; i++) {
        const d = top[i];
        const index = docs.findIndex((x) => x.metadata.source === d?.metadata.source);
        assert.ok(Object.is(d?.metadata.relevanceScore, expected.get(index)?.score), `document ${index}`);
        if (i > 0) assert.ok((top[i - 1]?.metadata.relevanceScore as number) >= (d?.metadata.relevanceScore as number), "best first");
      }
      const ranked = await compressor.rerank(DOCUMENTS, QUERY_EN, { topN: 2 });
      assert.deepEqual(ranked.map((r) => r.relevanceScore), ranked.map((r) => expected.get(r.index)?.score));
      assert.equal(ranked.length, 2);
      assert.throws(() => new QwenRerankCompressor({ model, temperature: 0 }), (e: Error) => e.name === "ValidationError" && /temperature/.test(e.message));
      await assert.rejects(compressor.rerank(DOCUMENTS, QUERY_EN, { topP: 2 }), (e: Error) => e.name === "ValidationError" && /topP/.test(e.message));
    } finally {
      await compressor.dispose();
    }
  });

  test("the main entry pulls no framework in: importing it with every framework package unresolvable works", () => {
    // A resolve hook that refuses the frameworks, as if they were not installed.
    const hooks = `export async function resolve(s, c, next) { if (/^(@langchain|@ai-sdk)\\//.test(s) || s === "ai") throw new Error("framework import: " + s); return next(s, c); }`;
    const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const run = (entry: string) =>
      spawnSync(process.execPath, ["--import", "tsx", "--import", `data:text/javascript,${encodeURIComponent(register)}`, "--input-type=module", "-e", `await import(${JSON.stringify(entry)}); console.log("loaded")`], { cwd: repoRoot, encoding: "utf8", timeout: 60_000 });
    const main = run("./src/index.ts");
    assert.equal(main.status, 0, main.stderr);
    assert.match(main.stdout, /loaded/);
    const adapter = run("./src/integrations/langchain.ts");
    assert.notEqual(adapter.status, 0, "the hook does refuse a framework import");
    assert.match(adapter.stderr, /framework import: @langchain/);
  });
});
