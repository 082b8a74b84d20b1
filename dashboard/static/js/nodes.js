// Node cards, grouped by host and filtered by state; a card changes only where its node did.

import { $, el, fill, num, stateClass } from "./dom.js";

const STATES = ["UP", "SATURATED", "STUCK", "DRAINING", "DRAINED", "DISCONNECTED"];

function depthClass(depth, capacity) {
  if (!depth) return "d0";
  const share = capacity ? depth / capacity : 1;
  return share < 0.25 ? "d1" : share < 0.5 ? "d2" : share < 0.9 ? "d3" : "d4";
}

function put(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function putClass(node, name) {
  if (node.className !== name) node.className = name;
}

function cellLook(core, i, capacity) {
  const active = i < core.active;
  const depth = core.depths ? core.depths[i] : null;
  const busy = core.busy ? core.busy[i] : 0;
  const stuck = core.stuck ? core.stuck[i] : 0;
  const blocked = core.blocked ? core.blocked[i] : 0;
  const name = ["cell", active ? "active" : "inactive",
    depth === null ? "" : depthClass(depth, capacity), busy ? "busy" : "",
    stuck || blocked ? "stuck" : ""].filter(Boolean).join(" ");
  const title = `core ${core.core} mailbox ${i}${active ? "" : " (inactive)"}` +
    (depth === null ? "" : `: ${depth} queued${busy ? ", running" : ""}`) +
    (stuck ? ", past its time limit" : "") +
    (blocked ? ", blocked on a long call (what waited went to other nodes)" : "");
  return { name, title, text: depth === null ? "" : String(depth) };
}

// One agent's card: built once, then only the texts and classes that changed are set.
class NodeCard {
  constructor(name, actions) {
    this.state = el("span");
    this.reason = el("span", { class: "muted small" });
    this.facts = Array.from({ length: 8 }, () => el("span"));
    this.summary = el("summary");
    this.tasks = el("ul", { class: "mono" });
    this.details = el("details", { class: "small" }, this.summary, this.tasks);
    this.cores = el("div", { class: "cores" });
    this.shape = "";
    this.rows = [];
    this.taskList = null;
    this.element = el("article", { class: "node", dataset: { node: name } },
      el("header", {}, el("strong", { class: "mono", text: name }), this.state, this.reason),
      el("div", { class: "node-facts small" }, this.facts),
      this.details, this.cores,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "drain-node", text: "Drain",
          onclick: () => actions.drain(name) }),
        el("button", { type: "button", class: "resume-node", text: "Resume",
          onclick: () => actions.resume(name) })));
  }

  update(c) {
    this.element.dataset.state = c.state;
    putClass(this.state, stateClass(c.state));
    put(this.state, c.state);
    put(this.reason, c.reason || "");
    const credits = c.credits || {};
    const nested = c.nested || {};
    const cpu = c.cpu === null || c.cpu === undefined ? "n/a" : `${c.cpu}%`;
    const rss = c.rss === null || c.rss === undefined ? "n/a" : `${c.rss} MiB`;
    const texts = [
      `host ${c.host}${c.pid ? ` · pid ${c.pid}` : ""}`,
      `heartbeat ${c.age ? `${c.age}s ago` : "< 2s"}`,
      `credits ${num(credits.heavy)}/${num(credits.medium)}/${num(credits.light)}`,
      `in flight ${num(c.inflight)} · executing ${num(c.executing)}` +
        (c.stuck ? ` · stuck ${c.stuck}` : "") +
        (c.blocked ? ` · blocked ${c.blocked}/${num(c.workers)}` : ""),
      `cpu ${cpu} · memory ${rss}`,
      `done ${num(c.completed)} · failed ${num(c.failed)}`,
      `labels ${(c.labels || []).join(" ") || "none"}`,
      `nested (run here, not in the ledger) ${num(nested.submitted)} · active ` +
        `${num(nested.active)} · failed ${num((nested.failed || 0) + (nested.killed || 0))}`];
    texts.forEach((text, i) => put(this.facts[i], text));
    putClass(this.facts[1], c.age ? "warn" : "");
    this.updateTasks(c.tasks || []);
    this.updateCores(c);
  }

  updateTasks(tasks) {
    const joined = tasks.join("\n");
    if (joined === this.taskList) return;
    this.taskList = joined;
    put(this.summary, `${tasks.length} tasks registered`);
    fill(this.tasks, tasks.map((t) => el("li", { text: t })));
  }

  updateCores(c) {
    const cores = c.cores || [];
    const wpc = (core) => c.wpc || (core.depths ? core.depths.length : core.active) || 0;
    const shape = cores.map((core) => `${core.core}:${wpc(core)}`).join(",");
    if (shape !== this.shape) {
      this.shape = shape;
      this.rows = cores.map((core) => ({
        cells: Array.from({ length: wpc(core) }, () => el("span")),
        text: el("span", { class: "muted small" }),
      }));
      fill(this.cores, cores.map((core, i) => el("div", { class: "core" },
        el("span", { class: "core-label", text: `c${core.core}` }),
        el("span", { class: "cells" }, this.rows[i].cells), this.rows[i].text)));
    }
    cores.forEach((core, i) => {
      const row = this.rows[i];
      row.cells.forEach((cell, j) => {
        const look = cellLook(core, j, c.capacity);
        putClass(cell, look.name);
        put(cell, look.text);
        if (cell.title !== look.title) cell.title = look.title;
      });
      put(row.text, `${core.active}/${row.cells.length} active · ${num(core.queued)} queued · ` +
        `${num(core.executing)} running`);
    });
  }
}

export class NodesPanel {
  constructor(actions) {
    this.actions = actions;
    this.cards = new Map();      // name -> NodeCard
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
      if (!this.cards.has(name)) this.cards.set(name, new NodeCard(name, this.actions));
      if (changed === null || changed.has(name) || !this.cards.get(name).shown) {
        this.cards.get(name).update(c);
        this.cards.get(name).shown = true;
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
      fill($("#nodes"), el("div", { class: "cards" },
        names.map((n) => this.cards.get(n).element)));
      return;
    }
    const hosts = new Map();
    for (const name of names) {
      const host = nodes[name].host || "?";
      if (!hosts.has(host)) hosts.set(host, []);
      hosts.get(host).push(this.cards.get(name).element);
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
