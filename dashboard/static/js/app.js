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
const feed = new FeedPanel((id) => controls.openToken(id));
let charts = makeCharts();
let view = emptyView();
let version = null;
let lastPush = 0;

// What the bench and the browser test read: pushes seen and the time spent drawing them.
window.tgStats = { pushes: 0, renderMs: 0, version: null };

function makeCharts() {
  return { cluster: clusterChart($("#cluster-chart")), pool: poolChart($("#pool-chart")),
    affinity: affinityChart($("#affinity-chart")) };
}

function render(touched) {
  const { panels: p, keyed: k, streams: s } = touched;
  panels.renderHeader(view);
  if (p.has("cluster") || p.has("gateway")) panels.renderCluster(view);
  if (p.has("pool")) panels.renderPool(view);
  if (p.has("sources")) panels.renderSources(view);
  if (p.has("tasks")) panels.renderTasks(view);
  if (k.has("nodes")) {
    nodes.render(view.keyed.nodes || {}, touched.nodes ?? null);
    affinityData(charts.affinity, affinityRows(view.keyed.nodes || {}));
  }
  if (k.has("functions")) panels.renderGuards(view, controls);
  if (k.has("quarantine")) panels.renderQuarantine(view, controls);
  if (s.has("series")) charts.cluster.set(clusterData(view.streams.series));
  if (s.has("pool_series")) charts.pool.set(poolData(view.streams.pool_series));
  if (s.has("feed")) feed.render(view.streams.feed);
  if (s.has("audit")) panels.renderAudit(view);
}

function timed(fn) {
  const started = performance.now();
  fn();
  window.tgStats.renderMs += performance.now() - started;
  window.tgStats.pushes += 1;
  window.tgStats.version = version;
  lastPush = Date.now();
  $("#live").textContent = "live";
  $("#live").className = "live on";
}

socket.on("full", (full) => timed(() => {
  view = { now: full.now, panels: full.panels, keyed: full.keyed, streams: full.streams };
  version = full.v;
  render({ ...everything(view), nodes: null });
}));

socket.on("patch", (patch) => {
  if (version === null ? patch.base !== 0 : patch.base !== version) {
    if (version !== null) socket.emit("resync", { csrf });
    return;
  }
  timed(() => {
    const nodeSet = patch.keyed && patch.keyed.nodes;
    const changed = nodeSet ? new Set([...Object.keys(nodeSet.set || {})]) : new Set();
    const touched = applyPatch(view, patch);
    version = patch.v;
    touched.nodes = changed;
    render(touched);
  });
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
    render({ ...everything(view), nodes: null });
  });
}

wire();
