// The dashboard's shell: log in, pick a page from the URL's hash, show what the key may do.
import { call, forget, key, remember } from "./api.js";
import * as calls from "./calls.js";
import * as deliveries from "./deliveries.js";
import * as live from "./live.js";

const PAGES = { live, deliveries, calls };
const $ = (id) => document.getElementById(id);
let rights = "read";
let current = null;

async function logIn(event) {
  event.preventDefault();
  remember($("key").value.trim());
  $("key").value = "";
  await start();
}

async function start() {
  if (!key()) return showLogin("");
  try {
    rights = (await call("/ui/api/whoami")).rights;
  } catch (error) {
    forget();
    return showLogin(error.status === 401 || error.status === 403 ? "That key was refused." : error.message);
  }
  $("login").hidden = true;
  $("pages").hidden = $("logout").hidden = false;
  $("rights").textContent = rights === "full" ? "full access" : "read-only";
  document.body.dataset.rights = rights;
  show();
}

function showLogin(message) {
  current?.stop();
  current = null;
  for (const name of Object.keys(PAGES)) $(name).hidden = true;
  $("pages").hidden = $("logout").hidden = true;
  $("rights").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("key").focus();
}

function show() {
  if (!key()) return;
  const wanted = location.hash.slice(1);
  if (current && !PAGES[wanted]) return; // an in-page link (the skip link): stay on this page
  const name = PAGES[wanted] ? wanted : "live";
  current?.stop();
  for (const page of Object.keys(PAGES)) $(page).hidden = page !== name;
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.hash === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  current = PAGES[name];
  current.start({ rights });
}

$("login").addEventListener("submit", logIn);
$("logout").addEventListener("click", () => { forget(); showLogin(""); });
window.addEventListener("hashchange", show);
window.addEventListener("callbridge:logout", () => { forget(); showLogin("Your key was refused: log in again."); });
start();
