// Controls: each asks for confirmation, is sent with the session's CSRF token over the
// socket, and its answer is shown as a toast (its effect shows in the panels at once).

import { $, el } from "./dom.js";
import { renderTokenDetail } from "./panels.js";

const csrf = document.querySelector('meta[name="tg-csrf"]').content;

export function toast(text, ok = true) {
  const item = el("div", { class: `toast ${ok ? "ok" : "bad"}`, role: "status", text });
  $("#toasts").prepend(item);
  setTimeout(() => item.remove(), ok ? 6000 : 12000);
}

// Resolves with the reason typed (or "") when confirmed, null when cancelled.
export function confirmAction(text, { reason = false, reasonValue = "" } = {}) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-reason-label").hidden = !reason;
  $("#confirm-reason").value = reasonValue;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? $("#confirm-reason").value : null);
    }, { once: true });
  });
}

export class Controls {
  constructor(socket) {
    this.socket = socket;
  }

  send(action, payload) {
    return new Promise((resolve) => {
      this.socket.timeout(35000).emit(action, { ...payload, csrf }, (err, answer) => {
        const reply = err ? { ok: false, message: "no answer from the dashboard" } : answer;
        if (reply.login) window.location.assign("/login");
        resolve(reply);
      });
    });
  }

  async run(action, payload, question, options = {}) {
    const reason = await confirmAction(question, options);
    if (reason === null) return null;
    const reply = await this.send(action, options.reason ? { ...payload, reason } : payload);
    toast(reply.message || (reply.ok ? "done" : "refused"), reply.ok);
    return reply;
  }

  drain(node = "") {
    return this.run("drain", { node }, node ? `Drain node ${node}? It finishes what it holds ` +
      "and takes nothing new." : "Drain the whole cluster? New calls are held, not lost; " +
      "admitted work finishes.", { reason: true, reasonValue: $("#drain-reason").value });
  }

  resume(node = "") {
    return this.run("resume", { node }, node ? `Resume node ${node}?` : "Resume the cluster?");
  }

  kill(tokenId) {
    return this.run("kill", { token_id: tokenId }, `Kill token ${tokenId}? A queued token is ` +
      "skipped; a running one is asked to stop (its owner gets TokenCancelled once it does).");
  }

  reenable(name) {
    return this.run("reenable", { function: name }, `Re-enable ${name} on every node?`);
  }

  quarantine(id, node, action) {
    return this.run("quarantine", { id, node, action }, action === "replay"
      ? `Replay quarantined call ${id} on ${node}?` : `Drop quarantined call ${id} for good?`);
  }

  async launch(task, args, kwargs) {
    const reply = await this.run("launch", { task, args, kwargs },
      `Launch ${task} with arguments ${args || "[]"} ${kwargs || "{}"}?`);
    if (reply && reply.ok) {
      $("#launched").prepend(el("li", { class: "mono small", dataset: { token: reply.token_id },
        text: `${reply.token_id}: submitted` }));
    }
  }

  // known: what the feed knows of the token, shown when the gateway no longer keeps it (a
  // finished token's record goes once its client has the result).
  async openToken(tokenId, known = null) {
    const reply = await this.send("token", { token_id: tokenId });
    if (!reply.ok && !known) {
      toast(reply.message, false);
      return;
    }
    const token = reply.ok ? reply.token : fromFeed(known);
    const note = reply.ok ? null : el("p", { class: "muted small", id: "token-note",
      text: `From the executions feed: the gateway keeps no record of it now (${reply.message}).` });
    $("#token-title").textContent = token.token_id;
    $("#token-body").replaceChildren(...[note, ...renderTokenDetail(token)].filter(Boolean));
    const final = ["completed", "failed", "killed"].includes(token.state);
    const kill = $("#token-kill");
    kill.hidden = final;
    kill.onclick = () => { $("#token-dialog").close(); this.kill(token.token_id); };
    $("#token-dialog").showModal();
  }
}

function fromFeed(item) {
  return {
    token_id: item.token_id, state: item.state, task: item.op, weight: "", attempt: item.attempt,
    node: item.node, core: item.core, worker: item.worker, args_summary: null, args_bytes: null,
    times: [{ state: item.state, at: item.at }], error_type: item.error_type,
    error_message: "", traceback: "", record: feedRecord(item),
  };
}

// The feed item as a history record (its time has the feed's 3 significant digits).
function feedRecord(item) {
  const final = ["completed", "failed", "killed"].includes(item.state);
  return {
    token_id: item.token_id, operation_type: item.op,
    success: final ? item.state === "completed" : null,
    execution_time: item.ms === null ? null : Number((item.ms / 1000).toPrecision(3)),
    core_id: item.core || null, worker_id: item.worker || null, attempt: item.attempt,
    node: item.node || null,
  };
}

export function showLaunched(outcome) {
  const item = document.querySelector(`#launched li[data-token="${CSS.escape(outcome.token_id)}"]`);
  const text = `${outcome.token_id}: ${outcome.state}` +
    (outcome.error_type ? ` (${outcome.error_type}: ${outcome.error_message})` : "") +
    (outcome.result !== undefined ? ` = ${outcome.result}` : "");
  if (item) item.textContent = text;
  toast(`${outcome.task}: ${outcome.state}`, outcome.state === "completed");
}
