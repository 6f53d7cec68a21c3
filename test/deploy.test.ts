import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Command } from "commander";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Service } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { applyEnvironment } from "../src/cli/config-file.js";
import { registerServe } from "../src/cli/serve.js";
import { ServerMetrics } from "../src/server/metrics.js";
import { spawnServe } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";

const manifestsDir = join(repoRoot, "deploy", "kubernetes");
type Manifest = { kind: string; apiVersion: string; metadata: { name: string } } & Record<string, unknown>;
const manifests: Manifest[] = readdirSync(manifestsDir)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .flatMap((f) => parseAllDocuments(readFileSync(join(manifestsDir, f), "utf8")).map((d) => d.toJS() as Manifest));

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
};

test("the Kubernetes manifests validate against the Kubernetes schemas, and their serve flags are ours", () => {
  assert.ok(manifests.length >= 6);
  for (const m of manifests) {
    const Model = MODELS[`${m.apiVersion}/${m.kind}`];
    assert.ok(Model, `no schema for ${m.apiVersion} ${m.kind}`);
    new Model(m as never).validate();
  }
  const deployment = manifests.find((m) => m.kind === "Deployment" && m.metadata.name === "qwen-rerank") as unknown as Deployment;
  const pod = deployment.spec?.template.spec;
  const container = pod?.containers[0];
  assert.ok(pod && container);
  assert.equal(container.readinessProbe?.httpGet?.path, "/health", "readiness follows /health (503 while loading)");
  assert.ok((pod.terminationGracePeriodSeconds ?? 0) > 30 + 5, "longer than the server's 30 s drain and the preStop pause");
  // The args and QWEN_RERANK_* variables parse as serve's own options (a typo would fail here).
  const program = new Command().exitOverride();
  registerServe(program);
  const serve = program.commands.find((c) => c.name() === "serve");
  assert.ok(serve);
  serve.exitOverride();
  const [, ...args] = container.args ?? [];
  const parsed = serve.parseOptions(args);
  assert.deepEqual([parsed.operands, parsed.unknown], [[], []]);
  applyEnvironment(serve, Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value])));
  assert.deepEqual(serve.opts().model, [{ name: undefined, source: "/models/qwen3-reranker-0.6b-q8_0.gguf" }]);
  // The autoscaler's custom metric is one the server exports.
  const hpa = manifests.find((m) => m.kind === "HorizontalPodAutoscaler") as unknown as HorizontalPodAutoscaler;
  const metric = hpa.spec?.metrics?.find((x) => x.type === "Pods")?.pods?.metric.name;
  assert.ok(metric && new ServerMetrics({ queues: () => [] }).registry.getSingleMetric(metric), `${metric} is in /metrics`);
});

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
