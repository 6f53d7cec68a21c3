import { chartLibrary } from "../html/chart-js.js";

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

// The page's own script: polls ./stats, keeps a client-side history, draws it, and runs the
// playground against ./v1/rerank. Plain ES2020, no imports: the page fetches nothing but the
// server's own endpoints. The API key (when the server has one) comes from #key=... or the
// prompt, lives in sessionStorage and goes out as a Bearer header, never in a URL.
const SCRIPT = String.raw`
"use strict";
const HISTORY = 300;
const params = new URLSearchParams(location.search);
const interval = Math.max(200, Number(params.get("interval")) || 2000);
const state = { key: sessionStorage.getItem("qwen-rerank-key") || "", seen: new Set(), updates: 0 };
const fromHash = /(?:^|[#&])key=([^&]+)/.exec(location.hash);
if (fromHash) {
  state.key = decodeURIComponent(fromHash[1]);
  sessionStorage.setItem("qwen-rerank-key", state.key);
  history.replaceState(null, "", location.pathname + location.search);
}
const $ = (id) => document.getElementById(id);
const headers = (extra) => Object.assign(state.key ? { Authorization: "Bearer " + state.key } : {}, extra || {});
const fmt = (x, d) => (x === null || x === undefined ? "–" : typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(d === undefined ? 3 : d)) : String(x));

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const line = (id, datasets, scales) =>
  new Chart($(id), { type: "line", data: { labels: [], datasets }, options: { spanGaps: true, elements: { point: { radius: 0 } }, scales: scales || {} } });
const series = (label, color, extra) => Object.assign({ label, data: [], borderColor: color, backgroundColor: color, borderWidth: 2 }, extra || {});
const marker = (label, color, axis) => series(label, color, { yAxisID: axis, showLine: false, pointRadius: 7, pointStyle: "triangle" });
const charts = {
  latency: line("latency", [series("p50", "#3670c6"), series("p95", "#e67e22"), series("p99", "#c0392b")], { y: { title: { display: true, text: "ms" }, beginAtZero: true } }),
  throughput: line("throughput", [series("pairs/s", "#3670c6"), series("queued pairs", "#7f8c8d", { yAxisID: "y1" })], {
    y: { title: { display: true, text: "pairs/s" }, beginAtZero: true },
    y1: { position: "right", title: { display: true, text: "queued pairs" }, beginAtZero: true, grid: { drawOnChartArea: false } },
  }),
  knobs: line(
    "knobs",
    [
      series("batch size (pairs)", "#3670c6", { stepped: true }),
      series("temperature", "#e67e22", { stepped: true, yAxisID: "y1" }),
      marker("batch size change", "#1f4f99", "y"),
      marker("temperature change", "#a04000", "y1"),
      marker("memory back-off", "#c0392b", "y"),
    ],
    {
      y: { title: { display: true, text: "pairs per batch" }, beginAtZero: true },
      y1: { position: "right", title: { display: true, text: "temperature" }, grid: { drawOnChartArea: false } },
    },
  ),
  histogram: new Chart($("histogram"), {
    type: "bar",
    data: { labels: Array.from({ length: 10 }, (_, i) => (i / 10).toFixed(1) + "–" + ((i + 1) / 10).toFixed(1)), datasets: [{ label: "documents in the window", data: [], backgroundColor: "#3670c6" }] },
  }),
  languages: new Chart($("languages"), { type: "bar", data: { labels: [], datasets: [{ label: "requests in the window", data: [], backgroundColor: "#e67e22" }] }, options: { indexAxis: "y" } }),
};
window.dashboard = { charts, state };

function push(chart, label, values) {
  chart.data.labels.push(label);
  chart.data.datasets.forEach((d, i) => d.data.push(values[i] === undefined ? null : values[i]));
  if (chart.data.labels.length > HISTORY) {
    chart.data.labels.shift();
    chart.data.datasets.forEach((d) => d.data.shift());
  }
  chart.update("none");
}

function setStatus(text, bad) {
  $("status").textContent = text;
  $("status").className = bad ? "bad" : "";
}

function showKeyForm(message) {
  $("key-form").hidden = false;
  setStatus(message, true);
}

function render(s) {
  const label = new Date().toLocaleTimeString();
  push(charts.latency, label, [s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99]);
  push(charts.throughput, label, [s.pairs_per_s, s.queue ? s.queue.pairs : null]);
  const fresh = (s.adjustments || []).filter((a) => !state.seen.has(a.time + a.knob));
  fresh.forEach((a) => state.seen.add(a.time + a.knob));
  const at = (knobs) => {
    const a = fresh.filter((x) => knobs.includes(x.knob)).pop();
    return a ? a.to : undefined;
  };
  push(charts.knobs, label, [s.current.batch_size, s.current.temperature, at(["batch_size"]), at(["temperature"]), at(["sequences", "engine_batch_tokens", "context_tokens"]) === undefined ? undefined : s.current.batch_size || 0]);
  charts.histogram.data.datasets[0].data = s.score_histogram;
  charts.histogram.update("none");
  const langs = Object.entries(s.languages).sort((a, b) => b[1] - a[1]);
  charts.languages.data.labels = langs.map((l) => l[0]);
  charts.languages.data.datasets[0].data = langs.map((l) => l[1]);
  charts.languages.update("none");
  const figures = [
    ["requests", s.total_requests],
    ["errors", s.total_errors],
    ["avg latency ms", s.avg_latency_ms],
    ["p95 latency ms", s.latency_ms.p95],
    ["pairs/s", s.pairs_per_s],
    ["score mean", s.score_mean],
    ["score std", s.score_std],
    ["truncated", s.truncation_rate],
    ["cache hits", s.cache_hit_ratio],
  ].concat(Object.entries(s.current));
  $("figures").replaceChildren(
    ...figures.map(([k, v]) => {
      const div = document.createElement("div");
      div.className = "figure";
      const b = document.createElement("b");
      b.textContent = fmt(v);
      const span = document.createElement("span");
      span.textContent = k;
      div.append(b, span);
      return div;
    }),
  );
  const rows = (s.adjustments || []).slice(-10).reverse();
  $("adjustments").replaceChildren(
    ...rows.map((a) => {
      const tr = document.createElement("tr");
      [new Date(a.time).toLocaleTimeString(), a.knob, fmt(a.from) + " → " + fmt(a.to), a.reason, a.figure.name + " = " + fmt(a.figure.value)].forEach((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      });
      return tr;
    }),
  );
  state.updates++;
  document.body.dataset.updates = String(state.updates);
  document.body.dataset.chartsRendered = String(Object.keys(charts).length);
  setStatus("live · " + s.window.requests + " requests in the window · up " + Math.round(s.uptime_s) + " s", false);
}

async function poll() {
  try {
    const res = await fetch("stats?model=" + encodeURIComponent(document.body.dataset.model), { headers: headers() });
    if (res.status === 401) showKeyForm("this server needs its API key");
    else if (!res.ok) setStatus("GET /stats answered " + res.status + (res.status === 404 ? " (monitor off?)" : ""), true);
    else {
      $("key-form").hidden = true;
      render(await res.json());
    }
  } catch (e) {
    setStatus("server unreachable: " + e.message, true);
  } finally {
    setTimeout(poll, interval);
  }
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("key").value;
  sessionStorage.setItem("qwen-rerank-key", state.key);
  $("key-form").hidden = true;
});

$("playground").addEventListener("submit", async (e) => {
  e.preventDefault();
  const documents = $("documents").value.split("\n").map((d) => d.trim()).filter(Boolean);
  const body = { model: document.body.dataset.model, query: $("query").value, documents, return_documents: true, return_logits: true };
  const number = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));
  if ($("instruction").value.trim()) body.instruction = $("instruction").value.trim();
  if ($("preset").value.trim()) body.preset = $("preset").value.trim();
  if (number("temperature") !== undefined) body.temperature = number("temperature");
  if (number("top_p") !== undefined) body.top_p = number("top_p");
  $("results").replaceChildren();
  $("play-status").textContent = "scoring…";
  try {
    const res = await fetch("v1/rerank", { method: "POST", headers: headers({ "content-type": "application/json" }), body: JSON.stringify(body) });
    const out = await res.json();
    if (!res.ok) {
      $("play-status").textContent = res.status + ": " + (out.error ? out.error.message : JSON.stringify(out));
      if (res.status === 401) showKeyForm("this server needs its API key");
      return;
    }
    $("play-status").textContent = out.results.length + " results · temperature " + (res.headers.get("x-temperature") || "?") + " · " + (res.headers.get("x-inference-time") || "?") + " ms inference";
    $("results").replaceChildren(
      ...out.results.map((r, rank) => {
        const tr = document.createElement("tr");
        [String(rank + 1), String(r.index), r.relevance_score.toFixed(4), r.logit === undefined ? "–" : r.logit.toFixed(3), r.document ? r.document.text : documents[r.index]].forEach((text) => {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        });
        return tr;
      }),
    );
  } catch (err) {
    $("play-status").textContent = "failed: " + err.message;
  }
});

poll();
`;

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 16px 24px; max-width: 1400px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 0 0 8px; }
#status { color: #2e7d32; margin-bottom: 12px; } #status.bad { color: #c0392b; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.panel { border: 1px solid #ddd; border-radius: 6px; padding: 12px; }
.chart { position: relative; height: 220px; }
#figures { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 16px; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px; min-width: 90px; }
.figure b { display: block; font-size: 16px; } .figure span { color: #666; font-size: 12px; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
form label { display: block; margin: 4px 0; } input, textarea { width: 100%; box-sizing: border-box; font: inherit; }
.row { display: grid; grid-template-columns: 2fr 1fr 1fr 1fr; gap: 8px; }
`;

/** GET /dashboard: one self-contained page (Chart.js inlined) that follows /stats and has a playground. */
export function dashboardHtml(o: { model: string; models: readonly string[]; presets: readonly string[] }): string {
  const presets = o.presets.map((p) => `<option value="${escapeHtml(p)}"></option>`).join("");
  // With several models, each has its own monitor: one page per model.
  const others = o.models.length > 1 ? `<nav>models: ${o.models.map((m) => (m === o.model ? `<b>${escapeHtml(m)}</b>` : `<a href="?model=${encodeURIComponent(m)}">${escapeHtml(m)}</a>`)).join(" · ")}</nav>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>qwen-rerank dashboard</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body data-model="${escapeHtml(o.model)}">
<h1>qwen-rerank · ${escapeHtml(o.model)}</h1>${others}
<div id="status">connecting…</div>
<form id="key-form" hidden><label>API key <input id="key" type="password" autocomplete="off"></label><button>use key</button></form>
<div id="figures"></div>
<div class="grid">
<div class="panel"><h2>Latency percentiles (rolling window)</h2><div class="chart"><canvas id="latency"></canvas></div></div>
<div class="panel"><h2>Throughput and queue depth</h2><div class="chart"><canvas id="throughput"></canvas></div></div>
<div class="panel"><h2>Batch size and temperature (▲ adjustments)</h2><div class="chart"><canvas id="knobs"></canvas></div></div>
<div class="panel"><h2>Score histogram</h2><div class="chart"><canvas id="histogram"></canvas></div></div>
<div class="panel"><h2>Query languages</h2><div class="chart"><canvas id="languages"></canvas></div></div>
<div class="panel"><h2>Recent adjustments</h2><table><thead><tr><th>time</th><th>knob</th><th>change</th><th>reason</th><th>figure</th></tr></thead><tbody id="adjustments"></tbody></table></div>
</div>
<div class="panel" style="margin-top:16px"><h2>Playground (POST /v1/rerank)</h2>
<form id="playground">
<label>Query <input id="query" required value="What is the capital of China?"></label>
<label>Documents, one per line <textarea id="documents" rows="5" required>The capital of China is Beijing.
Gravity is a force that attracts two bodies towards each other.
Beijing is a city in northern China.</textarea></label>
<div class="row">
<label>Instruction <input id="instruction" placeholder="default: the official web-search instruction"></label>
<label>Preset <input id="preset" list="presets" placeholder="none"><datalist id="presets">${presets}</datalist></label>
<label>Temperature <input id="temperature" type="number" step="any" min="0" placeholder="1"></label>
<label>top_p <input id="top_p" type="number" step="any" min="0" max="1" placeholder="1 (off)"></label>
</div>
<button>Rerank</button> <span id="play-status"></span>
</form>
<table><thead><tr><th>rank</th><th>index</th><th>score</th><th>log-odds</th><th>document</th></tr></thead><tbody id="results"></tbody></table>
</div>
<script>${chartLibrary()}</script>
<script>${SCRIPT.replace(/<\/script/gi, "<\\/script")}</script>
</body></html>
`;
}
