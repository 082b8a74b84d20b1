// Rendering of the panels from the view. Each function renders one panel from plain data.

import { $, bytes, clock, duration, el, fill, num, stateClass, unavailable } from "./dom.js";

function fact(label, value, id) {
  return el("div", { class: "fact" }, el("span", { class: "label", text: label }),
    el("span", { class: "value", id, text: value }));
}

export function renderHeader(view) {
  const cluster = view.panels.cluster || {};
  const gateway = view.panels.gateway || {};
  const badge = $("#cluster-badge");
  badge.className = stateClass(gateway.ok === false ? "unreachable" : cluster.state);
  badge.textContent = gateway.ok === false ? "GATEWAY UNREACHABLE" : (cluster.state || "…");
  $("#gateway").textContent = `gateway ${gateway.address || ""}`;
}

function redisText(redis) {
  if (!redis) return "–";
  if (redis.ok === true) return `ok, ${bytes(redis.memory)}`;
  return redis.note || "unreachable";
}

export function renderCluster(view) {
  const c = view.panels.cluster || {};
  const gateway = view.panels.gateway || {};
  unavailable($("#cluster-unavailable"), gateway.ok === false ? gateway.error : "");
  const states = Object.entries(c.node_states || {}).map(([s, n]) => `${n} ${s}`).join(", ");
  fill($("#cluster-facts"),
    fact("state", c.state ? c.state + (c.reason ? ` (${c.reason})` : "") : "–", "cluster-state"),
    fact("draining since", c.drain_since ? clock(c.drain_since) : "–"),
    fact("uptime", c.started ? duration(view.now - c.started) : "–"),
    fact("in flight", num(c.inflight), "cluster-inflight"),
    fact("executing", num(c.executing), "cluster-executing"),
    fact("waiting", num(c.waiting), "cluster-waiting"),
    fact("held by drain", num(c.held), "cluster-held"),
    fact("Redis", redisText(c.redis), "cluster-redis"),
    fact("agents", c.agents === undefined ? "–" : `${c.agents}${states ? ` (${states})` : ""}`),
    fact("workers", num(c.workers), "cluster-workers"),
    fact("physical cores", c.physical_cores === undefined ? "–"
      : `${num(c.physical_cores)} on ${num(c.hosts)} host${c.hosts === 1 ? "" : "s"}`,
    "cluster-cores"),
    fact("queue capacity", c.capacity === undefined ? "–" : `${num(c.capacity)} tokens`,
      "cluster-capacity"));
}

export function renderPool(view) {
  const p = view.panels.pool || {};
  const w = p.waiting || {};
  fill($("#pool-facts"),
    fact("created", num(p.created), "pool-created"),
    fact("waiting", `${num(w.heavy)} / ${num(w.medium)} / ${num(w.light)}`, "pool-waiting"),
    fact("held", num(p.held), "pool-held"),
    fact("admitted", num(p.admitted), "pool-admitted"),
    fact("executing", num(p.executing), "pool-executing"),
    fact("completed", num(p.completed), "pool-completed"),
    fact("failed", num(p.failed), "pool-failed"),
    fact("killed", num(p.killed), "pool-killed"),
    fact("requeued", num(p.requeued), "pool-requeued"),
    fact("lost", num(p.lost), "pool-lost"));
}

export function renderSources(view) {
  const sources = view.panels.sources || {};
  unavailable($("#series-unavailable"), sources.series);
  $("#cluster-chart").hidden = Boolean(sources.series) && !(view.streams.series || []).length;
  unavailable($("#guards-unavailable"), sources.guards);
  unavailable($("#quarantine-unavailable"), sources.guards);
  unavailable($("#audit-unavailable"), sources.audit);
}

export function renderGuardHouse(view) {
  const h = view.panels.guard_house || {};
  const rate = h.success_rate === null || h.success_rate === undefined ? "–"
    : `${h.success_rate}%`;
  $("#guard-house-summary").textContent = h.mode === undefined ? "" : [
    h.mode === "auto-block"
      ? `auto-block at ${h.threshold_percent}% failures after ${num(h.min_attempts)} attempts`
      : "passive (observation only)",
    `${num(h.methods_tracked)} functions`, `${num(h.executions)} executions`,
    `${rate} success`, `${h.blocked.length} blocked`, `${num(h.refusals)} refused`,
  ].join(" · ");
}

export function renderGuards(view, actions) {
  const rows = Object.entries(view.keyed.functions || {}).sort(([a], [b]) => a.localeCompare(b));
  fill($("#guards"), rows.map(([name, f]) => el("tr", { dataset: { function: name } },
    el("td", { class: "mono", text: name }),
    el("td", { text: num(f.attempts) }),
    el("td", { text: f.success_rate === null ? "–" : `${f.success_rate}%` }),
    el("td", { text: `${f.mean_ms} ms` }),
    el("td", {}, el("span", { class: `health health-${f.health}`, text: f.health })),
    el("td", { class: "bad", text: f.blocked ? "cluster" : (f.blocked_on || []).join(", ") }),
    el("td", {}, f.blocked || (f.blocked_on && f.blocked_on.length)
      ? el("button", { type: "button", class: "reenable", text: "Re-enable",
        onclick: () => actions.reenable(name) }) : null))));
}

export function renderQuarantine(view, actions) {
  const rows = Object.entries(view.keyed.quarantine || {}).sort(([, a], [, b]) => b.at - a.at);
  fill($("#quarantine"), rows.map(([id, q]) => el("tr", { dataset: { id } },
    el("td", { class: "mono", text: q.task, title: id }),
    el("td", { text: q.node }),
    el("td", { text: `${q.deviation}%` }),
    el("td", { text: q.reason }),
    el("td", { class: "mono small",
      text: q.args === null ? "hidden (--show-payloads)" : q.args }),
    el("td", {},
      q.replayable ? el("button", { type: "button", class: "replay", text: "Replay",
        onclick: () => actions.quarantine(id, q.node, "replay") }) : null,
      el("button", { type: "button", class: "drop", text: "Drop",
        onclick: () => actions.quarantine(id, q.node, "drop") })))));
}

export function renderAudit(view) {
  const entries = [...(view.streams.audit || [])].reverse();
  fill($("#audit"), entries.map((e) => el("tr", { class: e.ok ? "" : "bad" },
    el("td", { text: clock(e.at) }),
    el("td", { class: "mono small", text: e.actor }),
    el("td", { text: e.action }),
    el("td", { class: "mono small", text: e.target }),
    el("td", { text: `${e.ok ? "ok" : "refused"}${e.result ? `: ${e.result}` : ""}` }))));
}

export function renderTasks(view) {
  fill($("#task-names"), (view.panels.tasks || []).map((t) => el("option", { value: t.name },
    `${t.weight}`)));
}

function seconds(value) {
  return value === null || value === undefined ? "–" : `${value} s`;
}

// Where the token's attempt ran, in the seed's history fields (and as that record's JSON).
function ranOn(record) {
  if (!record) return [];
  const outcome = record.success === null ? "–" : String(record.success);
  return [
    el("h3", { text: "Execution record" }),
    el("div", { class: "facts" },
      fact("node", record.node || "–", "token-node"),
      fact("core_id", record.core_id === null ? "–" : String(record.core_id), "token-core"),
      fact("worker_id", record.worker_id || "–", "token-worker"),
      fact("execution_time", seconds(record.execution_time), "token-execution-time"),
      fact("attempt", num(record.attempt), "token-attempt"),
      fact("success", outcome, "token-success")),
    el("pre", { class: "traceback mono", id: "token-record",
      text: JSON.stringify(record, null, 2) }),
  ];
}

export function renderTokenDetail(token) {
  const times = (token.times || []).map((t) => el("li", {},
    el("span", { class: stateClass(t.state), text: t.state }), ` ${clock(t.at)}`,
    el("span", { class: "muted", text: ` (${t.at.toFixed(3)})` })));
  const args = token.args_summary === null ? "hidden (start the dashboard with --show-payloads)"
    : (token.args_summary || "–");
  return [
    el("div", { class: "facts" },
      fact("state", token.state, "token-state"), fact("task", token.task || token.operation_type),
      fact("weight", token.weight || "–"),
      fact("arguments", `${args} (${num(token.args_bytes)} B)`)),
    ...ranOn(token.record),
    el("h3", { text: "States" }), el("ul", { class: "times" }, times),
    token.error_type ? el("h3", { text: "Error" }) : null,
    token.error_type ? el("p", { class: "bad mono",
      text: `${token.error_type}: ${token.error_message}` }) : null,
    token.traceback ? el("pre", { class: "traceback", text: token.traceback }) : null,
  ];
}
