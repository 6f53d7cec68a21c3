// Rerank from code: `node examples/rerank.mjs [model.gguf]` (default: the demo model made by `npm ci`).
import { createReranker } from "qwen-rerank";

const model = process.argv[2] ?? "models/demo-tiny.gguf";
const reranker = await createReranker({ model, maxLength: 1024 });
try {
  const results = await reranker.rerank(
    "What is the capital of China?",
    ["The capital of China is Beijing.", "Gravity is a force that attracts bodies.", "北京是中国的首都。"],
    { returnDocuments: true },
  );
  for (const r of results) console.log(`${r.score.toFixed(4)}  ${r.document}`);
} finally {
  await reranker.dispose();
}
