// hpoqueue dashboard: a few hash-routed pages on the JSON API, refreshed every 1.5 s when the record changed.
// In a report (window.HPOQ_REPORT set) the same pages read the data embedded in the file instead.
"use strict";

const REPORT = window.HPOQ_REPORT || null;
const POLL_MS = 1500;
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const STATE_COLORS = { SUCCEEDED: "#16a34a", FAILED: "#dc2626", RUNNING: "#2563eb", WAITING: "#9ca3af",
  EARLY_STOPPED: "#d97706", USER_CANCELED: "#6b7280", TIMEOUT: "#6b7280", LOST: "#dc2626", RETRIED: "#f59e0b" };
const LAYOUT = { margin: { l: 60, r: 20, t: 36, b: 46 }, font: { size: 12 }, paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#fff", hovermode: "closest", legend: { orientation: "h", y: -0.2 } };

let token = null;
let info = { read_only: true, flower: null };
let current = null;     // the page on show: { refresh(force) }

// ---- helpers --------------------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
  '"': "&quot;", "'": "&#39;" }[c]));
const num = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? Number(v.toPrecision(6)) : esc(v));
const badge = (s) => `<span class="badge s-${esc(s)}">${esc(s)}</span>`;
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
const date = (t) => new Date(t * 1000);
function dur(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
}
const fmtParams = (p) => esc(Object.entries(p || {}).map(([k, v]) => `${k}=${typeof v === "number" ?
  Number(v.toPrecision(4)) : JSON.stringify(v)}`).join("  "));

// answers asked for early: a chart tab's data is asked for beside the overview, not after it
const prefetched = new Map();
function prefetch(path) {
  const answer = api(path);
  answer.catch(() => {});  // an error shows where the answer is used
  prefetched.set(path, answer);
}

async function api(path) {
  const early = prefetched.get(path);
  if (early) {
    prefetched.delete(path);
    return early;
  }
  if (REPORT) {
    const key = path.split("?")[0];
    if (!(key in REPORT.data)) throw new Error(`not in this report: ${key}`);
    return REPORT.data[key];
  }
  const resp = await fetch(path, { cache: "no-store" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
  return body;
}

async function act(path, body) {
  const resp = await fetch(path, { method: "POST", headers: { "X-Hpoqueue-Token": token || "",
    "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || `${resp.status} ${resp.statusText}`);
  return data.message;
}

function notice(text, error = false) {
  const box = $("#notice");
  box.hidden = !text;
  box.className = error ? "error" : "";
  box.textContent = text || "";
}

// Plotly (1.3 MB: only the trace types drawn here) is loaded by the first page that draws a chart, never by the
// list or the table; its URL holds its hash, so the browser keeps it and its compiled code (a report has it inline)
let plotlyLoading = null;
function loadPlotly() {
  if (window.Plotly) return Promise.resolve();
  plotlyLoading = plotlyLoading || new Promise((resolve, reject) => {
    const tag = document.createElement("script");
    tag.src = info.plotly;
    tag.onload = resolve;
    tag.onerror = () => { plotlyLoading = null; reject(new Error(`cannot load ${tag.src}`)); };
    document.head.appendChild(tag);
  });
  return plotlyLoading;
}

// a chart below the fold is drawn when it is scrolled to (its latest data kept meanwhile)
const offscreen = new Map();
const watcher = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting || !offscreen.has(e.target)) continue;
    const [traces, layout] = offscreen.get(e.target);
    offscreen.delete(e.target);
    watcher.unobserve(e.target);
    draw(e.target, traces, layout);
  }
}, { rootMargin: "100px" }) : null;

async function plot(id, traces, layout) {
  const el = document.getElementById(id);
  if (!el) return;
  if (watcher && !el._fullLayout && el.getBoundingClientRect().top > window.innerHeight + 100) {
    if (!offscreen.has(el)) watcher.observe(el);
    offscreen.set(el, [traces, layout]);
    return;
  }
  await draw(el, traces, layout);
}

async function draw(el, traces, layout) {
  await loadPlotly();
  if (!el.isConnected) return;
  const full = Object.assign({}, LAYOUT, layout);
  if (full.title) full.title = Object.assign({ x: 0.01, xanchor: "left", font: { size: 14 } }, full.title);
  performance.mark(`hpoq-draw ${el.id}`);  // to hpoq-drawn: the chart's drawing, as benchmarks/dashboard.py times it
  await Plotly.react(el, traces, full, PLOT_CONFIG);
  // let the browser paint it, and answer input, before the page builds its next chart (a frame and a bit)
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  performance.mark(`hpoq-drawn ${el.id}`);  // painted: what benchmarks/dashboard.py times
  await new Promise((resolve) => setTimeout(resolve, 15));
}

// WebGL drawn in software (SwiftShader, llvmpipe: no GPU, or a headless browser) costs seconds per chart:
// there the parallel coordinates are drawn as SVG lines instead of Plotly's WebGL parcoords
let softwareGl = null;
function webglIsSoftware() {
  if (softwareGl !== null) return softwareGl;
  const known = sessionStorage.getItem("hpoq-software-gl");
  if (known !== null) return (softwareGl = known === "1");
  try {
    const gl = document.createElement("canvas").getContext("webgl");
    const ext = gl && gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : "";
    softwareGl = !gl || /swiftshader|llvmpipe|softpipe|lavapipe|software/i.test(renderer);
    const lose = gl && gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();
  } catch (e) { softwareGl = true; }
  sessionStorage.setItem("hpoq-software-gl", softwareGl ? "1" : "0");
  return softwareGl;
}

// a density from the server (counts on a grid, None where empty) as a heatmap under a chart's marks
function densityTrace(d, extra = {}) {
  return Object.assign({ type: "heatmap", x: d.x, y: d.y, z: d.z, showscale: false, hoverongaps: false,
    colorscale: [[0, "#dbe7fb"], [1, "#1e3a8a"]], zmin: 0, name: "trials",
    hovertemplate: "%{z} trials here<extra></extra>" }, extra);
}

function note(id, text) {
  const el = document.getElementById(id);
  if (el) { el.textContent = text || ""; el.hidden = !text; }
}

function progress(done, total, cls = "") {
  if (!total) return "";
  const pct = Math.min(100, (100 * done) / total);
  return `<div class="bar ${cls}"><span style="width:${pct.toFixed(1)}%"></span></div>`;
}

function crumbs(parts) {
  $("#crumbs").innerHTML = parts.map(([text, href]) => href ? `<a href="${href}">${esc(text)}</a>` : esc(text))
    .join(" / ");
}

// ---- experiments ------------------------------------------------------------------------------------
function experimentsPage() {
  crumbs([["experiments"]]);
  return {
    async refresh() {
      const exps = await api("/api/experiments");
      const rows = exps.map((e) => `<tr class="link" data-href="#/experiment/${esc(e.id)}">
        <td><a href="#/experiment/${esc(e.id)}">${esc(e.name || e.id)}</a><div class="muted">${esc(e.id)}</div></td>
        <td>${badge(e.state)}</td>
        <td>${progress(e.finished, e.max_trials)}<span class="barlabel">${e.finished} done of
          ${e.max_trials ?? "∞"} · ${e.counts.RUNNING} running</span></td>
        <td>${progress(e.elapsed, e.max_duration, "time")}<span class="barlabel">${dur(e.elapsed)}
          ${e.max_duration ? "of " + dur(e.max_duration) : ""}</span></td>
        <td class="num">${e.best ? num(e.best.value) : "–"}</td>
        <td>${when(e.created)}</td><td>${dur(e.elapsed)}</td></tr>`).join("");
      $("#view").innerHTML = `<h1>Experiments</h1><div class="sub">${exps.length} in the record</div>
        <div class="panel scroll"><table class="data" id="experiments"><thead><tr><th>experiment</th><th>state</th>
        <th>trials</th><th>time budget</th><th>best</th><th>created</th><th>duration</th></tr></thead>
        <tbody>${rows || '<tr><td colspan="7" class="muted">no experiments yet</td></tr>'}</tbody></table></div>`;
      for (const tr of document.querySelectorAll("tr[data-href]")) tr.onclick = () => { location.hash = tr.dataset.href; };
    },
  };
}

// ---- one experiment -------------------------------------------------------------------------------
const RUNNING_SHOWN = 12;  // running trials named on the overview: hundreds would push its charts below the fold

// the boxes and GPUs the running trials hold, box by box, naming at most RUNNING_SHOWN trials: the rest are counted,
// and linked to in the trial table
function runningList(expId, hosts) {
  if (!hosts.length) return '<span class="muted">no trial running</span>';
  let room = RUNNING_SHOWN, running = 0;
  const items = [];
  for (const h of hosts) {
    running += h.trials.length;
    const shown = h.trials.slice(0, Math.max(0, room));
    room -= shown.length;
    if (!shown.length) continue;
    const rest = h.trials.length - shown.length;
    items.push(`<li><b>${esc(h.host)}</b>: ${shown.map((t) => `<a href="#/trial/${esc(t.trial)}">${esc(t.trial.split("-").pop())}</a>
      on ${t.gpus.length ? "GPU " + t.gpus.join(",") : "cpu"}`).join(", ")}${rest ? ` and ${rest} more` : ""}</li>`);
  }
  const more = running - Math.min(running, RUNNING_SHOWN);
  return `<ul class="hosts">${items.join("")}</ul>${more ? `<a id="running-more" href="#/experiment/${esc(expId)}/trials/RUNNING">${
    more} more running trial${more === 1 ? "" : "s"} in the table</a>` : ""}`;
}

const TABS = [["overview", "Overview"], ["trials", "Trials"], ["curves", "Intermediate results"],
  ["params", "Parameters"], ["gpus", "Durations & GPUs"]];
// where each chart tab's data comes from
const TAB_DATA = {
  overview: (expId) => `/api/experiments/${expId}/progress`,
  curves: (expId) => `/api/experiments/${expId}/curves?chosen=${encodeURIComponent([...chosen(expId)].join(","))}`,
  params: (expId) => `/api/experiments/${expId}/params`,
  gpus: (expId) => `/api/experiments/${expId}/timeline`,
};

function chosenKey(exp) { return `hpoq-chosen-${exp}`; }
function chosen(exp) { return new Set(JSON.parse(sessionStorage.getItem(chosenKey(exp)) || "[]")); }
function setChosen(exp, set) { sessionStorage.setItem(chosenKey(exp), JSON.stringify([...set])); }

function experimentPage(expId, tab, state) {
  tab = tab || "overview";
  // #/experiment/EXP/trials/STATE opens the table showing the trials in that state
  const table = { sort: "seq", desc: false, state: tab === "trials" && state in STATE_COLORS ? state : "", filter: "", offset: 0,
    limit: 50 };
  let shell = false;
  crumbs([["experiments", "#/"], [expId]]);

  async function header(ov) {
    const acts = info.read_only || REPORT ? "" : `<div class="actions">
      <label>concurrency <input id="u-concurrency" type="number" min="1" placeholder="${ov.concurrency}"></label>
      <label>max trials <input id="u-max-trials" type="number" min="1" placeholder="${ov.max_trials ?? "∞"}"></label>
      <label>duration <input id="u-duration" type="text" placeholder="${ov.max_duration ? dur(ov.max_duration) : "e.g. 2h"}"></label>
      <button id="update">Update</button>
      <button class="danger" id="stop" ${ov.state === "RUNNING" ? "" : "disabled"}>Stop experiment</button></div>`;
    $("#view").innerHTML = `<div class="titlebar"><h1>${esc(ov.name || ov.id)} <span id="exp-state">${badge(ov.state)}</span></h1>${acts}</div>
      <div class="sub">${esc(ov.id)} · ${esc(ov.tuner || "")}${ov.assessor ? " + " + esc(ov.assessor) : ""}
        · optimize: ${esc(ov.optimize_mode)} · <code>${esc(ov.trial_command || "")}</code></div>
      <nav class="tabs">${TABS.map(([k, t]) => `<a href="#/experiment/${esc(expId)}/${k}" id="tab-${k}"
        class="${k === tab ? "active" : ""}">${t}</a>`).join("")}</nav><div id="tab"></div>`;
    if (!acts) return;
    $("#stop").onclick = () => run(`/api/stop/${expId}`, null, `Stop ${expId} and its running trials?`);
    $("#update").onclick = () => run(`/api/update/${expId}`, { concurrency: $("#u-concurrency").value,
      max_trials: $("#u-max-trials").value, duration: $("#u-duration").value });
  }

  async function run(path, body, question) {
    if (question && !confirm(question)) return;
    try { notice(await act(path, body)); } catch (e) { notice(e.message, true); }
    page.refresh(true);
  }

  const page = {
    async refresh() {
      prefetched.clear();
      if (TAB_DATA[tab]) prefetch(TAB_DATA[tab](expId));
      const ov = await api(`/api/experiments/${expId}`);
      if (!shell) { await header(ov); shell = true; }
      $("#exp-state").innerHTML = badge(ov.state);
      const stop = $("#stop");
      if (stop) stop.disabled = ov.state !== "RUNNING";
      await TAB_VIEWS[tab](expId, ov, table, page);
    },
  };
  return page;
}

const TAB_VIEWS = {
  async overview(expId, ov) {
    const tab = $("#tab");
    if (!$("#ov-cards")) {
      tab.innerHTML = `<div class="cards" id="ov-cards"></div><div class="grid2">
        <div class="panel"><div id="chart-best-seq" class="chart"></div></div>
        <div class="panel"><div id="chart-best-time" class="chart"></div></div></div>
        <div class="muted note" id="note-progress" hidden></div>`;
    }
    const c = ov.counts;
    const states = Object.entries(c).filter(([, n]) => n).map(([s, n]) => `${badge(s)} ${n}`).join(" ");
    const hosts = runningList(expId, ov.hosts);
    $("#ov-cards").innerHTML = `
      <div class="card"><div class="label">best ${esc(ov.optimize_mode === "minimize" ? "(lowest)" : "(highest)")}</div>
        <div class="big" id="best-value">${ov.best ? num(ov.best.value) : "–"}</div>
        ${ov.best ? `<a href="#/trial/${esc(ov.best.id)}">${esc(ov.best.id)}</a><div class="muted">${fmtParams(ov.best.params)}</div>` : ""}</div>
      <div class="card"><div class="label">trials</div><div class="big" id="trial-count">${ov.trials}</div>
        ${progress(ov.finished, ov.max_trials)}<div class="barlabel">${ov.finished} finished of ${ov.max_trials ?? "∞"}</div>
        <div style="margin-top:6px">${states || '<span class="muted">none yet</span>'}</div></div>
      <div class="card"><div class="label">time</div><div class="big">${dur(ov.elapsed)}</div>
        ${progress(ov.elapsed, ov.max_duration, "time")}<div class="barlabel">${ov.max_duration ? "of " + dur(ov.max_duration) : "no time limit"}
        · created ${when(ov.created)}</div></div>
      <div class="card"><div class="label">concurrency</div><div class="big">${c.RUNNING} / ${ov.concurrency}</div>
        <div class="label" style="margin-top:4px">boxes and GPUs in use</div>${hosts}</div>
      ${ov.message ? `<div class="card"><div class="label">message</div>${esc(ov.message)}</div>` : ""}`;
    loadPlotly();  // while the data comes
    await bestCharts(await api(TAB_DATA.overview(expId)));
  },

  async trials(expId, ov, table, page) {
    const tab = $("#tab");
    if (!$("#trial-table")) {
      tab.innerHTML = `<div class="panel"><div class="toolbar">
        <select id="f-state"><option value="">every state</option>${Object.keys(STATE_COLORS).filter((s) => s !== "RETRIED")
          .map((s) => `<option ${s === table.state ? "selected" : ""}>${s}</option>`).join("")}</select>
        ${REPORT ? "" : `<input type="text" id="f-filter" placeholder="filter, e.g.  lr < 0.01, optimizer = adam, metric:acc > 0.9">
        <button id="f-apply">Filter</button>`}
        <span class="muted" id="t-total"></span>
        <span class="actions"><button id="compare">Compare chosen</button><button id="highlight">Show chosen curves</button>
        <button id="clear">Clear choice</button></span></div>
        <div class="scroll"><table class="data" id="trial-table"></table></div>
        <div class="pager"><button id="prev">‹ prev</button><span id="t-page"></span><button id="next">next ›</button>
        <select id="t-limit">${[25, 50, 100, 200].map((n) => `<option ${n === table.limit ? "selected" : ""}>${n}</option>`).join("")}</select> per page</div></div>`;
      $("#f-state").onchange = () => { table.state = $("#f-state").value; table.offset = 0; page.refresh(); };
      if (!REPORT) {
        const apply = () => { table.filter = $("#f-filter").value; table.offset = 0; page.refresh(); };
        $("#f-apply").onclick = apply;
        $("#f-filter").onkeydown = (e) => { if (e.key === "Enter") apply(); };
      }
      $("#prev").onclick = () => { table.offset = Math.max(0, table.offset - table.limit); page.refresh(); };
      $("#next").onclick = () => { table.offset += table.limit; page.refresh(); };
      $("#t-limit").onchange = () => { table.limit = Number($("#t-limit").value); table.offset = 0; page.refresh(); };
      $("#compare").onclick = () => { const ids = [...chosen(expId)]; if (ids.length >= 2) location.hash = `#/compare/${ids.join(",")}`;
        else notice("choose two or more trials (the boxes on the left) to compare them"); };
      $("#highlight").onclick = () => { location.hash = `#/experiment/${expId}/curves`; };
      $("#clear").onclick = () => { setChosen(expId, new Set()); page.refresh(); };
    }
    let data;
    try {
      data = await tablePage(expId, table, ov);
      notice("");
    } catch (e) { notice(e.message, true); return; }
    const pick = chosen(expId);
    const cols = [["seq", "#"], ["state", "state"], ["value", "value"], ...data.metrics.map((m) => [`metric:${m}`, m]),
      ...data.params.map((p) => [`param:${p}`, p]), ["duration", "duration"], ["host", "box / GPU"], ["started", "started"]];
    const head = `<tr><th></th>${cols.map(([k, t]) => `<th class="sortable ${table.sort === k ? "sorted" : ""} ${table.sort === k && table.desc ? "desc" : ""}"
      data-sort="${esc(k)}">${esc(t)}</th>`).join("")}<th>exit</th></tr>`;
    const body = data.rows.map((r) => `<tr class="link" data-id="${esc(r.id)}">
      <td><input type="checkbox" class="choose" data-id="${esc(r.id)}" ${pick.has(r.id) ? "checked" : ""}></td>
      <td><a href="#/trial/${esc(r.id)}">${r.seq}</a></td><td>${badge(r.state)}</td><td class="num">${num(r.value)}</td>
      ${data.metrics.map((m) => `<td class="num">${num(r.metrics[m])}</td>`).join("")}
      ${data.params.map((p) => `<td class="num">${num(r.params[p])}</td>`).join("")}
      <td>${dur(r.duration)}</td><td>${esc(r.host || "–")}${r.gpus && r.gpus.length ? " / GPU " + r.gpus.join(",") : ""}</td>
      <td>${when(r.started)}</td><td class="muted">${esc(r.exit_reason || "")}</td></tr>`).join("");
    $("#trial-table").innerHTML = `<thead>${head}</thead><tbody>${body || `<tr><td colspan="${cols.length + 2}" class="muted">no trials match</td></tr>`}</tbody>`;
    $("#t-total").textContent = `${data.total} trial${data.total === 1 ? "" : "s"}`;
    $("#t-page").textContent = data.total ? `${table.offset + 1}–${Math.min(data.total, table.offset + data.rows.length)} of ${data.total}` : "";
    $("#prev").disabled = table.offset === 0;
    $("#next").disabled = table.offset + table.limit >= data.total;
    for (const th of document.querySelectorAll("#trial-table th[data-sort]")) {
      th.onclick = () => {
        const k = th.dataset.sort;
        table.desc = table.sort === k ? !table.desc : (k === "value" && ov.optimize_mode === "maximize");
        table.sort = k; table.offset = 0; page.refresh();
      };
    }
    for (const box of document.querySelectorAll("#trial-table input.choose")) {
      box.onclick = (e) => { e.stopPropagation(); const s = chosen(expId);
        if (box.checked) s.add(box.dataset.id); else s.delete(box.dataset.id); setChosen(expId, s); };
    }
    for (const tr of document.querySelectorAll("#trial-table tr[data-id]")) {
      tr.onclick = (e) => { if (e.target.tagName !== "INPUT") location.hash = `#/trial/${tr.dataset.id}`; };
    }
  },

  async curves(expId) {
    if (!$("#chart-curves")) {
      $("#tab").innerHTML = `<div class="panel"><div class="muted" id="curves-chosen"></div>
        <div id="chart-curves" class="chart tall"></div><div class="muted note" id="note-curves" hidden></div></div>`;
    }
    loadPlotly();
    const ids = [...chosen(expId)];
    const data = await api(TAB_DATA.curves(expId));
    const traces = [];
    const band = data.band, groups = data.lines;
    if (band && band.step.length) {
      traces.push({ type: "scatter", mode: "lines", x: band.step, y: band.high, line: { width: 0 }, hoverinfo: "skip",
        showlegend: false, name: "90 %" });
      traces.push({ type: "scatter", mode: "lines", x: band.step, y: band.low, fill: "tonexty", fillcolor: "rgba(37,99,235,0.15)",
        line: { width: 0 }, name: "10–90 % of trials", hoverinfo: "skip" });
      traces.push({ type: "scatter", mode: "lines", x: band.step, y: band.mid, name: "median of trials", customdata: band.n,
        line: { color: "rgba(30,58,138,0.8)", width: 2, dash: "dash" },
        hovertemplate: "step %{x}: median %{y} of %{customdata} trials<extra></extra>" });
    }
    if (groups.other) traces.push({ type: "scatter", mode: "lines", name: band ? "best and running trials" : "trials",
      x: groups.other.x, y: groups.other.y, text: groups.other.id, line: { color: "rgba(37,99,235,0.45)", width: 1 },
      hovertemplate: "%{text}<br>step %{x}: %{y}<extra></extra>" });
    if (groups.EARLY_STOPPED) traces.push({ type: "scatter", mode: "lines", name: "early stopped", x: groups.EARLY_STOPPED.x,
      y: groups.EARLY_STOPPED.y, text: groups.EARLY_STOPPED.id, line: { color: "rgba(217,119,6,0.6)", width: 1, dash: "dot" },
      hovertemplate: "%{text} (early stopped)<br>step %{x}: %{y}<extra></extra>" });
    const ends = data.early_stopped_ends;
    if (ends.x.length) traces.push({ type: "scatter", mode: "markers", name: "stopped here", x: ends.x, y: ends.y, text: ends.id,
      marker: { symbol: "x", color: "#d97706", size: 8 }, hovertemplate: "%{text} stopped at step %{x}<extra></extra>" });
    const palette = ["#dc2626", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#ea580c"];
    ids.filter((id) => groups[id]).forEach((id, i) => traces.push({ type: "scatter", mode: "lines+markers", name: id,
      x: groups[id].x, y: groups[id].y, line: { color: palette[i % palette.length], width: 3 } }));
    const layout = { title: { text: "Intermediate results of every trial" }, xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "intermediate result" } } };
    const stops = data.stopped_at;
    if (band && stops.step.length) {
      traces.push({ type: "bar", x: stops.step, y: stops.n, yaxis: "y2", name: "early stopped at this step",
        marker: { color: "rgba(217,119,6,0.35)" }, hovertemplate: "%{y} trials stopped at step %{x}<extra></extra>" });
      layout.yaxis2 = { overlaying: "y", side: "right", range: [0, 4 * Math.max(...stops.n)], showgrid: false,
        title: { text: "trials stopped" } };
    }
    plot("chart-curves", traces, layout);
    note("note-curves", data.note);
    $("#curves-chosen").textContent = ids.length ? `highlighted: ${ids.join(", ")}` : "choose trials in the Trials tab to highlight them";
  },

  async params(expId) {
    if (!$("#chart-parcoords")) {
      $("#tab").innerHTML = `<div class="panel"><div id="chart-parcoords" class="chart tall"></div></div>
        <div class="muted note" id="note-params" hidden></div>
        <div class="panel"><div id="chart-params" class="chart"></div></div>`;
    }
    loadPlotly();
    const data = await api(TAB_DATA.params(expId));
    const names = data.names, lines = data.lines, sample = data.sample;
    const scale = { colorscale: "Viridis", reversescale: data.optimize_mode === "minimize" };
    const title = sample ? `Parameters of ${lines.id.length} of ${data.total.toLocaleString("en")} trials with a value (the `
      + `${sample.best} best, every ${sample.every}th of the others), coloured by value` : "Parameters of the trials with a value, coloured by value";
    // one chart drawn after the other: the first shows without waiting for the second
    if (webglIsSoftware()) await parallelLines("chart-parcoords", data, scale, title);
    else {
      const dims = names.map((n) => dimension(n, lines.params[n], data.categories[n]));
      dims.push({ label: "value", values: lines.value });
      await plot("chart-parcoords", [{ type: "parcoords", dimensions: dims, line: Object.assign({ showscale: true,
        colorbar: { title: { text: "value" } }, color: lines.value }, scale) }],
      { title: { text: title }, margin: { l: 70, r: 70, t: 80, b: 30 } });
    }
    note("note-params", data.note);
    // value against each parameter: one figure, a subplot per parameter sharing the value axis
    const cols = Math.min(4, names.length), rows = Math.ceil(names.length / cols);
    const layout = { title: { text: "Value against each parameter" }, showlegend: false, margin: { l: 60, r: 20, t: 60, b: 40 },
      grid: { rows, columns: cols, pattern: "independent", ygap: 0.35, xgap: 0.08 } };
    $("#chart-params").style.height = `${120 + 240 * rows}px`;
    // the best as dots of one colour over the density (their value is the y axis): no colour scale to compute
    const marked = lines.id.slice(0, data.marked), values = lines.value.slice(0, data.marked);
    const traces = [];
    names.forEach((n, i) => {
      const axis = i ? String(i + 1) : "";
      const kind = data.kinds[n];
      layout[`xaxis${axis}`] = { title: { text: n }, type: kind === "category" ? "category" : kind === "log" ? "log" : "-",
        categoryorder: "array", categoryarray: data.categories[n] };
      layout[`yaxis${axis}`] = { title: { text: i % cols ? "" : "value" } };
      if (data.density) traces.push(densityTrace(data.density[n], { xaxis: `x${axis}`, yaxis: `y${axis}` }));
      traces.push({ type: "scatter", mode: "markers", xaxis: `x${axis}`, yaxis: `y${axis}`, name: n,
        x: lines.params[n].slice(0, data.marked), y: values, text: marked,
        marker: { size: 5, opacity: 0.7, color: "#dc2626" },
        hovertemplate: `%{text}<br>${esc(n)}=%{x}<br>value %{y}<extra></extra>` });
    });
    plot("chart-params", traces, layout);
  },

  async gpus(expId) {
    if (!$("#chart-timeline")) {
      $("#tab").innerHTML = `<div class="panel"><div id="chart-timeline" class="chart tall"></div></div>
        <div class="panel"><div id="chart-durations" class="chart"></div><div class="muted note" id="note-durations" hidden></div></div>`;
    }
    loadPlotly();
    const tl = await api(TAB_DATA.gpus(expId));
    // a grid of lanes x time columns, each cell coloured by the state of the attempt holding the slot then
    const n = tl.states.length;
    const colorscale = tl.states.flatMap((s, i) => [[i / n, STATE_COLORS[s] || "#6b7280"], [(i + 1) / n, STATE_COLORS[s] || "#6b7280"]]);
    const times = tl.z.length ? tl.z[0].map((_, c) => date(tl.start + (c + 0.5) * tl.width)) : [];
    // hover names the lane and the trial (its state is the colour): numbers, not a string per cell, to draw fast
    const traces = [{ type: "heatmap", x: times, y: tl.lanes, z: tl.z, customdata: tl.seq, zmin: -0.5, zmax: n - 0.5,
      colorscale: n ? colorscale : undefined, showscale: false, hoverongaps: false, ygap: 1,
      hovertemplate: "%{y}: trial #%{customdata}<br>%{x}<extra></extra>", showlegend: false },
    ...tl.states.map((s) => ({ type: "scatter", mode: "markers", x: [null], y: [null], name: s,
      marker: { symbol: "square", size: 10, color: STATE_COLORS[s] || "#6b7280" } }))];
    $("#chart-timeline").style.height = `${Math.max(300, 140 + tl.lanes.length * 22)}px`;
    // drawn before the durations are built: it shows first
    await plot("chart-timeline", traces, { title: { text: `GPU slots: which box and GPU ran which trial when (${tl.attempts} attempts)` },
      xaxis: { type: "date" }, yaxis: { type: "category", automargin: true, categoryorder: "category descending" },
      margin: { l: 140, r: 20, t: 40, b: 40 } });
    const d = tl.durations, m = d.marks;
    const few = !d.density;
    const marks = { type: few && m.seq.length <= 300 ? "bar" : "scatter", mode: "markers", x: m.seq, y: m.seconds,
      text: m.id.map((id, i) => `${id} ${m.state[i]}`), textposition: "none",
      marker: { color: m.state.map((s) => STATE_COLORS[s] || "#6b7280"), size: 5 }, hovertemplate: "%{text}<br>%{y:.1f} s<extra></extra>" };
    plot("chart-durations", d.density ? [densityTrace(d.density), marks] : [marks],
      { title: { text: "Trial durations" }, xaxis: { title: { text: "trial #" } }, yaxis: { title: { text: "seconds" } }, showlegend: false });
    note("note-durations", d.note);
  },
};

function dimension(name, values, labels) {
  if (!labels) return { label: name, values };
  return { label: name, values: values.map((v) => labels.indexOf(v)), tickvals: labels.map((_, i) => i), ticktext: labels };
}

// parallel coordinates as SVG: one polyline per trial across the axes, grouped into a few colours by value
// (one path each), the best trial bold on top; each colour painted beside the value axis over the values it
// stands for (a colour bar would cost a third of the chart's drawing)
function parallelLines(id, data, scale, title) {
  const names = data.names, lines = data.lines, k = names.length;
  const fmt = (v) => Number(Number(v).toPrecision(3)).toString();
  const axes = [...names.map((n) => [n, lines.params[n], data.kinds[n]]), ["value", lines.value, "number"]].map(([n, vals, kind]) => {
    if (kind === "category") {
      const labels = data.categories[n];
      const pos = (v) => (labels.length > 1 ? labels.indexOf(v) / (labels.length - 1) : 0.5);
      return { name: n, pos, ticks: labels.map((l) => [pos(l), l]) };
    }
    const f = kind === "log" ? Math.log10 : (v) => v;
    let lo = Infinity, hi = -Infinity;
    for (const v of vals) { const x = f(v); if (x < lo) lo = x; if (x > hi) hi = x; }
    const span = hi - lo || 1;
    return { name: n, pos: (v) => (f(v) - lo) / span, ticks: [[0, fmt(kind === "log" ? 10 ** lo : lo)], [1, fmt(kind === "log" ? 10 ** hi : hi)]] };
  });
  const vmin = Math.min(...lines.value), vmax = Math.max(...lines.value), bins = 8;
  const viridis = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];
  const colors = scale.reversescale ? viridis.slice().reverse() : viridis;
  const groups = colors.map(() => ({ x: [], y: [] }));
  const line = (j) => axes.map((a, i) => [i, a.pos(i < k ? lines.params[a.name][j] : lines.value[j])]);
  for (let j = lines.id.length - 1; j >= 1; j--) {  // worst first, so the better lines end up on top within a colour
    const bin = Math.min(bins - 1, Math.floor(((lines.value[j] - vmin) / (vmax - vmin || 1)) * bins));
    for (const [x, y] of line(j)) { groups[bin].x.push(x); groups[bin].y.push(y); }
    groups[bin].x.push(null); groups[bin].y.push(null);
  }
  const traces = groups.map((g, i) => ({ type: "scatter", mode: "lines", x: g.x, y: g.y, hoverinfo: "skip", showlegend: false,
    line: { color: colors[i], width: 1 }, opacity: 0.55 }));
  const order = scale.reversescale ? traces.reverse() : traces;  // the best colour drawn last
  if (lines.id.length) {
    const top = line(0);
    order.push({ type: "scatter", mode: "lines+markers", name: `best: ${lines.id[0]}`, x: top.map((p) => p[0]), y: top.map((p) => p[1]),
      text: axes.map((a, i) => `${a.name}=${i < k ? lines.params[a.name][0] : lines.value[0]}`), line: { color: "#dc2626", width: 3 },
      hovertemplate: `${esc(lines.id[0])}<br>%{text}<extra></extra>` });
  }
  const shapes = axes.map((_, i) => ({ type: "line", x0: i, x1: i, y0: 0, y1: 1, line: { color: "#6b7280", width: 1 } }));
  // the value axis runs from vmin to vmax, as the bins do: bin i's colour spans [i / bins, (i + 1) / bins] of it
  colors.forEach((color, i) => shapes.push({ type: "rect", x0: k + 0.03, x1: k + 0.1, y0: i / bins, y1: (i + 1) / bins,
    fillcolor: color, line: { width: 0 } }));
  // the axes' names and ticks as two text traces, not an annotation each (each annotation is measured and laid
  // out on its own: a third of the chart's drawing time)
  const ticks = axes.flatMap((a, i) => a.ticks.map(([y, t]) => [i, y, esc(t)]));
  order.push({ type: "scatter", mode: "text", x: axes.map((_, i) => i), y: axes.map(() => 1.08), text: axes.map((a) => `<b>${esc(a.name)}</b>`),
    textfont: { size: 12 }, hoverinfo: "skip", showlegend: false, cliponaxis: false },
  { type: "scatter", mode: "text", x: ticks.map((t) => t[0]), y: ticks.map((t) => t[1]), text: ticks.map((t) => t[2]), textposition: "middle left",
    textfont: { size: 10 }, hoverinfo: "skip", showlegend: false, cliponaxis: false });
  return plot(id, order, { title: { text: title }, shapes, showlegend: true, legend: { orientation: "h", y: -0.05 },
    xaxis: { visible: false, range: [-0.4, axes.length - 0.6] }, yaxis: { visible: false, range: [-0.05, 1.14] },
    margin: { l: 40, r: 40, t: 60, b: 30 } });
}

async function bestCharts(data) {
  const traces = [];
  if (data.density) traces.push(densityTrace(data.density));
  const m = data.marks;
  traces.push({ type: "scatter", mode: "markers", name: data.density ? `the ${m.seq.length} best` : "trial value",
    x: m.seq, y: m.value, text: m.id, marker: { color: "rgba(37,99,235,0.5)", size: 6 }, hovertemplate: "%{text}: %{y}<extra></extra>" });
  traces.push({ type: "scatter", mode: "lines", name: "best so far", x: data.by_seq.x, y: data.by_seq.y,
    line: { shape: "hv", color: "#dc2626", width: 2 } });
  const at = m.id.indexOf(data.best);
  if (at >= 0) traces.push({ type: "scatter", mode: "markers", name: `best: ${data.best}`, x: [m.seq[at]], y: [m.value[at]],
    text: [data.best], marker: { symbol: "star", size: 14, color: "#dc2626" }, hovertemplate: "best: %{text}: %{y}<extra></extra>" });
  await plot("chart-best-seq", traces, { title: { text: "Best value so far, by trial number" }, xaxis: { title: { text: "trial #" } } });
  plot("chart-best-time", [{ type: "scatter", mode: "lines+markers", name: "best so far", x: data.by_time.x.map(date), y: data.by_time.y,
    line: { shape: "hv", color: "#dc2626", width: 2 }, marker: { size: 4 } }],
  { title: { text: "Best value so far, over time" }, xaxis: { type: "date" } });
  note("note-progress", data.note);
}

async function tablePage(expId, t, ov) {
  if (!REPORT) {
    const q = new URLSearchParams({ sort: t.sort, desc: t.desc ? "1" : "0", offset: t.offset, limit: t.limit });
    if (t.state) q.append("state", t.state);
    for (const f of t.filter.split(",")) if (f.trim()) q.append("filter", f.trim());
    return api(`/api/experiments/${expId}/trials?${q}`);
  }
  // a report holds every trial: sort and page here
  const all = REPORT.data[`/api/experiments/${expId}/trials`];
  const key = (r) => { const [kind, name] = t.sort.split(":"); return kind === "param" ? r.params[name] :
    kind === "metric" ? r.metrics[name] : r[t.sort]; };
  const rows = all.rows.filter((r) => !t.state || r.state === t.state).slice().sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return a.seq - b.seq;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (t.desc ? -1 : 1);
  });
  return { total: rows.length, rows: rows.slice(t.offset, t.offset + t.limit), params: all.params, metrics: all.metrics };
}

// ---- one trial --------------------------------------------------------------------------------------
function trialPage(trialId) {
  let shell = false, logName = "stdout", logOffset = -1;
  return {
    async refresh() {
      const t = await api(`/api/trials/${trialId}`);
      crumbs([["experiments", "#/"], [t.experiment, `#/experiment/${t.experiment}`], [`trial ${t.seq}`]]);
      if (!shell) {
        $("#view").innerHTML = `<div class="titlebar"><h1>Trial ${esc(t.id)} <span id="t-state"></span></h1><span class="actions">
          ${info.read_only || REPORT ? "" : '<button class="danger" id="kill">Kill trial</button>'}</span></div>
          <div class="sub" id="t-sub"></div>
          <div class="grid2"><div class="panel"><h2>Parameters</h2><div class="kv" id="t-params"></div></div>
          <div class="panel"><h2>Final result</h2><div class="kv" id="t-final"></div></div></div>
          <div class="panel"><h2>Attempts</h2><div class="scroll"><table class="data" id="t-attempts"></table></div></div>
          <div class="panel"><div id="chart-trial" class="chart"></div></div>
          <div class="panel"><h2>Log <select id="log-name"><option>stdout</option><option>stderr</option><option>hpoqueue</option></select>
          <span class="muted" id="log-path"></span></h2><pre class="log" id="log"></pre></div>`;
        $("#log-name").onchange = () => { logName = $("#log-name").value; logOffset = -1; $("#log").textContent = ""; this.refresh(); };
        const kill = $("#kill");
        if (kill) kill.onclick = async () => {
          if (!confirm(`Kill trial ${trialId}?`)) return;
          try { notice(await act(`/api/kill/${trialId}`)); } catch (e) { notice(e.message, true); }
          this.refresh();
        };
        shell = true;
      }
      $("#t-state").innerHTML = badge(t.state);
      const kill = $("#kill");
      if (kill) kill.disabled = !["RUNNING", "WAITING"].includes(t.state);
      $("#t-sub").innerHTML = `value <b id="t-value">${num(t.value)}</b> · attempt ${t.attempt} · created ${when(t.created)}
        · ran ${dur(t.started ? (t.ended || Date.now() / 1000) - t.started : null)}`;
      $("#t-params").innerHTML = Object.entries(t.params).map(([k, v]) => `<div class="k">${esc(k)}</div><div>${esc(JSON.stringify(v))}</div>`).join("");
      const final = t.final_data && typeof t.final_data === "object" ? t.final_data : { default: t.value };
      $("#t-final").innerHTML = Object.entries(final).map(([k, v]) => `<div class="k">${esc(k)}</div><div>${num(v)}</div>`).join("");
      $("#t-attempts").innerHTML = `<thead><tr><th>attempt</th><th>box</th><th>GPU</th><th>pid</th><th>started</th><th>ended</th>
        <th>exit code</th><th>exit reason</th></tr></thead><tbody>${t.attempts.map((a) => `<tr><td>${a.attempt}</td>
        <td>${esc(a.host || "–")}</td><td>${a.gpus && a.gpus.length ? a.gpus.join(",") : "cpu"}</td><td>${esc(a.pid ?? "–")}</td>
        <td>${when(a.started)}</td><td>${when(a.ended)}</td><td>${esc(a.exit_code ?? "–")}</td><td>${esc(a.exit_reason || "")}</td></tr>`).join("")}</tbody>`;
      const inter = t.metrics.filter((m) => m.kind === "intermediate");
      const attempts = [...new Set(inter.map((m) => m.attempt))];
      plot("chart-trial", attempts.map((a) => ({ type: "scatter", mode: "lines+markers", name: `attempt ${a}`,
        x: inter.filter((m) => m.attempt === a).map((m) => m.step), y: inter.filter((m) => m.attempt === a).map((m) => m.value) })),
      { title: { text: `Intermediate results (${inter.length})` }, xaxis: { title: { text: "step" } } });
      if (REPORT) return;
      const log = await api(`/api/trials/${trialId}/log?name=${logName}&offset=${logOffset}`);
      const pre = $("#log");
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      if (logOffset < 0) pre.textContent = log.text; else if (log.text) pre.textContent += log.text;
      if (!log.exists) pre.textContent = "(no output yet)";
      logOffset = log.exists ? log.offset : -1;
      $("#log-path").textContent = log.path + (log.active ? " · following" : "");
      if (atEnd || logOffset >= 0) pre.scrollTop = pre.scrollHeight;
    },
    live: true,
  };
}

// ---- compare ----------------------------------------------------------------------------------------
function comparePage(ids) {
  return {
    async refresh() {
      const trials = await Promise.all(ids.map((id) => api(`/api/trials/${id}`)));
      const exp = trials[0].experiment;
      crumbs([["experiments", "#/"], [exp, `#/experiment/${exp}/trials`], ["compare"]]);
      const params = [...new Set(trials.flatMap((t) => Object.keys(t.params)))];
      const metrics = [...new Set(trials.flatMap((t) => (t.final_data && typeof t.final_data === "object" ? Object.keys(t.final_data) : [])))];
      const row = (label, f) => `<tr><th>${esc(label)}</th>${trials.map((t) => `<td>${f(t)}</td>`).join("")}</tr>`;
      $("#view").innerHTML = `<h1>Compare ${trials.length} trials</h1><div class="panel scroll"><table class="data" id="compare-table">
        <thead><tr><th></th>${trials.map((t) => `<th><a href="#/trial/${esc(t.id)}">${esc(t.id)}</a></th>`).join("")}</tr></thead><tbody>
        ${row("state", (t) => badge(t.state))}${row("value", (t) => num(t.value))}
        ${row("duration", (t) => dur(t.started ? (t.ended || Date.now() / 1000) - t.started : null))}
        ${row("attempts", (t) => t.attempt)}
        ${params.map((p) => row(p, (t) => esc(JSON.stringify(t.params[p])))).join("")}
        ${metrics.map((m) => row(`metric ${m}`, (t) => num((t.final_data || {})[m]))).join("")}</tbody></table></div>
        <div class="panel"><div id="chart-compare" class="chart"></div></div>`;
      plot("chart-compare", trials.map((t) => {
        const inter = t.metrics.filter((m) => m.kind === "intermediate" && m.attempt === t.attempt);
        return { type: "scatter", mode: "lines+markers", name: t.id, x: inter.map((m) => m.step), y: inter.map((m) => m.value) };
      }), { title: { text: "Intermediate results" }, xaxis: { title: { text: "step" } } });
    },
  };
}

// ---- routing and polling ------------------------------------------------------------------------------
function route() {
  const parts = (location.hash.replace(/^#\/?/, "") || (info.default_experiment ? `experiment/${info.default_experiment}` : ""))
    .split("/").map(decodeURIComponent);
  notice("");
  $("#view").innerHTML = '<div class="muted">loading…</div>';
  if (parts[0] === "experiment" && parts[1]) current = experimentPage(parts[1], parts[2], parts[3]);
  else if (parts[0] === "trial" && parts[1]) current = trialPage(parts[1]);
  else if (parts[0] === "compare" && parts[1]) current = comparePage(parts[1].split(",").filter(Boolean));
  else current = experimentsPage();
  current.expId = parts[0] === "experiment" ? parts[1] : "";
  const charts = parts[0] === "experiment" ? parts[2] !== "trials" : parts[0] === "trial" || parts[0] === "compare";
  if (charts && parts[1]) loadPlotly().catch(() => {});  // at once, beside the page's data (errors: at the chart)
  tick();
}

// Each page remembers the version of the record it last showed, so a page opened while a poll was under way
// is still drawn (by a poll run again as soon as that one ends, not at the next interval)
let busy = false, again = false;
async function tick() {
  if (!current) return;
  if (busy) { again = true; return; }
  busy = true;
  const page = current;
  try {
    const v = REPORT ? "report" : (await api(`/api/version/${page.expId || ""}`)).version;
    if (page === current && (v !== page.shown || page.live)) {
      await page.refresh();
      page.shown = v;
      performance.mark("hpoq-shown");  // the page built (a list or table filled; charts are marked as drawn)
    }
    $("#live").className = REPORT ? "" : "on";
    $("#live").textContent = REPORT ? "report" : "live";
  } catch (e) {
    notice(e.message, true);
    $("#live").className = ""; $("#live").textContent = "offline?";
  } finally {
    busy = false;
    if (again) { again = false; tick(); }
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) {
    sessionStorage.setItem("hpoq-token", params.get("token"));
    history.replaceState(null, "", location.pathname + location.hash);  // out of the address bar and history
  }
  token = sessionStorage.getItem("hpoq-token");
  info = REPORT ? { read_only: true, flower: null, default_experiment: REPORT.experiment } : await api("/api/info");
  if (info.flower) { const f = $("#flower"); f.href = info.flower; f.hidden = false; }
  window.addEventListener("hashchange", route);
  route();
  if (!REPORT) setInterval(tick, POLL_MS);
}

start().catch((e) => notice(e.message, true));
