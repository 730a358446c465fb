// An agent's history: filters in the URL, charts from the stats series, the table of runs with
// endless scrolling by cursor, live updates from the list's event stream, and a download.
import { download, query, request } from "./api.js";
import { durationLines, everyBucket, statusBars } from "./charts.js";
import { cost, duration, h, link, nameOf, status, tokens, when } from "./dom.js";
import { apiParams, filterForm, fromUrl, spanOf, toUrl } from "./filters.js";
import { follow } from "./sse.js";

const PAGE = 50;

export async function historyPage(main, signal, agentId, navigate) {
  const filters = fromUrl(location.search);
  const params = apiParams(filters);
  const base = `/agents/${agentId}/executions`;
  const title = h("h1", {}, "Agent");
  const liveState = h("span", { class: "live", id: "live", "aria-live": "polite" }, "");
  const charts = h("div", { class: "charts", id: "charts" });
  const body = h("tbody", {});
  const sentinel = h("div", { class: "sentinel" });
  const summary = h("p", { class: "muted", id: "summary" });
  const problem = h("p", { class: "error", role: "alert" });
  const exportButton = (format) => h("button", { type: "button", class: "ghost", onclick: async () => {
    problem.textContent = "";
    try { await download(`${base}/export${query({ ...params, format })}`, `executions-${agentId}.${format}`); }
    catch (error) { problem.textContent = `Export failed: ${error.message}`; }
  } }, `Download ${format.toUpperCase()}`);
  main.replaceChildren(
    h("p", {}, link("/ui/", "← Agents")), title,
    filterForm(filters, (next) => navigate(location.pathname + toUrl(next))),
    charts,
    h("div", { class: "filters" }, summary, liveState, h("span", { class: "spacer" }), exportButton("csv"), exportButton("jsonl")),
    problem,
    h("div", { class: "table-wrap" }, h("table", { id: "runs" },
      h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "Start"), h("th", { class: "num" }, "Duration"),
        h("th", { class: "opt" }, "User"), h("th", {}, "Model"), h("th", { class: "num opt" }, "Tokens in / out"),
        h("th", { class: "num opt" }, "Cost"), h("th", { class: "opt" }, "Tags"), h("th", {}, "Error"))),
      body)),
    sentinel);

  const rows = new Map();
  let cursor = null;
  let loading = null;
  let done = false;
  const loadMore = () => (loading ||= (async () => {
    const page = await request(`${base}${query({ ...params, limit: PAGE, cursor })}`, { signal });
    if (page.total !== null) summary.textContent = `${page.total.toLocaleString()} runs`;
    for (const run of page.executions) if (!rows.has(run.id)) body.append(row(run, rows));
    if (page.executions[0] && title.textContent === "Agent") title.textContent = nameOf(page.executions[0].agent);
    cursor = page.next_cursor;
    done = cursor === null;
    sentinel.replaceChildren(done ? (rows.size ? "End of the history" : "No runs match.") :
      h("button", { type: "button", class: "ghost", onclick: () => loadMore() }, "Load more"));
  })().finally(() => { loading = null; }));

  await loadMore();
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !done && !loading) loadMore().catch(() => {});
  }, { rootMargin: "400px" });
  observer.observe(sentinel);
  signal.addEventListener("abort", () => observer.disconnect());

  const stop = follow(`${base}/stream${query(params)}`, {
    onState: (state) => {
      liveState.className = state === "live" ? "live on" : "live";
      liveState.textContent = state === "unavailable" ? "" : state;
    },
    onEvent: (event, data) => {
      if (event === "reset") { navigate(location.pathname + location.search, { replace: true }); return; }
      if (event !== "execution") return;
      place(JSON.parse(data), rows, body, done);
    },
  });
  signal.addEventListener("abort", stop);
  chartsOf(charts, agentId, filters, signal).catch(() => charts.replaceChildren());
}

function cells(run) {
  return [
    h("td", {}, status(run.status)),
    h("td", {}, link(`/ui/executions/${run.id}`, when(run.execution_start))),
    h("td", { class: "num" }, duration(run.execution_time_ms)),
    h("td", { class: "opt" }, nameOf(run.user)),
    h("td", {}, run.model || ""),
    h("td", { class: "num opt" }, tokens(run.usage)),
    h("td", { class: "num opt" }, cost(run.usage)),
    h("td", { class: "opt" }, (run.tags || []).map((t) => h("span", { class: "tag" }, t))),
    h("td", { class: "err", title: run.error_message || "" }, run.error_message || ""),
  ];
}

function row(run, rows) {
  const tr = h("tr", { "data-id": run.id, "data-status": run.status, "data-start": run.execution_start }, cells(run));
  rows.set(run.id, tr);
  return tr;
}

// A run from the stream: an update of a row shown, or a new one in its place by start time.
function place(run, rows, body, done) {
  const shown = rows.get(run.id);
  if (shown) {
    shown.replaceChildren(...cells(run));
    shown.dataset.status = run.status;
    shown.classList.remove("fresh");
    void shown.offsetWidth;
    shown.classList.add("fresh");
    return;
  }
  const later = [...body.children].find((tr) => tr.dataset.start < run.execution_start);
  if (!later && !done) return; // older than every row shown: its page is still to come
  const tr = row(run, rows);
  tr.classList.add("fresh");
  body.insertBefore(tr, later || null);
}

async function chartsOf(el, agentId, filters, signal) {
  const span = spanOf(filters) || 14 * 86_400_000;
  const hourly = span <= 2 * 86_400_000;
  const p = apiParams(filters);
  const after = p.started_after || new Date(Date.now() - span).toISOString();
  const stats = await request(`/agents/${agentId}/executions/stats${query({ started_after: after, started_before: p.started_before, interval: hourly ? "hour" : "day" })}`, { signal });
  if (!stats.series) return;
  const to = p.started_before ? Date.parse(p.started_before) : Date.now();
  const series = everyBucket(stats.series, Date.parse(after), to, hourly);
  el.replaceChildren(statusBars(series, hourly), durationLines(series, hourly));
}
