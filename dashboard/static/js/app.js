// The live page: one Socket.IO connection (WebSocket only: the page never polls), the view
// kept by full + patch messages, and each panel redrawn only when its part changed.

/* global io */

import { $ } from "./dom.js";
import { affinityChart, affinityData, clusterChart, clusterData, poolChart, poolData }
  from "./charts.js";
import { Controls, showLaunched, toast } from "./controls.js";
import { FeedPanel } from "./feed.js";
import { NodesPanel, affinityRows } from "./nodes.js";
import * as panels from "./panels.js";
import { applyPatch, emptyView, everything } from "./view.js";

const csrf = document.querySelector('meta[name="tg-csrf"]').content;
const socket = io({ transports: ["websocket"], auth: { csrf } });
const controls = new Controls(socket);
const nodes = new NodesPanel(controls);
const feed = new FeedPanel((id, item) => controls.openToken(id, item));
let charts = makeCharts();
let view = emptyView();
let version = null;
let lastPush = 0;
let pending = null;  // what changed since the last drawing: drawn once per frame

// What the bench and the browser test read: pushes received, drawings and their time.
window.tgStats = { pushes: 0, draws: 0, renderMs: 0, version: null, parts: {} };

function makeCharts() {
  return { cluster: clusterChart($("#cluster-chart")), pool: poolChart($("#pool-chart")),
    affinity: affinityChart($("#affinity-chart")) };
}

// Draw each part that changed, timing it (tgStats.parts: ms per part, summed).
function part(name, fn) {
  const started = performance.now();
  fn();
  const parts = window.tgStats.parts;
  parts[name] = (parts[name] || 0) + performance.now() - started;
}

function render(touched) {
  const { panels: p, keyed: k, streams: s } = touched;
  part("panels", () => {
    panels.renderHeader(view);
    if (p.has("cluster") || p.has("gateway")) panels.renderCluster(view);
    if (p.has("pool")) panels.renderPool(view);
    if (p.has("sources")) panels.renderSources(view);
    if (p.has("tasks")) panels.renderTasks(view);
    if (p.has("guard_house")) panels.renderGuardHouse(view);
  });
  if (k.has("nodes")) {
    part("nodes", () => nodes.render(view.keyed.nodes || {}, touched.nodes ?? null));
    part("affinity", () => affinityData(charts.affinity,
      affinityRows(view.keyed.nodes || {})));
  }
  if (k.has("functions")) part("guards", () => panels.renderGuards(view, controls));
  if (k.has("quarantine")) part("quarantine", () => panels.renderQuarantine(view, controls));
  if (s.has("series")) part("charts", () => charts.cluster.set(clusterData(view.streams.series)));
  if (s.has("pool_series")) {
    part("charts", () => charts.pool.set(poolData(view.streams.pool_series)));
  }
  if (s.has("feed")) part("feed", () => feed.render(view.streams.feed));
  if (s.has("audit")) part("audit", () => panels.renderAudit(view));
}

// Patches change the view at once; the page is drawn at the next animation frame, once for
// all that changed since (a hidden tab draws nothing until it is shown again).
function schedule(touched) {
  if (pending === null) {
    pending = touched;
    requestAnimationFrame(draw);
    return;
  }
  for (const part of ["panels", "keyed", "streams"]) {
    for (const name of touched[part]) pending[part].add(name);
  }
  if (pending.nodes !== null) {
    if (touched.nodes === null) pending.nodes = null;
    else for (const name of touched.nodes) pending.nodes.add(name);
  }
}

function draw() {
  const touched = pending;
  pending = null;
  const started = performance.now();
  render(touched);
  window.tgStats.renderMs += performance.now() - started;
  window.tgStats.draws += 1;
}

function received() {
  window.tgStats.pushes += 1;
  window.tgStats.version = version;
  lastPush = Date.now();
  $("#live").textContent = "live";
  $("#live").className = "live on";
}

socket.on("full", (full) => {
  view = { now: full.now, panels: full.panels, keyed: full.keyed, streams: full.streams };
  version = full.v;
  received();
  schedule({ ...everything(view), nodes: null });
});

socket.on("patch", (patch) => {
  if (version === null ? patch.base !== 0 : patch.base !== version) {
    if (version !== null) socket.emit("resync", { csrf });
    return;
  }
  const nodeSet = patch.keyed && patch.keyed.nodes;
  const touched = applyPatch(view, patch);
  touched.nodes = new Set(nodeSet ? Object.keys(nodeSet.set || {}) : []);
  version = patch.v;
  received();
  schedule(touched);
});

socket.on("launched", showLaunched);
socket.on("expired", () => window.location.assign("/login"));
socket.on("connect", () => { $("#live").textContent = "live"; });
socket.on("disconnect", () => {
  $("#live").textContent = "reconnecting…";
  $("#live").className = "live off";
  version = null;
});
socket.on("connect_error", () => {
  if (!socket.active) window.location.assign("/login");  // refused: no session
});

setInterval(() => {
  if (lastPush && Date.now() - lastPush > 3500) {
    $("#live").textContent = "stale";
    $("#live").className = "live off";
  }
}, 1000);

function wire() {
  $("#drain-cluster").addEventListener("click", () => controls.drain(""));
  $("#resume-cluster").addEventListener("click", () => controls.resume(""));
  $("#open-token").addEventListener("click", () => {
    const id = $("#token-id").value.trim();
    if (id) controls.openToken(id);
  });
  $("#kill-token").addEventListener("click", () => {
    const id = $("#token-id").value.trim();
    if (id) controls.kill(id);
    else toast("type a token id first", false);
  });
  $("#launch").addEventListener("click", () => {
    const task = $("#launch-task").value.trim();
    if (!task) { toast("type a registered task name first", false); return; }
    controls.launch(task, $("#launch-args").value.trim(), $("#launch-kwargs").value.trim());
  });
  $("#theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("tg-theme", next); } catch (e) { /* private mode */ }
    Object.values(charts).forEach((chart) => chart.destroy());
    charts = makeCharts();
    schedule({ ...everything(view), nodes: null });
  });
}

wire();
