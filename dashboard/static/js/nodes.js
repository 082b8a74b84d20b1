// Node cards, grouped by host and filtered by state; a card is rebuilt only when it changed.

import { $, el, fill, num, stateClass } from "./dom.js";

const STATES = ["UP", "SATURATED", "STUCK", "DRAINING", "DRAINED", "DISCONNECTED"];

function depthClass(depth, capacity) {
  if (!depth) return "d0";
  const share = capacity ? depth / capacity : 1;
  return share < 0.25 ? "d1" : share < 0.5 ? "d2" : share < 0.9 ? "d3" : "d4";
}

function coreRow(core, card) {
  const wpc = card.wpc || (core.depths ? core.depths.length : core.active) || 0;
  const cells = [];
  for (let i = 0; i < wpc; i += 1) {
    const active = i < core.active;
    const depth = core.depths ? core.depths[i] : null;
    const busy = core.busy ? core.busy[i] : null;
    const stuck = core.stuck ? core.stuck[i] : null;
    const classes = ["cell", active ? "active" : "inactive",
      depth === null ? "" : depthClass(depth, card.capacity), busy ? "busy" : "",
      stuck ? "stuck" : ""];
    cells.push(el("span", {
      class: classes.filter(Boolean).join(" "),
      title: `core ${core.core} mailbox ${i}${active ? "" : " (inactive)"}` +
        (depth === null ? "" : `: ${depth} queued${busy ? ", running" : ""}`) +
        (stuck ? ", past its time limit" : ""),
      text: depth === null ? "" : String(depth),
    }));
  }
  return el("div", { class: "core" },
    el("span", { class: "core-label", text: `c${core.core}` }),
    el("span", { class: "cells" }, cells),
    el("span", { class: "muted small",
      text: `${core.active}/${wpc} active · ${num(core.queued)} queued · ` +
        `${num(core.executing)} running` }));
}

function card(name, c, actions) {
  const credits = c.credits || {};
  const cpu = c.cpu === null || c.cpu === undefined ? "n/a" : `${c.cpu}%`;
  const rss = c.rss === null || c.rss === undefined ? "n/a" : `${c.rss} MiB`;
  const age = c.age ? `${c.age}s ago` : "< 2s";
  return el("article", { class: "node", dataset: { node: name, state: c.state } },
    el("header", {},
      el("strong", { class: "mono", text: name }),
      el("span", { class: stateClass(c.state), text: c.state }),
      c.reason ? el("span", { class: "muted small", text: c.reason }) : null),
    el("div", { class: "node-facts small" },
      el("span", { text: `host ${c.host}${c.pid ? ` · pid ${c.pid}` : ""}` }),
      el("span", { class: c.age ? "warn" : "", text: `heartbeat ${age}` }),
      el("span", { text: `credits ${num(credits.heavy)}/${num(credits.medium)}/` +
        `${num(credits.light)}` }),
      el("span", { text: `in flight ${num(c.inflight)} · executing ${num(c.executing)}` +
        (c.stuck ? ` · stuck ${c.stuck}` : "") }),
      el("span", { text: `cpu ${cpu} · memory ${rss}` }),
      el("span", { text: `done ${num(c.completed)} · failed ${num(c.failed)}` })),
    el("details", { class: "small" },
      el("summary", { text: `${(c.tasks || []).length} tasks registered` }),
      el("ul", { class: "mono" }, (c.tasks || []).map((t) => el("li", { text: t })))),
    el("div", { class: "cores" }, (c.cores || []).map((core) => coreRow(core, c))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "drain-node", text: "Drain",
        onclick: () => actions.drain(name) }),
      el("button", { type: "button", class: "resume-node", text: "Resume",
        onclick: () => actions.resume(name) })));
}

export class NodesPanel {
  constructor(actions) {
    this.actions = actions;
    this.cards = new Map();      // name -> element
    this.filter = $("#node-state");
    this.group = $("#node-group");
    for (const state of STATES) this.filter.append(el("option", { value: state, text: state }));
    this.filter.addEventListener("change", () => this.layout(this.last));
    this.group.addEventListener("change", () => this.layout(this.last));
    this.last = {};
  }

  // changed: names whose card changed (null: all)
  render(nodes, changed) {
    this.last = nodes;
    for (const name of [...this.cards.keys()]) {
      if (!Object.hasOwn(nodes, name)) this.cards.delete(name);
    }
    for (const [name, c] of Object.entries(nodes)) {
      if (changed === null || changed.has(name) || !this.cards.has(name)) {
        const fresh = card(name, c, this.actions);
        const old = this.cards.get(name);
        if (old && old.querySelector("details").open) fresh.querySelector("details").open = true;
        if (old && old.isConnected) old.replaceWith(fresh);
        this.cards.set(name, fresh);
      }
    }
    const signature = Object.keys(nodes).sort()
      .map((name) => `${name}|${nodes[name].host}|${nodes[name].state}`).join(",");
    if (signature !== this.signature) {
      this.signature = signature;
      this.layout(nodes);
    }
  }

  layout(nodes) {
    const state = this.filter.value;
    const names = Object.keys(nodes).sort()
      .filter((name) => !state || nodes[name].state === state);
    $("#node-count").textContent = `${names.length} of ${Object.keys(nodes).length} nodes`;
    if (!this.group.checked) {
      fill($("#nodes"), el("div", { class: "cards" }, names.map((n) => this.cards.get(n))));
      return;
    }
    const hosts = new Map();
    for (const name of names) {
      const host = nodes[name].host || "?";
      if (!hosts.has(host)) hosts.set(host, []);
      hosts.get(host).push(this.cards.get(name));
    }
    fill($("#nodes"), [...hosts.entries()].sort(([a], [b]) => a.localeCompare(b))
      .map(([host, cards]) => el("div", { class: "host" },
        el("h3", { class: "mono", text: `${host} (${cards.length})` }),
        el("div", { class: "cards" }, cards))));
  }
}

export function affinityRows(nodes) {
  const rows = [];
  for (const name of Object.keys(nodes).sort()) {
    for (const core of nodes[name].cores || []) {
      const r = core.routed || {};
      rows.push({ label: `${name}/c${core.core}`, heavy: r.heavy || 0, medium: r.medium || 0,
        light: r.light || 0 });
    }
  }
  return rows;
}
