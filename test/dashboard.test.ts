/// <reference lib="dom" />
import assert from "node:assert/strict";
import { test } from "node:test";
import { startServer } from "../src/server/serve.js";
import { findChromium, watchedPage } from "./fixtures/browser.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

interface DashboardWindow {
  dashboard: { charts: Record<string, { data: { labels: unknown[]; datasets: Array<{ label: string; data: Array<number | null> }> } }> };
}

test("GET /dashboard in headless Chromium behind --api-key: live charts with adjustment markers, a working playground, nothing fetched elsewhere", async (t) => {
  const chromium = findChromium();
  if (!chromium) {
    t.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it");
    return;
  }
  // Every check finds the engine "fast": the seed rule moves the batch size (64 -> 16) after 2 requests.
  const adaptive = { mode: "seed", adjustEvery: 2, rule: { fastMs: 1e6, slowMs: 2e6 } } as const;
  const server = await startServer({ reranker: { model: testModel("causal"), maxLength: 256, ...exactEngine, adaptive }, port: 0, server: { apiKey: "secret" } });
  const { browser, page, errors } = await watchedPage(chromium, (url) => url.startsWith(`${server.url}/`));
  try {
    await server.ready;
    await page.setViewport({ width: 1300, height: 1000 });
    await page.goto(`${server.url}/dashboard?interval=250#key=secret`, { waitUntil: "load" });
    await page.waitForSelector("body[data-updates]", { timeout: 10_000 });
    assert.equal(await page.evaluate(() => location.hash), "", "the key leaves the address bar");
    const before = await page.evaluate(() => {
      const c = (window as unknown as DashboardWindow).dashboard.charts;
      return { histogram: (c.histogram?.data.datasets[0]?.data ?? []).reduce<number>((a, b) => a + (b ?? 0), 0), languages: c.languages?.data.labels.length ?? 0 };
    });
    assert.deepEqual(before, { histogram: 0, languages: 0 });

    const auth = { authorization: "Bearer secret", "content-type": "application/json" };
    for (const query of [QUERY_EN, QUERY_ZH, QUERY_EN]) {
      const res = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: auth, body: JSON.stringify({ query, documents: DOCUMENTS.slice(0, 4), language: "auto" }) });
      assert.equal(res.status, 200);
    }
    await page.waitForFunction(
      () => {
        const c = (window as unknown as DashboardWindow).dashboard.charts;
        const markers = c.knobs?.data.datasets.find((d) => d.label === "batch size change")?.data ?? [];
        const documents = (c.histogram?.data.datasets[0]?.data ?? []).reduce<number>((a, b) => a + (b ?? 0), 0);
        return markers.some((v) => v !== null) && documents === 12;
      },
      { timeout: 10_000 },
    );
    const after = await page.evaluate(() => {
      const c = (window as unknown as DashboardWindow).dashboard.charts;
      const knobs = c.knobs?.data.datasets ?? [];
      return {
        histogram: (c.histogram?.data.datasets[0]?.data ?? []).reduce<number>((a, b) => a + (b ?? 0), 0),
        languages: c.languages?.data.labels as string[],
        batch: knobs[0]?.data.at(-1),
        latencyPoints: c.latency?.data.labels.length ?? 0,
        adjustmentRows: document.querySelectorAll("#adjustments tr").length,
        painted: Array.from(document.querySelectorAll("canvas")).map((canvas) => {
          const data = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
          let n = 0;
          for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) n++;
          return n;
        }),
      };
    });
    assert.equal(after.histogram, 12, "3 requests x 4 documents");
    assert.deepEqual([...after.languages].sort(), ["en", "zh"]);
    assert.equal(after.batch, 16);
    assert.ok(after.latencyPoints >= 2);
    assert.ok(after.adjustmentRows >= 1);
    assert.equal(after.painted.length, 5);
    for (const n of after.painted) assert.ok(n > 0, "every chart drew something");

    await page.click("#playground button");
    await page.waitForFunction(() => document.querySelectorAll("#results tr").length === 3, { timeout: 10_000 });
    const rows = await page.evaluate(() => Array.from(document.querySelectorAll("#results tr")).map((tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent ?? "")));
    for (const row of rows) {
      assert.ok(Number(row[2]) >= 0 && Number(row[2]) <= 1, `score ${row[2]}`);
      assert.ok(Number.isFinite(Number(row[3])), `log-odds ${row[3]}`);
    }
    assert.deepEqual(errors, [], "no console errors, no request leaves the server");

    // Without the key the page asks for it (the 401 itself is the browser's expected console line).
    const anonymous = await browser.newPage();
    await anonymous.goto(`${server.url}/dashboard?interval=250`, { waitUntil: "load" });
    await anonymous.waitForFunction(() => !(document.getElementById("key-form") as HTMLFormElement).hidden, { timeout: 10_000 });
    assert.match(await anonymous.evaluate(() => document.getElementById("status")?.textContent ?? ""), /API key/);
  } finally {
    await browser.close();
    await server.close();
  }
});
