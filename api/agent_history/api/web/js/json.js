// Collapsible JSON that stays responsive for large payloads: a node's children are built only
// when it is opened, a long list or object shows 100 entries at a time, and a long string its
// first 2,000 characters until asked for the rest.
import { h } from "./dom.js";

const STEP = 100;
const LONG = 2000;

export function jsonView(value, { open = 1 } = {}) {
  return h("div", { class: "json" }, node(null, value, open));
}

function node(key, value, open) {
  const label = key === null ? [] : [h("span", { class: "k" }, JSON.stringify(key)), ": "];
  if (value === null || typeof value !== "object") return h("div", {}, ...label, scalar(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [l, r] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  if (!entries.length) return h("div", {}, ...label, l + r);
  const summary = `${entries.length} ${Array.isArray(value) ? "items" : "keys"}`;
  const list = h("ul", { hidden: true });
  const toggle = h("button", { class: "toggle", type: "button", "aria-expanded": "false" }, "▸");
  const hint = h("span", { class: "muted" }, ` ${summary} ${r}`);
  const close = h("div", { hidden: true }, r);
  let shown = 0;
  const more = () => {
    const next = entries.slice(shown, shown + STEP);
    shown += next.length;
    list.querySelector(":scope > li.more-row")?.remove();
    for (const [k, v] of next) list.append(h("li", {}, node(Array.isArray(value) ? null : k, v, open - 1)));
    if (shown < entries.length) {
      const button = h("button", { class: "more", type: "button", onclick: more },
        `show ${Math.min(STEP, entries.length - shown)} more of ${entries.length - shown}`);
      list.append(h("li", { class: "more-row" }, button));
    }
  };
  const flip = () => {
    const opening = list.hidden;
    if (opening && shown === 0) more();
    list.hidden = !opening;
    hint.hidden = opening;
    close.hidden = !opening;
    toggle.textContent = opening ? "▾" : "▸";
    toggle.setAttribute("aria-expanded", String(opening));
  };
  toggle.addEventListener("click", flip);
  const el = h("div", {}, toggle, ...label, l, hint, list, close);
  if (open > 0) flip();
  return el;
}

function scalar(value) {
  if (typeof value === "string") {
    if (value.length <= LONG) return h("span", { class: "str" }, JSON.stringify(value));
    const text = h("span", { class: "str" }, JSON.stringify(value.slice(0, LONG)) + "…");
    const all = h("button", { class: "more", type: "button" }, ` show all ${value.length.toLocaleString()} characters`);
    all.addEventListener("click", () => { text.textContent = JSON.stringify(value); all.remove(); });
    return h("span", {}, text, all);
  }
  if (typeof value === "number") return h("span", { class: "num" }, String(value));
  return h("span", { class: "lit" }, String(value));
}
