// A run's detail: every field, its input and output as collapsible JSON, the error, timing, and
// its tree of sub-runs drawn against the run's own time span.
import { request } from "./api.js";
import { cost, duration, h, link, nameOf, status, tokens, when } from "./dom.js";
import { jsonView } from "./json.js";

export async function detailPage(main, signal, executionId) {
  const [run, tree] = await Promise.all([
    request(`/executions/${executionId}`, { signal }),
    request(`/executions/${executionId}/tree`, { signal }).catch(() => null),
  ]);
  const fields = [
    ["Status", status(run.status)],
    ["Agent", link(`/ui/agents/${run.agent_id}`, nameOf(run.agent))],
    ["User", `${nameOf(run.user)} (${run.user_id})`],
    ["Model", run.model || "–"],
    ["Tokens in / out", tokens(run.usage) || "–"],
    ["Cost", cost(run.usage) || "–"],
    ["Tags", (run.tags || []).length ? run.tags.map((t) => h("span", { class: "tag" }, t)) : "–"],
    ["Parent run", run.parent_execution_id ? link(`/ui/executions/${run.parent_execution_id}`, run.parent_execution_id) : "–"],
    ["Execution id", h("span", { class: "mono" }, run.id)],
  ];
  const timing = [
    ["Started", when(run.execution_start)], ["Ended", when(run.execution_end) || "–"],
    ["Duration", duration(run.execution_time_ms) || "–"], ["Last seen", when(run.last_seen_at) || "–"],
    ["Recorded", when(run.created_at)], ["Updated", when(run.updated_at)],
  ];
  const metadata = Object.entries(run.metadata || {});
  main.replaceChildren(...[
    h("p", {}, link(`/ui/agents/${run.agent_id}`, `← ${nameOf(run.agent)}`)),
    h("h1", {}, `Run ${run.id.slice(0, 8)}`),
    run.error_message ? h("div", { class: "panel" }, h("h2", {}, "Error"), h("p", { class: "error", id: "error" }, run.error_message)) : null,
    h("div", { class: "grid2" },
      h("section", { class: "panel" }, h("h2", {}, "Run"), kv(fields)),
      h("section", { class: "panel" }, h("h2", {}, "Timing"), kv(timing),
        metadata.length ? [h("h2", {}, "Metadata"), kv(metadata.map(([k, v]) => [k, String(v)]))] : null)),
    h("section", {}, h("h2", {}, "Input"), h("div", { class: "panel", id: "input" }, jsonView(run.input_data))),
    h("section", {}, h("h2", {}, "Output"), h("div", { class: "panel", id: "output" }, jsonView(run.output_data))),
    tree ? treeView(tree, run.id) : null,
  ].filter(Boolean));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function treeView(tree, here) {
  const runs = tree.executions;
  const t0 = Math.min(...runs.map((r) => Date.parse(r.execution_start)));
  const t1 = Math.max(...runs.map((r) => Date.parse(r.execution_end || r.last_seen_at || r.execution_start)));
  const span = Math.max(1, t1 - t0);
  const items = runs.map((r) => {
    const start = Date.parse(r.execution_start) - t0;
    const end = Date.parse(r.execution_end || r.last_seen_at || r.execution_start) - t0;
    const bar = h("span", { class: `s-${r.status}` });
    bar.style.left = `${(start / span) * 100}%`;
    bar.style.width = `${((end - start) / span) * 100}%`;
    const name = h("span", {}, link(`/ui/executions/${r.id}`, `${nameOf(r.agent)} · ${r.id.slice(0, 8)}`), " ", status(r.status));
    name.style.paddingLeft = `${r.depth * 16}px`;
    return h("li", { class: r.id === here ? "here" : "", "data-id": r.id, "data-depth": r.depth },
      name, h("span", { class: "gantt", "aria-hidden": "true" }, bar), h("span", { class: "num" }, duration(r.execution_time_ms)));
  });
  const note = tree.truncated ? h("p", { class: "muted" }, `Cut at its ${tree.truncated}: more runs lie below.`) : null;
  return h("section", { id: "tree" }, h("h2", {}, `Sub-runs (${runs.length - 1})`), h("ul", { class: "tree" }, items), note);
}
