import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { repoRoot, testModel } from "./fixtures/models.js";
import { CLI, spawnServe } from "./fixtures/cli.js";

// A real allocation failure: `ulimit -d` caps the process's private writable memory (what
// llama.cpp's KV cache and compute buffers are), so malloc really returns NULL. The 0.6B shape
// needs 112 KiB of F16 KV per token: 32768 tokens x 64 sequences asks for 224 GiB, one sequence
// of 16384 tokens for 1.75 GiB, which does not fit under the cap beside the repacked weights
// (~0.6 GiB). What does fit depends on the machine (Node's own heap, llama.cpp's compute buffers):
// 2048 to 4096 tokens, once the engine keeps its 256 MiB reserve free beside the context (without
// the reserve, the next small allocation failed inside llama.cpp and aborted the server).
// (`ulimit -v` cannot be used: Node reserves address space for WebAssembly.)
const CAP_KIB = 2_100_000;
const model = testModel("causal", "0.6b", "q8_0");
// The llama.cpp engine's back-off ladder is what is tested: named, whatever the default engine is here.
const memoryHungry = ["--engine", "llama", "--max-length", "32768", "--sequences", "64", "--gpu", "cpu", "--threads", "1", "--log-level", "error"];
const capped = (args: string[]) => ["-c", `ulimit -d ${CAP_KIB} && exec "$0" "$@"`, process.execPath, ...CLI, ...args];
// About 20000 tokens: more than the 8192 the engine falls back to, and more than fits under the cap.
const longDocument = "word ".repeat(20_000);

// The CLI run starts at once and runs beside the server test: both mostly wait on allocations.
const scoreRun = new Promise<{ status: number | null; stderr: string }>((resolve) => {
  const child = spawn("bash", capped(["score", "--model", model, ...memoryHungry, "--query", "what is x", "--doc", longDocument]), { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"], timeout: 180_000 });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.on("close", (status) => resolve({ status, stderr }));
});

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test("serve backs off to what fits (fewer sequences, then a smaller context), shows it in /stats and /metrics, answers 507 for a pair that cannot fit, and keeps serving", async () => {
  const server = await spawnServe("bash", capped(["serve", "--model", model, "--port", "0", ...memoryHungry]));
  const { url, child } = server;
  try {
    const stats = (await (await fetch(`${url}/stats`)).json()) as { current: Record<string, number>; adjustments: Array<{ knob: string; from: number; to: number; reason: string }> };
    assert.equal(stats.current.sequences, 1);
    const context = stats.current.context_tokens ?? 0;
    assert.ok(context < 32768 && context >= 512, `context after the back-off: ${context}`);
    const byKnob = Object.fromEntries(stats.adjustments.map((a) => [a.knob, a]));
    assert.deepEqual([byKnob.sequences?.from, byKnob.sequences?.to], [64, 1]);
    assert.deepEqual([byKnob.context_tokens?.from, byKnob.context_tokens?.to], [32768, context]);
    assert.match(byKnob.sequences?.reason ?? "", /^out of memory \(load\)/);
    const logged = server.stdout().split("\n").filter((l) => l.includes('"event":"adjustment"')).map((l) => JSON.parse(l) as { knob: string });
    assert.ok(logged.some((l) => l.knob === "sequences"), "each adjustment is a JSON log line");
    assert.match(await (await fetch(`${url}/metrics`)).text(), /qwen_rerank_adjustments_total\{knob="context_tokens"\} 1/);

    const short = await post(`${url}/v1/rerank`, { query: "what is x", documents: ["x is a letter", "y"] });
    assert.equal(short.status, 200, JSON.stringify(short.json));
    const tooLong = await post(`${url}/v1/rerank`, { query: "what is x", documents: [longDocument] });
    assert.equal(tooLong.status, 507, JSON.stringify(tooLong.json));
    const error = tooLong.json.error as { code: string; message: string };
    assert.equal(error.code, "insufficient_memory");
    assert.match(error.message, /a pair of \d+ tokens does not fit in memory/);
    const again = await post(`${url}/v1/rerank`, { query: "what is x", documents: ["x is a letter", "y"] });
    assert.equal(again.status, 200, "the engine is back on a configuration that fits");
    // The same configuration, unless the process had less room after the failed attempt (then a
    // smaller batch cuts the pair differently: the same order, scores within rounding).
    const scores = (r: unknown) => (r as Array<{ index: number; relevance_score: number }>).map((x) => [x.index, x.relevance_score] as const);
    const [before, after] = [scores(short.json.results), scores(again.json.results)];
    assert.deepEqual(after.map(([i]) => i), before.map(([i]) => i));
    for (const [k, [, s]] of after.entries()) assert.ok(Math.abs(s - (before[k]?.[1] ?? NaN)) < 0.02, `score ${s} vs ${before[k]?.[1]}`);
    const held = (await (await fetch(`${url}/stats`)).json()) as { current: Record<string, number> };
    assert.ok((held.current.context_tokens ?? 0) >= 512, "the engine holds a context again");
  } finally {
    child.kill("SIGTERM");
    await server.exited;
  }
});

test("score: a pair that cannot fit even alone exits 1 with the reason, never a crash", async () => {
  const r = await scoreRun;
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /warning: out of memory for 32768 tokens x 64 sequences, batch 512 \(load: .*\); continuing with \d+ tokens x 1 sequence/);
  assert.match(r.stderr, /qwen-rerank: a pair of \d+ tokens does not fit in memory: not enough memory for a llama\.cpp context of 32768 tokens x 1 sequence/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});
