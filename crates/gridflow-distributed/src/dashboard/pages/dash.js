// gridflow's dashboard: one live stream (server-sent events from /api/v1/stream) feeds
// every pane on the page. Written by hand, no libraries: the binary serves it offline.
"use strict";
(function () {
  const WINDOW = 15;          // seconds of task stream shown
  const MAX_BARS = 5000;      // bars kept in the browser
  const panes = document.body.dataset.panes.split(" ").filter(Boolean);
  const single = location.pathname.indexOf("/individual-") >= 0;
  if (single) document.body.classList.add("single");
  const main = document.getElementById("panes");
  const titles = { "progress": "Progress", "task-stream": "Task stream", "memory": "Worker memory",
    "workers": "Workers", "graph": "Task graph (by task group)", "info": "Cluster", "logs": "Logs" };
  const el = {};
  for (const p of panes) {
    const s = document.createElement("section");
    s.id = p;
    s.innerHTML = "<h2>" + titles[p] + "</h2><div class='body'></div>";
    main.appendChild(s);
    el[p] = s.querySelector(".body");
  }
  const state = { snapshot: null, bars: [], next: 0, frames: 0, logs: [], started: 0 };
  window.gridflowDashboard = state;   // for tests and curious users

  // Groups get distinct colours in the order the scheduler first saw them; others (a
  // group already gone from the snapshot) a colour hashed from the name.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31"];
  const groupIndex = {};
  function color(name) {
    const i = groupIndex[name];
    if (i !== undefined) return PALETTE[i % PALETTE.length];
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return "hsl(" + (h % 360) + ",62%,55%)";
  }
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  function progress(s) {
    const groups = s.groups.filter(g => g.total > 0);
    let done = 0, total = 0, html = "";
    for (const g of groups) {
      done += Math.min(g.done, g.total); total += g.total;
      const pct = v => (100 * v / g.total).toFixed(2) + "%";
      const d = Math.min(g.done, g.total);
      html += "<div class='row'><span>" + esc(g.name) + "</span><span class='muted'>" + d + " / " + g.total +
        (g.erred ? " · <b style='color:#c62828'>" + g.erred + " erred</b>" : "") + "</span></div>" +
        "<div class='bar' data-group='" + esc(g.name) + "' data-done='" + d + "' data-total='" + g.total + "'>" +
        "<span style='left:0;width:" + pct(d) + ";background:" + color(g.name) + "'></span>" +
        "<span style='left:" + pct(d) + ";width:" + pct(g.processing) + ";background:" + color(g.name) + ";opacity:.45'></span>" +
        "<span style='left:" + pct(d + g.processing) + ";width:" + pct(g.erred) + ";background:#000'></span></div>";
    }
    el.progress.dataset.done = done;
    el.progress.dataset.total = total;
    el.progress.innerHTML = groups.length ? html : "<span class='muted'>no computation yet</span>";
  }

  // One lane per worker thread, then one per worker for its transfers and spills (drawn
  // on lane number `nthreads`).
  function lanes(s) {
    const out = [], label = {};
    for (const w of s.workers) {
      for (let t = 0; t < Math.max(1, w.nthreads); t++) { out.push(w.name + "/" + t); label[w.name + "/" + t] = w.name + " #" + t; }
      const k = w.name + "/" + Math.max(1, w.nthreads);
      out.push(k); label[k] = w.name + " ⇄";
    }
    for (const b of state.bars) {
      const k = b.worker + "/" + b.thread;
      if (out.indexOf(k) < 0) { out.push(k); label[k] = b.worker + " #" + b.thread; }
    }
    return { keys: out, label };
  }

  function taskStream(s) {
    const root = el["task-stream"];
    let c = root.querySelector("canvas");
    if (!c) {
      root.innerHTML = "<canvas></canvas><div class='legend'></div>";
      c = root.querySelector("canvas");
    }
    const L = lanes(s), ls = L.keys;
    const laneH = 16, left = 90, H = Math.max(60, ls.length * (laneH + 2) + 20);
    const W = c.clientWidth || 600, dpr = window.devicePixelRatio || 1;
    c.width = W * dpr; c.height = H * dpr; c.style.height = H + "px";
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const last = state.bars.length ? state.bars[state.bars.length - 1].stop : s.time;
    const t1 = Math.max(s.time, last), t0 = t1 - WINDOW;
    const x = t => left + (W - left - 4) * (t - t0) / WINDOW;
    g.font = "11px system-ui"; g.fillStyle = "#555";
    ls.forEach((k, i) => g.fillText(L.label[k], 2, 14 + i * (laneH + 2)));
    let drawn = 0;
    const seen = {};
    for (const b of state.bars) {
      if (b.stop < t0) continue;
      const i = ls.indexOf(b.worker + "/" + b.thread);
      const y = 3 + i * (laneH + 2);
      const x0 = Math.max(left, x(b.start)), w = Math.max(1, x(b.stop) - x0);
      if (b.kind === "compute") { g.fillStyle = color(b.group); seen[b.group] = 1; }
      else if (b.kind === "transfer") g.fillStyle = "rgba(211,47,47,0.55)";
      else g.fillStyle = "rgba(90,90,90,0.6)";
      if (b.kind === "compute") g.fillRect(x0, y, w, laneH);
      else g.fillRect(x0, y + laneH * 0.55, w, laneH * 0.45);
      drawn++;
    }
    g.fillStyle = "#999";
    g.fillText("-" + WINDOW + " s", left, H - 4);
    g.fillText("now", W - 28, H - 4);
    c.dataset.bars = drawn;
    root.dataset.total = state.bars.length;
    root.querySelector(".legend").innerHTML = Object.keys(seen).slice(0, 12).map(n =>
      "<span><i style='background:" + color(n) + "'></i>" + esc(n) + "</span>").join("") +
      "<span><i style='background:rgba(211,47,47,.55)'></i>transfer</span><span><i style='background:rgba(90,90,90,.6)'></i>spill</span>";
  }

  function memory(s) {
    let html = "";
    for (const w of s.workers) {
      const used = w.managed_bytes + w.unmanaged_bytes;
      html += "<div class='row' data-worker='" + esc(w.name) + "'><span>" + esc(w.name) + "</span><span class='muted'>" +
        bytes(w.managed_bytes) + " managed · " + bytes(w.unmanaged_bytes) + " unmanaged · " + bytes(w.spilled_bytes) +
        " spilled · limit " + (w.memory_limit ? bytes(w.memory_limit) : "none") + "</span></div>";
      if (!w.memory_limit) {
        // Without a limit there is no "full": a bar against any other scale (the largest
        // worker, say) would look full when it is not. The figure alone, then.
        html += "<div class='nolimit' data-worker='" + esc(w.name) + "'>" + bytes(used) + " in use, no memory limit" +
          (w.spilled_bytes ? " (" + bytes(w.spilled_bytes) + " spilled)" : "") + "</div>";
        continue;
      }
      const cap = Math.max(w.memory_limit, used + w.spilled_bytes, 1);
      const pct = v => (100 * v / cap).toFixed(2) + "%";
      html += "<div class='bar' data-worker='" + esc(w.name) + "' data-limit='" + w.memory_limit + "'>" +
        "<span style='left:0;width:" + pct(w.managed_bytes) + ";background:#1e88e5'></span>" +
        "<span style='left:" + pct(w.managed_bytes) + ";width:" + pct(w.unmanaged_bytes) + ";background:#90caf9'></span>" +
        "<span style='left:" + pct(used) + ";width:" + pct(w.spilled_bytes) + ";background:#9e9e9e'></span></div>";
    }
    el.memory.innerHTML = html || "<span class='muted'>no workers</span>";
  }

  function workers(s) {
    // Memory and its limit share a column, and a long address may wrap, so that the
    // table fits a half-width pane at 1280 px.
    let html = "<table><tr><th>name</th><th>address</th><th>threads</th><th>CPU</th><th>memory / limit</th>" +
      "<th>running</th><th>stored</th><th>fetched</th><th>last seen</th></tr>";
    for (const w of s.workers) {
      html += "<tr data-worker='" + esc(w.name) + "'" + (w.retiring ? " class='retiring'" : "") + "><td>" + esc(w.name) +
        (w.retiring ? " <span class='muted'>retiring</span>" : "") + "</td><td class='addr'>" + esc(w.address) +
        "</td><td>" + w.nthreads + "</td><td>" + (w.cpu == null ? "–" : w.cpu.toFixed(0) + "%") + "</td><td>" +
        bytes(w.managed_bytes + w.unmanaged_bytes) + " / " + (w.memory_limit ? bytes(w.memory_limit) : "none") +
        "</td><td>" + w.running + "</td><td>" + w.stored + "</td><td>" + bytes(w.bytes_fetched) + "</td><td>" +
        w.last_seen.toFixed(1) + " s</td></tr>";
    }
    el.workers.innerHTML = html + "</table>";
  }

  function graph(s) {
    const gs = s.groups;
    if (!gs.length) { el.graph.innerHTML = "<span class='muted'>no computation yet</span>"; return; }
    // Layers: a group sits one right of the deepest group it reads.
    const depth = gs.map(() => 0);
    for (let k = 0; k < gs.length; k++) for (const [a, b] of s.group_edges) depth[b] = Math.max(depth[b], depth[a] + 1);
    const cols = {};
    gs.forEach((g, i) => (cols[depth[i]] = cols[depth[i]] || []).push(i));
    const pos = {}, CW = 150, RH = 46;
    let rows = 1;
    for (const d in cols) { cols[d].forEach((i, r) => (pos[i] = [10 + d * CW, 10 + r * RH])); rows = Math.max(rows, cols[d].length); }
    const W = 20 + (Math.max.apply(null, depth) + 1) * CW, H = 20 + rows * RH;
    let svg = "<svg width='" + W + "' height='" + H + "'>";
    for (const [a, b] of s.group_edges) {
      const [x1, y1] = pos[a], [x2, y2] = pos[b];
      svg += "<line x1='" + (x1 + 120) + "' y1='" + (y1 + 16) + "' x2='" + x2 + "' y2='" + (y2 + 16) + "' stroke='#aaa'/>";
    }
    gs.forEach((g, i) => {
      const [x, y] = pos[i], f = g.total ? Math.min(g.done, g.total) / g.total : 0;
      svg += "<g data-group='" + esc(g.name) + "'><rect x='" + x + "' y='" + y + "' width='120' height='32' rx='4' fill='#fff' stroke='" +
        color(g.name) + "' stroke-width='2'/><rect x='" + x + "' y='" + (y + 26) + "' width='" + (120 * f).toFixed(1) +
        "' height='6' fill='" + color(g.name) + "'/><text x='" + (x + 5) + "' y='" + (y + 14) + "'>" + esc(g.name.slice(0, 18)) +
        "</text><text x='" + (x + 5) + "' y='" + (y + 24) + "' fill='#777'>" + Math.min(g.done, g.total) + "/" + g.total + "</text></g>";
    });
    el.graph.innerHTML = svg + "</svg>";
  }

  function info(s) {
    const c = s.counters, threads = s.workers.reduce((a, w) => a + w.nthreads, 0);
    const rows = [["source", s.source], ["address", s.address], ["started", new Date(state.started * 1000).toISOString()],
      ["workers", s.workers.length], ["threads", threads], ["tasks completed", c.tasks_completed_total],
      ["tasks erred", c.tasks_erred_total], ["bytes transferred", bytes(c.bytes_transferred_total)],
      ["computations", c.jobs_total], ["loop iterations", c.loop_iterations_total],
      ["loop time (mean)", c.loop_iterations_total ? (1e6 * c.loop_seconds_total / c.loop_iterations_total).toFixed(1) + " µs" : "–"]];
    el.info.innerHTML = "<table>" + rows.map(r => "<tr><td>" + r[0] + "</td><td>" + esc(r[1]) + "</td></tr>").join("") + "</table>";
  }

  function logs() {
    el.logs.innerHTML = "<pre class='logs'>" + state.logs.map(l => "[" + l[0].toFixed(1) + " s] " + esc(l[1])).join("\n") + "</pre>";
  }

  const draw = { "progress": progress, "task-stream": taskStream, "memory": memory, "workers": workers,
    "graph": graph, "info": info, "logs": logs };

  function apply(f) {
    state.frames++;
    state.snapshot = f.snapshot;
    f.snapshot.groups.forEach((g, i) => { if (groupIndex[g.name] === undefined) groupIndex[g.name] = i; });
    state.started = f.started_unix;
    state.next = f.next;
    state.logs = f.logs;
    for (const b of f.events) state.bars.push(b);
    const t0 = f.snapshot.time - 2 * WINDOW;
    let cut = 0;
    while (cut < state.bars.length && (state.bars[cut].stop < t0 || state.bars.length - cut > MAX_BARS)) cut++;
    if (cut) state.bars.splice(0, cut);
    for (const p of panes) draw[p](f.snapshot);
  }

  function connect() {
    const es = new EventSource("api/v1/stream?since=" + state.next);
    const conn = document.getElementById("conn");
    es.onopen = () => { conn.textContent = "live"; };
    es.onmessage = m => apply(JSON.parse(m.data));
    es.onerror = () => { conn.textContent = "disconnected; retrying"; es.close(); setTimeout(connect, 1000); };
  }
  connect();
})();
