// LangChain.js: rerank a retriever's documents in this process: `node examples/langchain.mjs [model.gguf]`.
import { ContextualCompressionRetriever } from "@langchain/classic/retrievers/contextual_compression";
import { BaseRetriever } from "@langchain/core/retrievers";
import { QwenRerankCompressor } from "qwen-rerank/langchain";

// Stands in for your first stage (a vector store's asRetriever(), BM25, ...).
class FirstStage extends BaseRetriever {
  lc_namespace = ["example"];
  async _getRelevantDocuments() {
    return ["The capital of China is Beijing.", "Gravity is a force that attracts bodies.", "北京是中国的首都。"].map((pageContent) => ({ pageContent, metadata: {} }));
  }
}

const compressor = new QwenRerankCompressor({ model: process.argv[2] ?? "models/demo-tiny.gguf", engine: { maxLength: 1024 }, topN: 2 });
try {
  const retriever = new ContextualCompressionRetriever({ baseCompressor: compressor, baseRetriever: new FirstStage() });
  for (const d of await retriever.invoke("What is the capital of China?")) console.log(`${d.metadata.relevanceScore.toFixed(4)}  ${d.pageContent}`);
} finally {
  await compressor.dispose();
}
