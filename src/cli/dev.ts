import { existsSync } from "node:fs";
import { join } from "node:path";
import { ValidationError } from "../errors/errors.js";
import type { HfDtype } from "../testmodel/hf-folder.js";
import type { Command } from "commander";
import { Option } from "commander";
import { parameterCount, SHAPES } from "../testmodel/shapes.js";
import type { ShapeName } from "../testmodel/shapes.js";
import type { ModelFlavor, PlantedOutliers, WeightType } from "../testmodel/generate.js";
import { intArg, sizeAtLeast } from "./flags.js";

/** The outliers `dev make-model` plants: activation dimensions, key channels, both or none. */
function plantedOutliers(flags: { outliers?: number; outlierMagnitude: number; outlierWeights: "damped" | "unchanged"; keyOutliers?: number; keyOutlierMagnitude: number }): PlantedOutliers | undefined {
  if (flags.outliers === undefined && flags.keyOutliers === undefined) return undefined;
  return {
    channels: flags.outliers ?? 0,
    magnitude: flags.outlierMagnitude,
    weights: flags.outlierWeights,
    ...(flags.keyOutliers !== undefined ? { keys: { channels: flags.keyOutliers, magnitude: flags.keyOutlierMagnitude } } : {}),
  };
}

export function registerDev(program: Command): void {
  const dev = program.command("dev").description("developer tools").showHelpAfterError("(run with --help for usage)");
  dev
    .command("make-model")
    .description("write a GGUF (or, with --format hf, a Hugging Face checkpoint folder) with the real Qwen3 architecture and tokenizer and seeded random weights (for tests and benchmarks)")
    .addOption(new Option("--format <format>", "gguf: one GGUF file; hf: a checkpoint folder as the official Qwen3-Reranker repos ship it (config.json, safetensors, tokenizer files), the causal model with the same weights").choices(["gguf", "hf"]).default("gguf"))
    .addOption(new Option("--dtype <dtype>", "with --format hf: the safetensors element type").choices(["bf16", "f16", "f32"]).default("bf16"))
    .addOption(new Option("--shard-size <size>", "with --format hf: largest shard before the next starts, e.g. 5GB or 200MB").argParser(sizeAtLeast(1)).default(5_000_000_000, "5GB (5000000000 bytes, as Hugging Face shards)"))
    .addOption(new Option("--shape <shape>", "model shape").choices(Object.keys(SHAPES)).default("tiny"))
    .addOption(new Option("--flavor <flavor>", "causal LM head or llama.cpp rank head").choices(["causal", "rank"]).default("causal"))
    .addOption(new Option("--type <type>", "weight type (default: f32 for tiny, q8_0 otherwise)").choices(["f32", "f16", "q8_0"]))
    .option("--seed <n>", "random seed", intArg(0, 2 ** 32 - 1), 1)
    .option("--outliers <n>", "plant n activation-outlier dimensions, as trained models have (default: none)", intArg(1, 64))
    .option("--outlier-magnitude <x>", "how many times larger the outlier dimensions are at the linear layers' inputs", intArg(2, 10_000), 60)
    .addOption(new Option("--outlier-weights <w>", "damped: the weights that read the outlier dimensions are divided by the magnitude (the function keeps its scale); unchanged: they are not").choices(["damped", "unchanged"]).default("damped"))
    .option("--key-outliers <n>", "plant n key-outlier channels per head (its last n, the slowest RoPE pairs): a hidden dimension every token carries, read by those channels of every layer's keys, so the keys share a bias many times their other channels, as trained models' keys do (default: none)", intArg(1, 64))
    .option("--key-outlier-magnitude <x>", "about how many times larger the key-outlier channels are than the median channel (measured 5-30x over the layers with 30)", intArg(2, 10_000), 30)
    .requiredOption("-o, --out <path>", "output GGUF path (--format hf: the folder)")
    .option("--if-missing", "do nothing when the file already exists (generation is deterministic)")
    .action(async (flags: { shape: ShapeName; flavor: ModelFlavor; type?: WeightType; seed: number; out: string; ifMissing?: boolean; outliers?: number; outlierMagnitude: number; keyOutliers?: number; keyOutlierMagnitude: number; outlierWeights: "damped" | "unchanged"; format: "gguf" | "hf"; dtype: HfDtype; shardSize: number }) => {
      if (flags.format === "hf") {
        if (flags.type !== undefined || flags.flavor !== "causal") throw new ValidationError("--format hf writes the checkpoint as published (bf16/f16/f32 weights, the causal LM head): use --dtype, not --type or --flavor");
        if (flags.ifMissing && existsSync(join(flags.out, "config.json"))) {
          process.stderr.write(`${flags.out} exists; kept\n`);
          return;
        }
        const started = Date.now();
        const { makeHfTestModel } = await import("../testmodel/hf-folder.js");
        const outliers = plantedOutliers(flags);
        const { shards, bytes } = makeHfTestModel({ shape: flags.shape, seed: flags.seed, outliers, dtype: flags.dtype, shardBytes: flags.shardSize, out: flags.out });
        process.stderr.write(`wrote ${flags.out} (${flags.shape} shape, ${flags.dtype}, ${shards} shard${shards > 1 ? "s" : ""}, ${(bytes / 1e9).toFixed(2)} GB) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        return;
      }
      if (flags.ifMissing && existsSync(flags.out)) {
        process.stderr.write(`${flags.out} exists; kept\n`);
        return;
      }
      const started = Date.now();
      // Loaded on demand: the generator's tokenizer package takes ~1 s to import, on every CLI start otherwise.
      const { makeTestModel } = await import("../testmodel/generate.js");
      const outliers = plantedOutliers(flags);
      makeTestModel({ shape: flags.shape, flavor: flags.flavor, type: flags.type, seed: flags.seed, out: flags.out, outliers });
      const params = (parameterCount(SHAPES[flags.shape]) / 1e6).toFixed(1);
      process.stderr.write(`wrote ${flags.out} (${flags.shape} shape, ${params}M parameters, ${flags.flavor}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    });
}
