// The executions feed: newest first, filtered by operation, node and outcome.

import { $, clock, el, fill } from "./dom.js";

const FILTERS = { op: "#feed-op", node: "#feed-node", state: "#feed-state" };

export class FeedPanel {
  constructor(openToken) {
    this.openToken = openToken;
    this.items = [];
    this.rows = new Map();  // item key -> its row, kept while the item is
    this.options = { op: new Set(), node: new Set() };
    for (const selector of Object.values(FILTERS)) {
      $(selector).addEventListener("change", () => this.redraw());
    }
  }

  matches(item) {
    return Object.entries(FILTERS).every(([field, selector]) => {
      const wanted = $(selector).value;
      return !wanted || item[field] === wanted;
    });
  }

  row(item) {
    return el("tr", {
      class: `feed-row ${item.state === "completed" ? "" : "bad"}`,
      dataset: { token: item.token_id }, onclick: () => this.openToken(item.token_id, item),
    },
    el("td", { text: clock(item.at) }),
    el("td", { class: "mono small", text: item.token_id }),
    el("td", { text: item.op }),
    el("td", { text: item.node }),
    el("td", { text: item.core || "–" }),
    el("td", { class: "small", text: item.worker || "–" }),
    el("td", { text: item.ms === null ? "–" : item.ms }),
    el("td", { text: item.error_type ? `${item.state} (${item.error_type})` : item.state }));
  }

  addOptions(items) {
    for (const field of ["op", "node"]) {
      for (const item of items) {
        const value = item[field];
        if (value && !this.options[field].has(value)) {
          this.options[field].add(value);
          $(FILTERS[field]).append(el("option", { value, text: value }));
        }
      }
    }
  }

  render(items) {
    this.items = items;
    const keys = new Set(items.map((item) => item.key));
    for (const key of [...this.rows.keys()]) if (!keys.has(key)) this.rows.delete(key);
    this.addOptions(items.filter((item) => !this.rows.has(item.key)));
    this.redraw();
  }

  // Rows are made once per item; a redraw only puts the matching ones in order.
  redraw() {
    const shown = this.items.filter((item) => this.matches(item)).reverse();
    fill($("#feed"), shown.map((item) => {
      if (!this.rows.has(item.key)) this.rows.set(item.key, this.row(item));
      return this.rows.get(item.key);
    }));
  }
}
