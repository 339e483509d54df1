// Deliveries: endpoints' health, dead letters (replay one or all listed), the attempt log.
import { call } from "./api.js";
import { el, fill, formValues, row, time } from "./dom.js";

const $ = (id) => document.getElementById(id);
const WEBHOOKS = "/ui/api/webhooks";
let full = false;
let filters = {};

export function start({ rights }) {
  full = rights === "full";
  $("replay-all").hidden = true;
  load();
}

export function stop() {}

$("attempt-filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
$("replay-all").addEventListener("click", (event) => act(`${WEBHOOKS}/dead/replay`,
  { endpoint: filters.endpoint, since: filters.since }, "Replayed the dead letters listed.", event.currentTarget));

async function load() {
  filters = formValues($("attempt-filters"));
  try {
    const [endpoints, dead, attempts] = await Promise.all([
      call(`${WEBHOOKS}/endpoints`),
      call(`${WEBHOOKS}/dead`, { params: { endpoint: filters.endpoint, since: filters.since } }),
      call(`${WEBHOOKS}/attempts`, { params: filters }),
    ]);
    fill($("endpoints-table").tBodies[0], endpoints.map(endpointRow), "No attempts in the last 24 hours.");
    const chain = filters.chain;
    const letters = chain ? dead.filter((d) => d.chain.includes(chain)) : dead;
    fill($("dead-table").tBodies[0], letters.map(deadRow), "No dead letters.");
    $("replay-all").hidden = !full || !letters.length || Boolean(chain);
    fill($("attempts-table").tBodies[0], attempts.map(attemptRow), "No attempts match.");
  } catch (error) {
    $("deliveries-status").textContent = `Not available: ${error.message}`;
  }
}

async function act(path, params, done, button) {
  if (button) button.disabled = true; // once: a second click while it runs would ask again
  try {
    await call(path, { method: "POST", params });
    $("deliveries-status").textContent = done;
  } catch (error) {
    $("deliveries-status").textContent = `Refused: ${error.message}`;
  } finally {
    if (button) button.disabled = false;
  }
  setTimeout(load, 500); // the replayed delivery is attempted meanwhile
  load();
}

function endpointRow(e) {
  const rate = e.success_rate == null ? "–" : `${Math.round(e.success_rate * 100)} % of ${e.attempts}`;
  const state = e.disabled ? el("span", { class: "bad" }, `disabled (${e.disabled_reason})`) : el("span", { class: "ok" }, "enabled");
  const enable = full && e.disabled ? el("button", { type: "button", onclick: (event) =>
    act(`${WEBHOOKS}/endpoints/${encodeURIComponent(e.endpoint)}/enable`, {}, `Enabled ${e.endpoint}.`, event.currentTarget) }, `Enable ${e.endpoint}`) : null;
  return row(e.endpoint, rate, e.last_error ? `${time(e.last_error_at)}: ${e.last_error}` : "", el("span", {}, state, " ", enable));
}

function deadRow(d) {
  const replay = full ? el("button", { type: "button", "aria-label": `Replay ${d.event_type} of ${d.chain}`,
    onclick: (event) => act(`${WEBHOOKS}/dead/replay`, { id: d.id }, `Replayed ${d.event_type} of ${d.chain}.`, event.currentTarget) }, "Replay") : null;
  return row(time(d.at), d.endpoint, d.event_type, d.chain, d.reason, replay);
}

function attemptRow(a) {
  const outcome = el("span", { class: a.outcome === "Delivered" ? "ok" : "bad" }, a.outcome);
  const details = el("button", { type: "button", class: "secondary", "aria-label": `Details of attempt ${a.id}`,
    onclick: () => detail(a) }, "Details");
  const tr = row(time(a.at), a.endpoint, a.event_type, a.chain, a.attempt, a.status ?? "no answer", outcome, details);
  tr.dataset.outcome = a.outcome;
  return tr;
}

function detail(a) {
  const box = $("attempt-detail");
  box.querySelector("pre").textContent = [
    `endpoint: ${a.endpoint}`, `event: ${a.event_type} ${a.event_id}`, `chain: ${a.chain}`,
    `attempt ${a.attempt} at ${time(a.at)}, ${a.latency_ms.toFixed(0)} ms`, "",
    "request:", a.request || "(not kept: an attempt logged before this version)", "",
    `response: ${a.status ?? "no answer"} ${a.outcome}`, "", a.response || "(empty body)",
  ].join("\n");
  box.hidden = false;
  box.focus();
}
