// Unmodified clients against `qwen-rerank serve`: `node examples/clients.mjs http://127.0.0.1:8080`.
import { createCohere } from "@ai-sdk/cohere";
import { createTogetherAI } from "@ai-sdk/togetherai";
import { CohereRerank } from "@langchain/cohere";
import { rerank } from "ai";
import { CohereClient, CohereClientV2 } from "cohere-ai";

const url = process.argv[2] ?? "http://127.0.0.1:8080";
const query = "What is the capital of China?";
const documents = ["The capital of China is Beijing.", "Gravity is a force that attracts bodies.", "北京是中国的首都。"];

// Cohere's SDK, v1 and v2 (any token: the server ignores it unless started with --api-key).
const v1 = await new CohereClient({ token: "unused", environment: url }).rerank({ query, documents, topN: 2 });
const v2 = await new CohereClientV2({ token: "unused", environment: url }).rerank({ model: "qwen3-reranker", query, documents, topN: 2 });
// The AI SDK through its Cohere provider (baseURL ends in /v2) or its Together provider.
const viaCohere = await rerank({ model: createCohere({ baseURL: `${url}/v2`, apiKey: "unused" }).reranking("rerank-v3.5"), query, documents, topN: 2 });
const viaTogether = await rerank({ model: createTogetherAI({ baseURL: url, apiKey: "unused" }).reranking("qwen3-reranker"), query, documents, topN: 2 });
// LangChain's CohereRerank with a client pointed at the server.
const langchain = await new CohereRerank({ client: new CohereClient({ token: "unused", environment: url }), model: "qwen3-reranker", topN: 2 }).rerank(documents, query);

console.log("cohere-ai v1", v1.results.map((r) => r.index).join(","));
console.log("cohere-ai v2", v2.results.map((r) => r.index).join(","));
console.log("ai + @ai-sdk/cohere", viaCohere.ranking.map((r) => r.originalIndex).join(","));
console.log("ai + @ai-sdk/togetherai", viaTogether.ranking.map((r) => r.originalIndex).join(","));
console.log("@langchain/cohere", langchain.map((r) => r.index).join(","));
