import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

let script: string | undefined;

/** RapiDoc's bundle from node_modules, served by the server itself: the reference page uses no CDN. */
export function apiReferenceScript(): string {
  script ??= readFileSync(createRequire(import.meta.url).resolve("rapidoc/dist/rapidoc-min.js"), "utf8").replace(/\/\/# sourceMappingURL=.*$/m, "");
  return script;
}

/**
 * GET /docs: RapiDoc over ./openapi.json. System fonts, so that RapiDoc's web-font faces (on
 * fonts.gstatic.com) are never used and the page fetches nothing from elsewhere.
 */
export const API_REFERENCE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>qwen-rerank API reference</title><link rel="icon" href="data:,">
<script type="module" src="docs/rapidoc-min.js"></script></head>
<body style="margin:0">
<rapi-doc spec-url="openapi.json" render-style="read" theme="light" show-header="false" allow-server-selection="false"
  regular-font="system-ui, sans-serif" mono-font="ui-monospace, monospace" load-fonts="false"></rapi-doc>
</body></html>
`;
