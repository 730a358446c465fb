// The page's shell: the theme, signing in, and a router over /ui/ paths (History API, so the
// back button and shared links work).
import { agentsPage } from "./agents.js";
import { request } from "./api.js";
import { caller, forget, keep, redeemFragment } from "./auth.js";
import { detailPage } from "./detail.js";
import { h } from "./dom.js";
import { historyPage } from "./history.js";

const main = document.getElementById("main");
let current = null;

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem("agent-history.theme"));
document.getElementById("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  localStorage.setItem("agent-history.theme", next);
  applyTheme(next);
});
document.getElementById("signout").addEventListener("click", () => { forget(); route(); });
window.addEventListener("signed-out", () => route());

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-nav]");
  if (!a || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => route());

function signIn(message) {
  const input = h("textarea", { id: "token", name: "token", "aria-label": "Bearer token", autocomplete: "off", spellcheck: "false", required: true });
  const problem = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "signin panel" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste a bearer token (", h("code", {}, "agent-history token --user ID"),
      "), or open a login link from ", h("code", {}, "agent-history token --user ID --login-url"), "."),
    input, h("p", {}, h("button", { type: "submit" }, "Sign in")), problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    keep(input.value);
    const who = caller();
    if (!who) { forget(); problem.textContent = "That is not a token, or it has expired."; return; }
    try {
      await request(`/users/${who.id}/executions?limit=1`);
      route();
    } catch (error) {
      forget();
      problem.textContent = `The API refused the token: ${error.message}`;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function route() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  delete document.body.dataset.ready;
  const who = caller();
  document.getElementById("signout").hidden = !who;
  document.getElementById("who").textContent = who ? `${who.id}${who.scopes.includes("executions:read:all") ? " · all users" : ""}` : "";
  if (!who) { signIn(); return; }
  const path = location.pathname.replace(/\/+$/, "");
  const agent = path.match(/^\/ui\/agents\/([0-9a-f-]{36})$/i);
  const run = path.match(/^\/ui\/executions\/([0-9a-f-]{36})$/i);
  const nav = document.getElementById("nav");
  try {
    if (agent) { nav.textContent = "History"; await historyPage(main, signal, agent[1], navigate); }
    else if (run) { nav.textContent = "Run"; await detailPage(main, signal, run[1]); }
    else { nav.textContent = "Agents"; await agentsPage(main, signal); }
    document.body.dataset.ready = agent ? "history" : run ? "detail" : "agents";
    performance.mark(`ah:interactive:${document.body.dataset.ready}`);
  } catch (error) {
    if (signal.aborted) return;
    main.replaceChildren(h("h1", {}, error.status === 404 ? "Not found" : "Something went wrong"),
      h("p", { class: "error", role: "alert" }, error.message));
    document.body.dataset.ready = "error";
  }
}

// A login link opened on the page it points to changes only the fragment: no new load.
async function start() {
  const failed = await redeemFragment();
  if (failed) signIn(failed); else route();
}
window.addEventListener("hashchange", () => { if (location.hash.includes("code=")) start(); });
start();
