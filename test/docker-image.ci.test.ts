import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { spawnServe } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";

// Not part of `npm test`: the production install writes ~1.1 GB (node-llama-cpp's CPU, Vulkan
// and CUDA binaries) and slows every test beside it. `npm run test:image` runs it; .ci/run runs it
// after `npm test`. No Docker daemon is available here, so the image's steps run in a clean
// directory instead of a container.
test("the Dockerfile's runtime steps work in a clean directory: production install, serve from the environment, the health check", async () => {
  const dockerfile = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
  const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  assert.match(runtime, /\nUSER node\n/, "runs unprivileged");
  const install = /RUN (npm ci --omit=dev[^&\n]*)/.exec(runtime)?.[1];
  const entry = JSON.parse(/ENTRYPOINT (\[.*\])/.exec(runtime)?.[1] ?? "[]") as string[];
  const cmd = JSON.parse(/\nCMD (\[.*\])/.exec(runtime)?.[1] ?? "[]") as string[];
  const health = JSON.parse(/HEALTHCHECK [^[\n]*CMD (\[.*\])/.exec(runtime.replace(/\\\n\s*/g, ""))?.[1] ?? "[]") as string[];
  assert.ok(install && entry.length > 0 && cmd.length > 0 && health.length > 0, "install, entrypoint, command and health check found");

  const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-image-"));
  try {
    // COPY package.json package-lock.json ./ and the RUN line, as written (the npm cache makes it offline-fast).
    for (const f of ["package.json", "package-lock.json"]) copyFileSync(join(repoRoot, f), join(dir, f));
    execFileSync("sh", ["-c", `${install} --prefer-offline`], { cwd: dir, stdio: "pipe", timeout: 300_000 });
    assert.throws(() => readFileSync(join(dir, "node_modules", "eslint", "package.json")), "no dev dependency installed");
    cpSync(join(repoRoot, "dist"), join(dir, "dist"), { recursive: true });
    const [program = "node", ...rest] = [...entry, ...cmd];
    assert.equal(program, "node");
    const env = { ...process.env, NODE_ENV: "production", QWEN_RERANK_HOST: "127.0.0.1", QWEN_RERANK_PORT: "0", QWEN_RERANK_MODEL: testModel("causal"), QWEN_RERANK_MAX_LENGTH: "256" };
    const server = await spawnServe(process.execPath, rest, { cwd: dir, env });
    try {
      const port = new URL(server.url).port;
      const check = spawnSync(process.execPath, health.slice(1), { env: { ...env, QWEN_RERANK_PORT: port }, timeout: 10_000 });
      assert.equal(check.status, 0, "the HEALTHCHECK command passes against the running server");
      const res = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "q", documents: ["a", "b"] }) });
      assert.equal(res.status, 200);
      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
    } finally {
      server.child.kill("SIGKILL");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
