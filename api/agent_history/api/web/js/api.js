// The public API, with the caller's token; errors are RFC 9457 problems.
import { API, currentToken, forget } from "./auth.js";

export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function authHeaders(extra = {}) {
  const token = currentToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

export async function request(path, { signal } = {}) {
  const response = await fetch(API + path, { headers: authHeaders(), signal, credentials: "omit" });
  if (response.status === 401) {
    forget();
    window.dispatchEvent(new CustomEvent("signed-out"));
  }
  if (!response.ok) throw new Problem(response.status, await response.json().catch(() => ({})));
  return response.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) q.append(name, one);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// A download through fetch, so that the token stays in a header: the file is assembled in the
// browser, then saved.
export async function download(path, filename) {
  const response = await fetch(API + path, { headers: authHeaders(), credentials: "omit" });
  if (!response.ok) throw new Problem(response.status, await response.json().catch(() => ({})));
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
