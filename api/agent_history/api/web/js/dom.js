// Building elements and formatting values; text always goes in as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function status(value) {
  return h("span", { class: `status s-${value}` }, value.replace("_", " "));
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} m`;
}

export function tokens(usage) {
  if (!usage) return "";
  const parts = [usage.input_tokens, usage.output_tokens];
  if (parts.every((n) => n === null || n === undefined)) return "";
  return parts.map((n) => (n === null || n === undefined ? "–" : n.toLocaleString())).join(" / ");
}

export function cost(usage) {
  const c = usage && usage.cost;
  return c ? `${c.amount} ${c.currency}` : "";
}

export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

export function nameOf(ref) {
  return ref && ref.name ? ref.name : ref ? ref.id.slice(0, 8) : "";
}

export function link(href, ...children) {
  return h("a", { href, "data-nav": "" }, ...children);
}
