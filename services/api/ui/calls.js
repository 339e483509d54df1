// Calls and recordings: the api's recent chains, searched; each with its events, its
// recordings (played in the page, downloaded) and its webhooks deliveries.
import { call } from "./api.js";
import { el, formValues, time } from "./dom.js";

const $ = (id) => document.getElementById(id);

export function start() { search(); }
export function stop() {}

$("chain-filters").addEventListener("submit", (event) => { event.preventDefault(); search(); });

async function search() {
  let chains;
  try {
    chains = await call("/ui/api/chains", { params: formValues($("chain-filters")) });
  } catch (error) {
    $("calls-status").textContent = `Not available: ${error.message}`;
    return;
  }
  $("calls-status").textContent = `${chains.length} chain${chains.length === 1 ? "" : "s"} found`;
  $("chains-list").replaceChildren(...chains.map(chainItem));
}

function chainItem(c) {
  const item = el("li", { "data-chain": c.chain_id });
  const deliveries = el("div", {});
  const show = el("button", { type: "button", class: "secondary", "aria-expanded": "false",
    onclick: async () => {
      show.setAttribute("aria-expanded", "true");
      await loadDeliveries(c.chain_id, deliveries);
    } }, `Webhooks of ${c.chain_id}`);
  item.append(
    el("h3", {}, `${c.caller || "internal"} → ${c.extensions.join(", ") || "nobody"}`),
    el("p", { class: "muted" }, `${c.chain_id}, ${c.direction}, ${time(c.started_at)}`,
      c.ended_at ? `, ended ${time(c.ended_at)}` : ", in progress", c.answered ? ", answered" : ", not answered"),
    el("p", {}, c.events.map((e) => `${e.type.replace("call.", "")}${e.extension ? " " + e.extension : ""}`).join(" · ")),
    ...c.recordings.flatMap((r) => r.files.map((file, n) => recording(c, r.link, n, file))),
    show, deliveries,
  );
  return item;
}

function recording(c, link, n, address) {
  const file = /^https?:\/\//i.test(address) ? address : "about:blank"; // a web address, nothing else
  const label = `Recording ${n + 1} of link ${link}, chain ${c.chain_id}`;
  return el("div", {}, el("audio", { controls: true, preload: "metadata", src: file, "aria-label": label }),
    el("a", { href: file, download: "" }, `Download recording ${n + 1} (link ${link})`));
}

async function loadDeliveries(chain, box) {
  try {
    const attempts = await call("/ui/api/webhooks/attempts", { params: { chain } });
    box.replaceChildren(el("ul", {}, attempts.length ? attempts.map((a) =>
      el("li", {}, `${time(a.at)} ${a.endpoint} ${a.event_type}: ${a.status ?? "no answer"} ${a.outcome}`))
      : [el("li", { class: "muted" }, "No deliveries logged.")]));
  } catch (error) {
    box.textContent = `Not available: ${error.message}`;
  }
}
