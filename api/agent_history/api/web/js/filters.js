// The history's filters, kept in the page's URL (shareable; the back button walks through them),
// and turned into the list's query parameters.
import { h } from "./dom.js";

export const STATUSES = ["pending", "running", "completed", "failed", "cancelled", "timed_out"];
const RANGES = { "": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", custom: "between…" };
const SPAN = { "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000 };

export function fromUrl(search) {
  const q = new URLSearchParams(search);
  return {
    status: q.get("status") || "", user: q.get("user") || "", range: q.get("range") || "",
    after: q.get("after") || "", before: q.get("before") || "",
    tag: q.get("tag") || "", model: q.get("model") || "",
  };
}

export function toUrl(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (f.range !== "custom") { q.delete("after"); q.delete("before"); }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// The list's query parameters; a relative range is fixed at the moment it is asked.
export function apiParams(f) {
  const p = { status: f.status, user_id: f.user, model: f.model };
  p.tag = f.tag ? f.tag.split(",").map((t) => t.trim()).filter(Boolean) : undefined;
  if (SPAN[f.range]) p.started_after = new Date(Date.now() - SPAN[f.range]).toISOString();
  if (f.range === "custom") {
    if (f.after) p.started_after = new Date(f.after).toISOString();
    if (f.before) p.started_before = new Date(f.before).toISOString();
  }
  return p;
}

export function spanOf(f) {
  return SPAN[f.range] || (f.range === "custom" && f.after ? (f.before ? new Date(f.before) : Date.now()) - new Date(f.after) : null);
}

export function filterForm(f, onApply) {
  const field = (label, input) => h("label", {}, label, input);
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === f.status }, s.replace("_", " "))));
  const range = h("select", { name: "range" }, Object.entries(RANGES).map(([v, t]) => h("option", { value: v, selected: v === f.range }, t)));
  const after = h("input", { type: "datetime-local", name: "after", value: f.after });
  const before = h("input", { type: "datetime-local", name: "before", value: f.before });
  const custom = [field("From", after), field("To", before)];
  const showCustom = () => custom.forEach((el) => { el.hidden = range.value !== "custom"; });
  range.addEventListener("change", showCustom);
  showCustom();
  const form = h("form", { class: "filters", role: "search" },
    field("Status", status), field("Time", range), ...custom,
    field("User id", h("input", { name: "user", value: f.user, placeholder: "UUID", size: 12, autocomplete: "off" })),
    field("Tags (all of)", h("input", { name: "tag", value: f.tag, placeholder: "a, b", size: 10 })),
    field("Model", h("input", { name: "model", value: f.model, size: 10 })),
    h("span", { class: "actions" }, h("button", { type: "submit" }, "Apply"),
      h("button", { type: "reset", class: "ghost" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onApply(Object.fromEntries(new FormData(form)));
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    onApply({});
  });
  return form;
}
