import type { Command } from "commander";
import { PresetRegistry } from "../prompt/presets.js";
import { applyConfigOptions } from "./config-file.js";

export function registerPresets(program: Command): void {
  const cmd = program
    .command("presets")
    .description("list the scenario presets (instruction and default knobs), with a config file's own")
    .option("-c, --config <file>", "also list the `presets:` of this YAML or JSON config file (its other keys are other commands')")
    .option("--json", "print them as JSON");
  cmd.action((flags: { json?: boolean }) => {
    const presets = new PresetRegistry(applyConfigOptions(cmd).presets).list();
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(presets, null, 2)}\n`);
      return;
    }
    for (const p of presets) {
      const knobs = [
        p.temperature !== undefined ? `temperature ${p.temperature}` : undefined,
        p.topP !== undefined ? `top_p ${p.topP}` : undefined,
        p.batchSize !== undefined ? `batch ${p.batchSize}` : undefined,
      ].filter(Boolean);
      process.stdout.write(`${p.name.padEnd(13)} ${p.description}${knobs.length ? ` (${knobs.join(", ")})` : ""}\n${"".padEnd(14)}${p.instruction}\n`);
    }
  });
}
