// The caller's bearer token: pasted once or redeemed from a one-time login code, kept in this
// browser's localStorage, and sent only in the Authorization header (never in a URL, never as a
// cookie, so no other site can make the browser use it).

const KEY = "agent-history.token";
export const API = "/api/v1/agent-studio";

export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

export function currentToken() {
  const token = localStorage.getItem(KEY);
  const c = token && claims(token);
  if (!c || (c.exp && c.exp * 1000 <= Date.now())) {
    localStorage.removeItem(KEY);
    return null;
  }
  return token;
}

export function caller() {
  const token = currentToken();
  const c = token && claims(token);
  return c ? { id: c.sub, scopes: (c.scope || "").split(" ").filter(Boolean), exp: c.exp } : null;
}

export function keep(token) {
  localStorage.setItem(KEY, token.trim());
}

export function forget() {
  localStorage.removeItem(KEY);
}

// A login link carries a one-time code in its fragment (#code=...), which browsers never send to
// a server; the page trades it for a token by POST and wipes it from the address bar and history.
export async function redeemFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("code");
  if (!code) return null;
  history.replaceState(history.state, "", location.pathname + location.search);
  const response = await fetch(`${API}/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
    credentials: "omit",
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    return problem.detail || `the login link did not work (${response.status})`;
  }
  keep((await response.json()).access_token);
  return null;
}
