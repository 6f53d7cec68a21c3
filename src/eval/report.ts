import { writeFile } from "node:fs/promises";
import { chartLibrary } from "../html/chart-js.js";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { LabelledScores } from "./apply.js";
import type { Calibration, ReliabilityBin } from "./calibration.js";
import type { MetricReport } from "./metrics.js";

/** A Chart.js configuration (type, data, options), kept as plain JSON. */
export type ChartConfig = Record<string, unknown>;

export type ReportSection =
  | { kind: "table"; title: string; columns: string[]; rows: Array<Array<string | number>>; note?: string }
  | { kind: "chart"; title: string; note?: string; chart: ChartConfig }
  | { kind: "text"; title: string; text: string };

export interface Report {
  title: string;
  /** One line under the title: what was measured, on what. */
  subtitle: string;
  sections: ReportSection[];
}

const BLUE = "rgba(54, 112, 198, 0.75)";
const ORANGE = "rgba(230, 126, 34, 0.75)";
const GREY = "rgba(120, 120, 120, 0.6)";

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

/** A bar chart of one or more series over the same labels. */
export function barChart(labels: string[], series: Array<{ label: string; data: number[] }>, yTitle: string, horizontal = false): ChartConfig {
  const colors = [BLUE, ORANGE, GREY];
  return {
    type: "bar",
    data: { labels, datasets: series.map((s, i) => ({ label: s.label, data: s.data, backgroundColor: colors[i % colors.length] })) },
    options: { indexAxis: horizontal ? "y" : "x", scales: { [horizontal ? "x" : "y"]: { title: { display: true, text: yTitle } } } },
  };
}

/**
 * Overlaid histograms of the scores (sigmoid(z / T + bias)) of relevant and non-relevant
 * documents, each as fractions of its group.
 */
export function scoreHistogram(labelled: LabelledScores, calibration: Calibration, bins = 20): ChartConfig {
  const scores = Array.from(labelled.logits, (z) => scoreFromLogit(z, calibration.temperature, calibration.bias));
  const relevant = scores.filter((_, i) => labelled.labels[i] === 1);
  const nonRelevant = scores.filter((_, i) => labelled.labels[i] !== 1);
  const hist = (xs: readonly number[]) => {
    const counts = new Array<number>(bins).fill(0);
    for (const x of xs) {
      const b = Math.min(bins - 1, Math.max(0, Math.floor(x * bins)));
      counts[b] = (counts[b] ?? 0) + 1;
    }
    return counts.map((c) => (xs.length === 0 ? 0 : c / xs.length));
  };
  const labels = Array.from({ length: bins }, (_, b) => `${(b / bins).toFixed(2)}–${((b + 1) / bins).toFixed(2)}`);
  return {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: `relevant (${relevant.length})`, data: hist(relevant), backgroundColor: BLUE },
        { label: `non-relevant (${nonRelevant.length})`, data: hist(nonRelevant), backgroundColor: ORANGE },
      ],
    },
    options: { scales: { x: { title: { display: true, text: "score" } }, y: { title: { display: true, text: "fraction of the group" } } } },
  };
}

/** Reliability diagram: fraction relevant against mean score per bin, one line per calibration, and the diagonal. */
export function reliabilityChart(curves: Array<{ label: string; bins: ReliabilityBin[] }>): ChartConfig {
  const colors = [ORANGE, BLUE, GREY];
  return {
    type: "scatter",
    data: {
      datasets: [
        { label: "perfect calibration", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderColor: GREY, borderDash: [4, 4], pointRadius: 0 },
        ...curves.map((c, i) => ({
          label: c.label,
          data: c.bins.filter((b) => b.count > 0).map((b) => ({ x: b.confidence, y: b.accuracy, n: b.count })),
          showLine: true,
          borderColor: colors[i % colors.length],
          backgroundColor: colors[i % colors.length],
        })),
      ],
    },
    options: {
      scales: {
        x: { min: 0, max: 1, title: { display: true, text: "mean score in bin" } },
        y: { min: 0, max: 1, title: { display: true, text: "fraction relevant" } },
      },
    },
  };
}

/** Per-query change of a measure from `before` to `after`, sorted, as bars (gains above zero, losses below). */
export function deltaChart(before: MetricReport, after: MetricReport, measure: string): ChartConfig {
  const deltas = [...after.perQuery].map(([qid, v]) => ({ qid, delta: (v[measure] ?? 0) - (before.perQuery.get(qid)?.[measure] ?? 0) }));
  const sorted = deltas.sort((a, b) => b.delta - a.delta);
  return {
    type: "bar",
    data: {
      labels: sorted.map((d) => d.qid),
      datasets: [{ label: `Δ ${measure} (reranked − first stage)`, data: sorted.map((d) => d.delta), backgroundColor: sorted.map((d) => (d.delta >= 0 ? BLUE : ORANGE)) }],
    },
    options: { scales: { x: { title: { display: true, text: "query" } }, y: { title: { display: true, text: `Δ ${measure}` } } } },
  };
}

/** A self-contained HTML page (Chart.js inlined, no network) with the report's tables and charts. */
function renderReport(report: Report): string {
  const charts: ChartConfig[] = [];
  const body = report.sections
    .map((s) => {
      const title = `<h2>${escapeHtml(s.title)}</h2>`;
      if (s.kind === "text") return `<section>${title}<p>${escapeHtml(s.text)}</p></section>`;
      const note = s.note ? `<p class="note">${escapeHtml(s.note)}</p>` : "";
      if (s.kind === "chart") {
        charts.push(s.chart);
        return `<section>${title}${note}<div class="chart"><canvas id="chart-${charts.length - 1}"></canvas></div></section>`;
      }
      const head = s.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
      const cell = (v: string | number) => (typeof v === "number" || /^[-+]?[\d.]+$/.test(v) ? `<td>${escapeHtml(typeof v === "number" ? fmt(v) : v)}</td>` : `<td class="text">${escapeHtml(v)}</td>`);
      const rows = s.rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("\n");
      return `<section>${title}${note}<table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></section>`;
    })
    .join("\n");
  const data = JSON.stringify(charts).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(report.title)}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #555; margin-top: 0; }
section { margin: 2rem 0; } .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
.chart { position: relative; height: 360px; }
#errors { display: none; background: #fdd; padding: 1rem; }
</style>
</head>
<body>
<div id="errors"></div>
<h1>${escapeHtml(report.title)}</h1>
<p class="subtitle">${escapeHtml(report.subtitle)}</p>
${body}
<script>
window.reportErrors = [];
window.addEventListener("error", function (e) { window.reportErrors.push(String(e.message)); var box = document.getElementById("errors"); box.style.display = "block"; box.textContent = "Report error: " + window.reportErrors.join("; "); });
</script>
<script>${chartLibrary()}</script>
<script>
(function () {
  var charts = ${data};
  charts.forEach(function (config, i) {
    config.options = Object.assign({ animation: false, maintainAspectRatio: false, responsive: true }, config.options || {});
    new Chart(document.getElementById("chart-" + i), config);
  });
  document.body.setAttribute("data-charts-rendered", String(charts.length));
})();
</script>
</body>
</html>
`;
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
}

export async function writeReport(path: string, report: Report): Promise<void> {
  await writeFile(path, renderReport(report), "utf8");
}
