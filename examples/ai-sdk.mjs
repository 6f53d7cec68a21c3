// The AI SDK's rerank() with the model in this process: `node examples/ai-sdk.mjs [model.gguf]`.
import { rerank } from "ai";
import { qwenRerank } from "qwen-rerank/ai-sdk";

const model = process.argv[2] ?? "models/demo-tiny.gguf";
try {
  const { ranking } = await rerank({
    model: qwenRerank.reranking(model, { maxLength: 1024 }),
    query: "What is the capital of China?",
    documents: ["The capital of China is Beijing.", "Gravity is a force that attracts bodies.", "北京是中国的首都。"],
    topN: 2,
    providerOptions: { "qwen-rerank": { instruction: "Given a web search query, retrieve relevant passages that answer the query" } },
  });
  for (const r of ranking) console.log(`${r.score.toFixed(4)}  ${r.document}`);
} finally {
  await qwenRerank.dispose();
}
