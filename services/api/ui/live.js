// Live: calls in progress, queues, extensions. Read again whenever the event stream says
// something changed (at most every 250 ms); durations tick here every second.
import { call, follow } from "./api.js";
import { el, fill, row, seconds } from "./dom.js";

const TYPES = "pbx.call,pbx.directory,extension.*";
let stopping = null;
let ticker = null;
let offset = 0; // the server's clock minus this browser's
let queued = false;

export function start() {
  stopping = new AbortController();
  refresh();
  follow(TYPES, soon, stopping.signal);
  ticker = setInterval(tick, 1000);
}

export function stop() {
  stopping?.abort();
  clearInterval(ticker);
}

function soon() {
  if (queued) return;
  queued = true;
  setTimeout(() => { queued = false; refresh(); }, 250);
}

async function refresh() {
  let view;
  try {
    view = await call("/ui/api/live");
  } catch (error) {
    document.getElementById("live-summary").textContent = `Not available: ${error.message}`;
    return;
  }
  offset = Date.parse(view.now) - Date.now();
  const count = view.calls.length;
  document.getElementById("live-summary").textContent =
    `${count} call${count === 1 ? "" : "s"} in progress, ${view.queues.reduce((n, q) => n + q.waiting, 0)} waiting in queues`;
  fill(document.querySelector("#calls-table tbody"), view.calls.map(callRow), "No calls in progress.");
  fill(document.querySelector("#queues-table tbody"), view.queues.map(queueRow), "No queues.");
  fill(document.querySelector("#extensions-table tbody"), view.extensions.map(extensionRow), "No extensions.");
  tick();
}

function callRow(c) {
  const who = c.talking.length ? `talks with ${c.talking.join(", ")}` : c.ringing.length ? `rings ${c.ringing.join(", ")}` : "";
  const tr = row(c.caller, c.did, c.state, who, el("span", { "data-since": c.started_at }, ""));
  tr.dataset.chain = c.chain_id;
  return tr;
}

function queueRow(q) {
  const level = q.service_level == null ? "–" : `${Math.round(q.service_level * 100)} %`;
  return row(`${q.name} (${q.number})`, q.waiting, seconds(q.longest_wait),
    `${q.free} / ${q.busy} / ${q.logged_out}`, `${q.answered} / ${q.missed}`, level);
}

function extensionRow(e) {
  const presence = !e.registered ? "not registered" : e.busy ? "busy" : "free";
  return row(e.name ? `${e.name} (${e.number})` : e.number, el("span", { class: e.busy ? "bad" : "" }, presence), e.profile);
}

function tick() {
  const now = Date.now() + offset;
  for (const cell of document.querySelectorAll("#calls-table [data-since]")) {
    cell.textContent = seconds((now - Date.parse(cell.dataset.since)) / 1000);
  }
}
