// A dashboard page held open in headless chromium for bench/suite/dashboard_ab.py: reads
// commands on stdin, one per line: "open" (load URL and wait for its first live frame),
// "close" (navigate to about:blank), "frames" (print frames received since the last open),
// "quit". Prints "ok ..." after each command.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");

const url = process.argv[2];
(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gridflow-bench-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.GRIDFLOW_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await ctx.newPage();
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === "open") {
      await page.goto(url);
      const end = Date.now() + 10000;
      while (!(await page.evaluate(() => window.gridflowDashboard && window.gridflowDashboard.frames > 0))) {
        if (Date.now() > end) { console.log("error: no live frame"); break; }
        await new Promise(r => setTimeout(r, 50));
      }
      console.log("ok open");
    } else if (cmd === "close") {
      await page.goto("about:blank");
      console.log("ok close");
    } else if (cmd === "frames") {
      const f = await page.evaluate(() => window.gridflowDashboard ? window.gridflowDashboard.frames : 0);
      const bars = await page.evaluate(() => window.gridflowDashboard ? window.gridflowDashboard.bars.length : 0);
      console.log("ok frames " + f + " bars " + bars);
    } else if (cmd === "quit") {
      break;
    }
  }
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
  console.log("ok quit");
})().catch(e => { console.log("error: " + e); process.exit(1); });
