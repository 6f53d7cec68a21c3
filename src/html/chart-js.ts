import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

let chartJs: string | undefined;

/**
 * The Chart.js UMD bundle from node_modules, ready to inline in a <script> element: the eval
 * reports and the server's dashboard fetch nothing from the network.
 */
export function chartLibrary(): string {
  if (chartJs === undefined) {
    const entry = createRequire(import.meta.url).resolve("chart.js");
    const source = readFileSync(join(dirname(entry), "chart.umd.min.js"), "utf8");
    chartJs = source.replace(/\/\/# sourceMappingURL=.*$/m, "").replace(/<\/script/gi, "<\\/script");
  }
  return chartJs;
}
