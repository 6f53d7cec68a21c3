import { ValidationError } from "../errors/errors.js";
import { DEFAULT_INSTRUCTION } from "./template.js";

/** A named scenario: an instruction plus the knobs that suit it. */
export interface Preset {
  name: string;
  description: string;
  /** The `<Instruct>` text (English: the model was trained on English instructions). */
  instruction: string;
  /** Default temperature of calls that use the preset. */
  temperature?: number | undefined;
  /** Default top_p of calls that use the preset. */
  topP?: number | undefined;
  /**
   * Pairs per engine batch when the preset is the profile a server or CLI run starts with
   * (long texts want smaller batches). Per request it is ignored: batching is the scheduler's.
   */
  batchSize?: number | undefined;
}

/** Built-in presets. Instructions are clear English task descriptions, as the model card advises. */
export const BUILTIN_PRESETS: readonly Preset[] = [
  { name: "web", description: "Web search (the official default instruction)", instruction: DEFAULT_INSTRUCTION },
  {
    name: "ecommerce",
    description: "Product search: category, specifications, price range, intent",
    instruction:
      "Given a product search query, judge whether the product description matches it, considering product category, specifications, price range and user intent; exact matches and relevant alternatives both count as relevant",
    temperature: 0.3,
    topP: 0.8,
    batchSize: 12,
  },
  {
    name: "academic",
    description: "Research papers: topic, methodology, recency, citations",
    instruction:
      "Given a research question, judge whether the paper is relevant to it by topic alignment, methodology, recency and citation relevance",
    temperature: 0.7,
    topP: 0.9,
    batchSize: 4,
  },
  {
    name: "multilingual",
    description: "Cross-lingual retrieval: meaning across languages",
    instruction:
      "Given a query in any language, judge whether the passage, in any language, is semantically relevant to it, taking cultural context and language nuances into account",
    temperature: 0.6,
    topP: 0.85,
    batchSize: 8,
  },
  { name: "code", description: "Code search: snippets and documentation", instruction: "Given a programming question or a code search query, retrieve code snippets or technical documentation that answer it" },
  { name: "qa", description: "Question answering: passages that contain the answer", instruction: "Given a question, retrieve passages that contain the answer to the question" },
  { name: "legal", description: "Legal research: statutes, case law, clauses", instruction: "Given a legal question, retrieve statutes, case law or contract clauses that are relevant to answering it" },
  { name: "medical", description: "Clinical and biomedical questions", instruction: "Given a medical question, retrieve passages from clinical or biomedical literature that answer it accurately" },
];

/** Built-in presets plus the user's own (which may replace a built-in of the same name). */
export class PresetRegistry {
  private readonly byName = new Map<string, Preset>();

  constructor(custom: readonly Preset[] = []) {
    for (const p of [...BUILTIN_PRESETS, ...custom]) this.byName.set(p.name, p);
  }

  list(): Preset[] {
    return [...this.byName.values()];
  }

  get(name: string): Preset {
    const preset = this.byName.get(name);
    if (!preset) throw new ValidationError(`unknown preset "${name}" (known: ${[...this.byName.keys()].join(", ")})`, "preset");
    return preset;
  }
}
