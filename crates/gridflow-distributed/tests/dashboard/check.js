// Drives Debian's chromium (headless, through playwright-core) against a live gridflow
// dashboard, for crates/gridflow-distributed/tests/dashboard.rs:
//   node check.js BASE_URL OUT_DIR WORKER,NAMES EXPECTED_TASKS
// Prints "ready" once /status is live (the test then starts its computation), then checks
// that the task stream and progress fill up and reach completion and that the workers
// table lists every worker, screenshots each stage and every pane of
// /individual-plots.json, and prints one JSON line of what it saw. Exits 1 on failure.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [base, out, workerList, expectedArg] = process.argv.slice(2);
const workers = workerList.split(",");
const expected = Number(expectedArg);
const exe = process.env.GRIDFLOW_CHROMIUM || "/usr/bin/chromium";

function fail(msg) {
  console.error("dashboard check failed: " + msg);
  process.exit(1);
}

async function until(what, ms, f) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) fail("timed out after " + ms + " ms waiting for " + what);
    await new Promise(r => setTimeout(r, 50));
  }
}

(async () => {
  fs.mkdirSync(out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gridflow-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: exe,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const seen = { requests: [], errors: [] };
  ctx.on("request", r => seen.requests.push(r.url()));
  ctx.on("response", r => { if (r.status() >= 400) seen.errors.push(r.status() + " " + r.url()); });
  try {
    const page = await ctx.newPage();
    page.on("pageerror", e => seen.errors.push(String(e)));
    page.on("console", m => { if (m.type() === "error") seen.errors.push(m.text()); });
    await page.goto(base + "/status");
    await until("the first frame", 10000, () => page.evaluate(() => window.gridflowDashboard.frames > 0));
    console.log("ready");
    const read = () => page.evaluate(() => {
      const p = document.querySelector("#progress .body");
      const c = document.querySelector("#task-stream canvas");
      return {
        done: Number(p.dataset.done || 0), total: Number(p.dataset.total || 0),
        bars: c ? Number(c.dataset.bars || 0) : 0,
        received: window.gridflowDashboard.bars.length,
        groups: [...document.querySelectorAll("#progress .bar")].map(b => b.dataset.group),
        workers: [...document.querySelectorAll("#workers tr[data-worker]")].map(r => r.dataset.worker),
      };
    });
    // Mid-run: bars drawn and progress partly filled.
    const mid = await until("the task stream and progress to fill during the computation", 60000, async () => {
      const s = await read();
      return s.total > 0 && s.done > 0 && s.done < s.total && s.bars > 0 ? s : null;
    });
    await page.screenshot({ path: path.join(out, "status-running.png"), fullPage: true });
    const end = await until("progress to reach completion (" + expected + " tasks)", 120000, async () => {
      const s = await read();
      return s.total >= expected && s.done === s.total ? s : null;
    });
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(out, "status-done.png"), fullPage: true });
    for (const w of workers) if (end.workers.indexOf(w) < 0) fail("workers table lacks " + w + ": " + end.workers);
    // At 1280 px every column of the workers table is visible (none cut off or scrolled
    // away), and no memory bar is drawn for a worker without a limit (it would claim a
    // "full" that does not exist).
    const layout = await page.evaluate(() => {
      const sec = document.querySelector("section#workers");
      const table = sec.querySelector("table");
      const last = table.querySelector("tr th:last-child");
      return {
        viewport: window.innerWidth,
        sectionScroll: sec.scrollWidth, sectionClient: sec.clientWidth,
        tableRight: table.getBoundingClientRect().right, sectionRight: sec.getBoundingClientRect().right,
        lastHeader: last.textContent, lastRight: last.getBoundingClientRect().right,
        bars: [...document.querySelectorAll("#memory .bar")].map(b => ({ worker: b.dataset.worker, limit: Number(b.dataset.limit || 0) })),
        nolimit: [...document.querySelectorAll("#memory .nolimit")].map(b => b.dataset.worker),
      };
    });
    if (layout.viewport !== 1280) fail("the viewport is " + layout.viewport + " px, not 1280");
    if (layout.sectionScroll > layout.sectionClient || layout.tableRight > layout.sectionRight || layout.lastRight > layout.sectionRight)
      fail("the workers table does not fit its pane at 1280 px: " + JSON.stringify(layout));
    for (const b of layout.bars) if (!(b.limit > 0)) fail("a memory bar without a limit for " + b.worker + ": " + JSON.stringify(layout));
    for (const w of workers) if (layout.nolimit.indexOf(w) < 0) fail("no plain memory figure for " + w + " (no limit): " + JSON.stringify(layout));
    // Every pane of the index dask-labextension reads loads on its own.
    const plots = await (await page.request.get(base + "/individual-plots.json")).json();
    const panes = {};
    for (const [name, route] of Object.entries(plots)) {
      const p = await ctx.newPage();
      p.on("pageerror", e => seen.errors.push(name + ": " + e));
      const resp = await p.goto(base + route);
      if (!resp || resp.status() !== 200) fail(name + " at " + route + " answered " + (resp && resp.status()));
      await until(name + " to draw", 10000, () => p.evaluate(() => window.gridflowDashboard && window.gridflowDashboard.frames > 0));
      const sections = await p.evaluate(() => [...document.querySelectorAll("section")].map(s => s.id));
      const file = "pane-" + route.replace(/^\//, "") + ".png";
      await p.screenshot({ path: path.join(out, file), fullPage: true });
      panes[name] = { route, sections, file };
      await p.close();
    }
    const external = seen.requests.filter(u => !u.startsWith(base));
    if (external.length) fail("the page asked for resources outside the dashboard: " + external.slice(0, 5));
    if (seen.errors.length) fail("JavaScript errors: " + seen.errors.slice(0, 5).join(" | "));
    console.log(JSON.stringify({ mid, end, panes, layout }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch(e => fail(String(e && e.stack || e)));
