import { existsSync, statSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { ValidationError } from "../errors/errors.js";
import { openCheckpoint } from "../hf/checkpoint.js";
import type { ConvertType, HeadKind } from "../hf/convert.js";
import { convertCheckpoint, CONVERT_TYPES, HEAD_KINDS } from "../hf/convert.js";
import { locateCheckpoint } from "../hf/hub-cache.js";
import { bytesProgress } from "../hf/progress.js";

interface ConvertFlags {
  from: string;
  out: string;
  type: ConvertType;
  head: HeadKind;
  json?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command("convert")
    .description("convert a Hugging Face Qwen3-Reranker checkpoint (safetensors: bf16, f16 or f32) to a GGUF that both engines and llama.cpp load; no Python, nothing downloaded")
    .requiredOption("--from <dir-or-id>", "the checkpoint folder, or an id such as Qwen/Qwen3-Reranker-8B found in the local Hugging Face cache (HF_HUB_CACHE, HF_HOME)")
    .requiredOption("-o, --out <file>", "the GGUF to write (written under a temporary name, renamed when complete)")
    .addOption(new Option("--type <type>", "matrix weight type (norms stay f32)").choices([...CONVERT_TYPES]).default("f16"))
    .addOption(new Option("--head <head>", "rank: llama.cpp's rank head from lm_head's yes/no rows (pooling RANK); causal: the whole lm_head").choices([...HEAD_KINDS]).default("rank"))
    .option("--json", "print a JSON summary (tensors, types, head, bytes, seconds)")
    .action((flags: ConvertFlags) => {
      const { dir, name } = locateCheckpoint(flags.from);
      if (existsSync(flags.out) && statSync(flags.out).isDirectory()) throw new ValidationError(`${flags.out} is a directory; give the GGUF file to write`, "--out");
      const checkpoint = openCheckpoint(dir);
      const progress = bytesProgress(`converting ${flags.from}`);
      let summary;
      try {
        summary = convertCheckpoint(checkpoint, { out: flags.out, type: flags.type, head: flags.head, name, onProgress: (done, total) => progress.update(done, total) });
      } finally {
        progress.stop();
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ from: dir, ...summary }, null, 2)}\n`);
        return;
      }
      const types = Object.entries(summary.types).map(([t, n]) => `${n} ${t}`).join(", ");
      process.stderr.write(`wrote ${summary.out} from ${dir}: ${summary.tensors} tensors (${types}), ${summary.head} head, ${(summary.bytes / 1e9).toFixed(2)} GB of weights, in ${summary.seconds.toFixed(1)} s\n`);
    });
}
