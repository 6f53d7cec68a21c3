import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { hubCacheDir, isHubId, resolveHubId } from "./hub-cache.js";

const root = mkdtempSync(join(tmpdir(), "qr-hub-"));
after(() => rmSync(root, { recursive: true, force: true }));

function snapshot(repo: string, commit: string, mtime?: number): string {
  const dir = join(root, "hub", repo, "snapshots", commit);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), "{}");
  if (mtime !== undefined) utimesSync(dir, mtime, mtime);
  return dir;
}

test("the hub cache folder follows huggingface_hub's variables", () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: "/a", HF_HOME: "/b" }), "/a");
  assert.equal(hubCacheDir({ HF_HOME: "/b" }), "/b/hub");
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: "/c" }), "/c/huggingface/hub");
  assert.ok(isHubId("Qwen/Qwen3-Reranker-8B") && isHubId("Qwen/Qwen3-Reranker-8B@main"));
  assert.ok(!isHubId("./model.gguf") && !isHubId("models/demo.gguf") && !isHubId("/abs/path") && !isHubId("a/b/c") && !isHubId("hf:Qwen/x"));
});

test("an id resolves to the snapshot refs/main names, a revision to its own, else the newest complete one", () => {
  const env = { HF_HUB_CACHE: join(root, "hub") };
  const main = snapshot("models--Qwen--Qwen3-Reranker-8B", "aaa");
  snapshot("models--Qwen--Qwen3-Reranker-8B", "bbb");
  mkdirSync(join(root, "hub", "models--Qwen--Qwen3-Reranker-8B", "refs"), { recursive: true });
  writeFileSync(join(root, "hub", "models--Qwen--Qwen3-Reranker-8B", "refs", "main"), "aaa\n");
  assert.equal(resolveHubId("Qwen/Qwen3-Reranker-8B", env), main);
  assert.equal(resolveHubId("Qwen/Qwen3-Reranker-8B@bbb", env), join(root, "hub", "models--Qwen--Qwen3-Reranker-8B", "snapshots", "bbb"));
  snapshot("models--Qwen--Qwen3-Reranker-4B", "old", 1000);
  const newest = snapshot("models--Qwen--Qwen3-Reranker-4B", "new", 2000);
  assert.equal(resolveHubId("Qwen/Qwen3-Reranker-4B", env), newest);
  assert.throws(() => resolveHubId("Qwen/Qwen3-Reranker-0.6B", env), (e: Error) => {
    assert.match(e.message, /not in the local Hugging Face cache \(looked at .*models--Qwen--Qwen3-Reranker-0\.6B/);
    assert.match(e.message, /downloads nothing/);
    return true;
  });
});
