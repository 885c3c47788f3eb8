// The SOLLOL Dashboard: reads /api/hydra/status every 2 s and renders it.
// Everything shown goes through textContent (never parsed as HTML): node errors, model names and
// decision reasons are data, not markup.
"use strict";

const REFRESH_MS = 2000;
const KEY_STORE = "hydra-dashboard-key";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function number(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function nodeState(n) {
  if (!n.healthy) return ["down", "bad"];
  if (n.circuit === "open") return ["circuit open", "bad"];
  if (n.circuit === "half_open") return ["half-open", "warn"];
  if (n.vram_low) return ["VRAM low", "warn"];
  return ["healthy", "ok"];
}

function vram(n) {
  if (!n.gpu) return "CPU";
  if (n.vram_total_mb === null || n.vram_total_mb === undefined) return "GPU";
  const used = n.vram_used_mb === null || n.vram_used_mb === undefined ? "?" : n.vram_used_mb.toLocaleString();
  return `${used} / ${n.vram_total_mb.toLocaleString()} MB`;
}

function renderNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const n of nodes) {
    const row = el("tr");
    const name = el("td");
    name.append(el("strong", n.name), el("div", n.url, "muted small"));
    row.append(name);
    const [state, cls] = nodeState(n);
    const stateCell = el("td");
    stateCell.append(el("span", state, `pill ${cls}`));
    if (!n.healthy && n.last_error) stateCell.append(el("div", n.last_error, "muted small"));
    row.append(stateCell);
    const rate = n.success_rate === null || n.success_rate === undefined
      ? "–" : `${Math.round(n.success_rate * 100)} % of ${n.requests}`;
    // data-label: on a phone the header row is hidden and each cell names itself (CSS).
    const cells = [["load", `${n.in_flight}/${n.slots}`], ["VRAM", vram(n)],
      ["loaded", (n.loaded || []).map((m) => m.name).join(", ") || "–"],
      ["TTFT p50", seconds(n.ttft_p50_s)], ["tokens/s", number(n.tokens_per_s, 1)], ["success", rate]];
    for (const [label, text] of cells) {
      const cell = el("td", text);
      cell.dataset.label = label;
      row.append(cell);
    }
    body.append(row);
  }
  if (!nodes.length) {
    const row = el("tr");
    const cell = el("td", "No nodes. Set SOLLOL_NODES or add one on the app's Settings page.", "muted");
    cell.colSpan = 8;
    row.append(cell);
    body.append(row);
  }
}

function renderBars(target, title, counts) {
  const box = document.getElementById(target);
  box.replaceChildren();
  if (title) box.append(el("h3", title));
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  const most = entries.length ? entries[0][1] : 0;
  for (const [label, count] of entries) {
    const row = el("div", null, "bar-row");
    row.append(el("span", label, "bar-label"));
    const track = el("span", null, "bar-track");
    const fill = el("span", null, "bar-fill");
    fill.style.width = `${most ? Math.max(2, (100 * count) / most) : 0}%`;
    track.append(fill);
    row.append(track, el("span", count, "bar-count"));
    box.append(row);
  }
  if (!entries.length) box.append(el("p", "nothing yet", "muted small"));
}

function renderDecisions(decisions) {
  const box = document.getElementById("decisions");
  box.replaceChildren();
  for (const d of decisions.slice(0, 12)) {
    const card = el("details", null, "decision");
    const head = el("summary");
    const when = new Date(d.time * 1000).toLocaleTimeString();
    head.append(el("span", when, "muted small"), " ",
      el("strong", d.node ? `${d.node} · ${d.model}` : "no node"), " ",
      el("span", `${d.mode} · ${d.task_type} · priority ${d.priority} · attempt ${d.attempt}`, "muted small"));
    card.append(head, el("p", d.reason, "small"));
    const table = el("table", null, "candidates");
    const header = el("tr");
    for (const h of ["candidate", "model", "score", "reason"]) header.append(el("th", h));
    table.append(header);
    // A candidate is [node, model, score, eligible, reason] (the engine's Candidate tuple).
    for (const [node, model, score, eligible, reason] of d.candidates || []) {
      const row = el("tr", null, eligible ? "" : "excluded");
      row.append(el("td", node), el("td", model || "–"),
        el("td", eligible && score !== null ? number(score, 3) : "excluded"), el("td", reason));
      table.append(row);
    }
    card.append(table);
    box.append(card);
  }
  if (!decisions.length) box.append(el("p", "No decisions yet: submit a task.", "muted"));
}

function share(part, whole) {
  return whole ? `${Math.round((100 * part) / whole)}%` : "–";
}

// Prefix-aware placement: how much of the prompts the nodes already held where they ran.
function renderCache(cache) {
  const summary = document.getElementById("cache-summary");
  const body = document.querySelector("#cache tbody");
  body.replaceChildren();
  if (!cache) {
    summary.textContent = "–";
    return;
  }
  summary.textContent = `${cache.enabled ? "on" : "off (SOLLOL_PREFIX_AFFINITY=false)"} · ` +
    `cache-hit rate ${share(cache.hits, cache.requests)} of ${plural(cache.requests, "request")} · ` +
    `${share(cache.cached_tokens, cache.prompt_tokens)} of prompt tokens cached · ` +
    `prefill saved ${seconds(cache.prefill_saved_s)}`;
  for (const n of cache.nodes) {
    const row = el("tr");
    row.append(el("td", n.node), el("td", n.requests), el("td", share(n.hits, n.requests)),
      el("td", `${n.cached_tokens.toLocaleString()} of ${n.prompt_tokens.toLocaleString()}`),
      el("td", seconds(n.prefill_saved_s)),
      el("td", n.prefill_tps ? `${Math.round(n.prefill_tps).toLocaleString()} tokens/s` : "–"));
    body.append(row);
  }
}

function render(status) {
  const healthy = status.nodes.filter((n) => n.healthy).length;
  document.getElementById("summary").textContent =
    `${plural(status.nodes.length, "node")} (${healthy} healthy) · mode ${status.default_mode.toUpperCase()} · ` +
    `${status.in_flight} running, ${status.queue_depth} queued · max ${status.max_concurrent} at once · ` +
    `VRAM monitoring ${status.vram_monitoring ? "on" : "off"} · ` +
    `${plural(status.distribution.failovers, "failover")}`;
  renderNodes(status.nodes);
  const dist = status.distribution;
  renderBars("by-node", null, dist.by_node);
  renderBars("by-model", null, dist.by_model);
  renderBars("by-mode", "mode", dist.by_mode);
  renderBars("by-status", "status", dist.by_status);
  renderCache(status.prefix_cache);
  renderDecisions(status.decisions || []);
}

function showError(text) {
  const box = document.getElementById("error");
  box.hidden = !text;
  box.textContent = text || "";
}

async function refresh() {
  const key = sessionStorage.getItem(KEY_STORE);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  try {
    const response = await fetch("/api/hydra/status", { headers, cache: "no-store" });
    if (response.status === 401) {
      document.getElementById("key-box").hidden = false;
      showError(key ? "That key was refused." : "");
      return;
    }
    if (!response.ok) {
      showError(`The gateway answered ${response.status}.`);
      return;
    }
    document.getElementById("key-box").hidden = true;
    showError("");
    render(await response.json());
  } catch (err) {
    showError(`Cannot reach the gateway (${err.message}); retrying.`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-save").addEventListener("click", () => {
    sessionStorage.setItem(KEY_STORE, document.getElementById("key").value.trim());
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
