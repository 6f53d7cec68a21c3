import type { Env, Hono } from "hono";
import { z } from "zod";
import { RerankError } from "../errors/errors.js";
import { parseOrThrow } from "../config/validation.js";
import type { Planner } from "../pipeline/plan.js";
import { PACKAGE_VERSION } from "../version.js";

/**
 * The small endpoints peers' clients and platforms call besides rerank (docs/server.md, "What
 * peers' clients also call"): SageMaker's GET /ping, vLLM's GET /version, and tokenization in
 * vLLM's (/tokenize with `prompt`, /detokenize) and TEI's (/tokenize with `inputs`, /decode)
 * shapes. Qwen3's tokenizer adds no BOS or EOS, so `add_special_tokens` changes nothing; it is
 * accepted as the peers accept it.
 */
export interface PeerRouteDeps {
  /** The tokenizer of the model a request names (its `model` field), or of the first one. */
  planner(model: string | undefined): Promise<{ planner: Planner; maxModelLength: number; release(): void }>;
  /** 200 when the server can answer requests (the same rule as /health). */
  healthy(): boolean;
  /** Reads and parses a JSON body (decompressing it when sent compressed), within the body limit. */
  json(request: Request): Promise<unknown>;
}

const textList = z.union([z.string({ error: "must be a string" }), z.array(z.string({ error: "must be a string" }), { error: "must be a string or an array of strings" })], {
  error: "must be a string or an array of strings",
});
const idList = z.array(z.number({ error: "must be a token id" }).int("must be a token id").min(0, "must be a token id"), { error: "must be an array of token ids" });

const vllmTokenize = z.object({ model: z.string().nullish(), prompt: z.string({ error: "must be a string" }), add_special_tokens: z.boolean().nullish() }).loose();
const teiTokenize = z.object({ model: z.string().nullish(), inputs: textList, add_special_tokens: z.boolean().nullish() }).loose();
const vllmDetokenize = z.object({ model: z.string().nullish(), tokens: idList }).loose();
const teiDecode = z.object({ model: z.string().nullish(), ids: z.union([idList, z.array(idList)], { error: "must be an array of token ids, or an array of such arrays" }), skip_special_tokens: z.boolean().nullish() }).loose();

const teiToken = z.object({ id: z.number().int(), text: z.string(), special: z.boolean(), start: z.number().int(), stop: z.number().int() });

/** The POST routes of this module, for the OpenAPI document. */
export const PEER_POSTS: ReadonlyArray<{ path: string; summary: string; requests: z.ZodType[]; responses: z.ZodType[] }> = [
  {
    path: "/tokenize",
    summary: "token ids of a text: vLLM's shape (`prompt`) or TEI's (`inputs`)",
    requests: [vllmTokenize, teiTokenize],
    responses: [z.object({ count: z.number().int(), max_model_len: z.number().int(), tokens: z.array(z.number().int()), token_strs: z.null() }), z.array(z.array(teiToken))],
  },
  { path: "/detokenize", summary: "vLLM: the text of token ids", requests: [vllmDetokenize], responses: [z.object({ prompt: z.string() })] },
  { path: "/decode", summary: "TEI: the text of token ids (or of each list of them)", requests: [teiDecode], responses: [z.union([z.string(), z.array(z.string())])] },
];

/** TEI's token entries: id, text, special, and the character span it covers in the input. */
function teiTokens(planner: Planner, text: string): Array<{ id: number; text: string; special: boolean; start: number; stop: number }> {
  const ids = planner.tokenize(text, false);
  const out: Array<{ id: number; text: string; special: boolean; start: number; stop: number }> = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    // A token decodes alone, unless it holds part of a character (byte-level BPE, U+FFFD): then its
    // span ends where the decoded prefix does. Decoding every prefix would be quadratic in a long text.
    const piece = planner.detokenize(ids.slice(i, i + 1)) ?? "";
    const stop = piece.includes("\uFFFD") ? (planner.detokenize(ids.slice(0, i + 1)) ?? "").length : Math.min(text.length, start + piece.length);
    out.push({ id: ids[i] ?? 0, text: text.slice(start, stop), special: false, start, stop });
    start = Math.max(start, stop);
  }
  return out;
}

export function addPeerRoutes<E extends Env>(app: Hono<E>, deps: PeerRouteDeps): void {
  app.get("/ping", (c) => (deps.healthy() ? c.body(null, 200) : c.body(null, 503)));
  app.get("/version", (c) => c.json({ version: PACKAGE_VERSION }));

  app.post("/tokenize", async (c) => {
    const body = await deps.json(c.req.raw);
    const tei = body !== null && typeof body === "object" && "inputs" in body;
    if (tei) {
      const b = parseOrThrow(teiTokenize, body);
      const held = await deps.planner(b.model ?? undefined);
      try {
        const texts = typeof b.inputs === "string" ? [b.inputs] : b.inputs;
        return c.json(texts.map((t) => teiTokens(held.planner, t)));
      } finally {
        held.release();
      }
    }
    const b = parseOrThrow(vllmTokenize, body);
    const held = await deps.planner(b.model ?? undefined);
    try {
      const tokens = [...held.planner.tokenize(b.prompt, false)];
      return c.json({ count: tokens.length, max_model_len: held.maxModelLength, tokens, token_strs: null });
    } finally {
      held.release();
    }
  });

  const decode = (planner: Planner, ids: readonly number[]): string => {
    const text = planner.detokenize(ids);
    if (text === undefined) throw new RerankError("engine_unavailable", "this model's engine cannot turn token ids back into text");
    return text;
  };
  app.post("/detokenize", async (c) => {
    const b = parseOrThrow(vllmDetokenize, await deps.json(c.req.raw));
    const held = await deps.planner(b.model ?? undefined);
    try {
      return c.json({ prompt: decode(held.planner, b.tokens) });
    } finally {
      held.release();
    }
  });
  app.post("/decode", async (c) => {
    const b = parseOrThrow(teiDecode, await deps.json(c.req.raw));
    const held = await deps.planner(b.model ?? undefined);
    try {
      const nested = b.ids.length > 0 && Array.isArray(b.ids[0]);
      return c.json(nested ? (b.ids as number[][]).map((ids) => decode(held.planner, ids)) : decode(held.planner, b.ids as number[]));
    } finally {
      held.release();
    }
  });
}
