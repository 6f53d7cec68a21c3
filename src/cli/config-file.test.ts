import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { ValidationError } from "../errors/errors.js";
import { applyConfigFile, applyEnvironment } from "./config-file.js";
import { registerServe } from "./serve.js";

function serveCommand(args: string[] = []): Command {
  const program = new Command().exitOverride();
  registerServe(program);
  const cmd = program.commands.find((c) => c.name() === "serve");
  if (!cmd) throw new Error("no serve command");
  cmd.exitOverride();
  // Parse without running the action.
  cmd.parseOptions(args);
  return cmd;
}

test("the example server config parses into the serve options", () => {
  const cmd = serveCommand();
  applyConfigFile(cmd, fileURLToPath(new URL("../../examples/server.yaml", import.meta.url)));
  const o = cmd.opts();
  assert.deepEqual(o.model, [{ name: undefined, source: "models/demo-tiny.gguf" }]);
  assert.equal(o.maxLength, 4096);
  assert.equal(o.maxBatchPairs, 64);
  assert.equal(o.requestTimeout, 120000);
  // It names no llama.cpp-only setting, so the default engine runs (README, "Choosing the engine").
  assert.equal(o.flashAttention, undefined);
  assert.equal(o.kvCacheType, undefined);
});

test("precedence: command line, then environment, then config file", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-cfg-"));
  const file = join(dir, "c.json");
  writeFileSync(file, JSON.stringify({ port: 9000, maxDocuments: 7, threads: 3, mmap: false }));
  const cmd = serveCommand(["--port", "9100"]);
  applyEnvironment(cmd, { QWEN_RERANK_MAX_DOCUMENTS: "50", QWEN_RERANK_FLASH_ATTENTION: "false" });
  applyConfigFile(cmd, file);
  const o = cmd.opts();
  assert.equal(o.port, 9100);
  assert.equal(o.maxDocuments, 50);
  assert.equal(o.threads, 3);
  assert.equal(o.flashAttention, false);
  assert.equal(o.mmap, false);
});

test("config and environment errors name the file, line and key", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-cfg-"));
  const cases: Array<[string, RegExp]> = [
    ["port: 80\nthreads: lots\n", /:2: threads: expected an integer/],
    ["kvCacheType: f64\n", /:1: kvCacheType: expected one of/],
    ["flashAttention: maybe\n", /:1: flashAttention: expected true or false/],
    ["[1, 2]\n", /must be a mapping/],
    ["port: [\n", /:\d+: /],
  ];
  for (const [text, message] of cases) {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, text);
    assert.throws(() => applyConfigFile(serveCommand(), file), (e: unknown) => e instanceof ValidationError && message.test(e.message), text);
  }
  assert.throws(() => applyEnvironment(serveCommand(), { QWEN_RERANK_PORT: "http" }), /QWEN_RERANK_PORT: expected an integer/);
});

test("profiles, custom presets and language maps come from the config file", () => {
  const path = fileURLToPath(new URL("../../examples/server.yaml", import.meta.url));
  const cmd = serveCommand();
  const extras = applyConfigFile(cmd, path, "shop");
  assert.equal(cmd.opts().preset, "ecommerce");
  assert.equal(cmd.opts().maxLength, 2048, "the profile wins over the top level");
  assert.equal(cmd.opts().maxDocuments, 1000);
  assert.equal(extras.presets?.[0]?.name, "support");
  assert.equal(extras.presets?.[0]?.batchSize, 16);
  assert.match(extras.languageInstructions?.zh ?? "", /Chinese/);
  const cli = serveCommand(["--max-length", "512"]);
  applyConfigFile(cli, path, "papers");
  assert.equal(cli.opts().maxLength, 512, "the command line wins over the profile");
  assert.throws(() => applyConfigFile(serveCommand(), path, "nope"), /no profile "nope" \(profiles: shop, papers\)/);
});

test("errors in profiles and sections name the file, the line and the field", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-cfg-"));
  const file = join(dir, "p.yaml");
  writeFileSync(file, "port: 80\nprofiles:\n  fast:\n    threads: 2\n    maxDocumnets: 5\n");
  assert.throws(() => applyConfigFile(serveCommand(), file, "fast"), /p\.yaml:5 \(profile fast\): unknown option "maxDocumnets"/);
  writeFileSync(file, "presets:\n  - name: x\n    instruction: ''\n");
  assert.throws(() => applyConfigFile(serveCommand(), file), /p\.yaml:1: presets\.0\.instruction/);
  writeFileSync(file, "languageInstructions:\n  chinese: text\n");
  assert.throws(() => applyConfigFile(serveCommand(), file), /languageInstructions\.chinese: keys are ISO 639-1 codes/);
});

test("a models: map names several models; its errors name the file, the line and the model", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-cfg-"));
  const file = join(dir, "models.yaml");
  writeFileSync(file, "maxLoadedModels: 1\nmodelsMemory: 12GB\nmodels:\n  small: a.gguf\n  Qwen/Qwen3-Reranker-8B: b.gguf\n");
  const cmd = serveCommand();
  const extras = applyConfigFile(cmd, file);
  assert.deepEqual(extras.models, { small: "a.gguf", "Qwen/Qwen3-Reranker-8B": "b.gguf" });
  assert.equal(cmd.opts().maxLoadedModels, 1);
  assert.equal(cmd.opts().modelsMemory, 12 * 1024 ** 3);
  writeFileSync(file, "models:\n  bad name: a.gguf\n");
  assert.throws(() => applyConfigFile(serveCommand(), file), /models\.yaml:1: models\.bad name: a model name uses/);
  writeFileSync(file, "model: a.gguf\nmodels:\n  x: b.gguf\n");
  assert.throws(() => applyConfigFile(serveCommand(), file), /models\.yaml:2: models: give either model: or models:, not both/);
});
