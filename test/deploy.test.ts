import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
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
import { repoRoot } from "./fixtures/models.js";

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
