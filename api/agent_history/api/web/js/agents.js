// The agents overview: every agent the caller may see, with its runs per day for two weeks.
import { query, request } from "./api.js";
import { everyBucket, sparkline } from "./charts.js";
import { duration, h, link, percent, when } from "./dom.js";

const DAYS = 14;
const PAGE = 60;

export async function agentsPage(main, signal) {
  const cards = h("div", { class: "cards", id: "agents" });
  const more = h("button", { type: "button", class: "ghost", hidden: true }, "More agents");
  main.replaceChildren(h("h1", {}, "Agents"), cards, h("p", {}, more));
  let offset = 0;
  const load = async () => {
    const page = await request(`/agents${query({ limit: PAGE, offset })}`, { signal });
    offset += page.agents.length;
    if (!page.agents.length && offset === 0) cards.append(h("p", { class: "muted" }, "No runs you may see yet."));
    const made = page.agents.map((agent) => card(agent));
    cards.append(...made.map(([el]) => el));
    more.hidden = page.agents.length < PAGE;
    trends(made, signal);
  };
  more.addEventListener("click", () => load());
  await load();
}

function card(agent) {
  const trend = h("div", { class: "trend" });
  const el = link(`/ui/agents/${agent.id}`,
    h("h2", {}, agent.name || agent.id),
    h("dl", { class: "kv" },
      h("dt", {}, "Runs"), h("dd", {}, agent.total.toLocaleString()),
      h("dt", {}, "Success"), h("dd", {}, percent(agent.success_rate)),
      h("dt", {}, "p95"), h("dd", {}, duration(agent.p95_ms) || "–"),
      h("dt", {}, "Last run"), h("dd", {}, when(agent.last_run_at) || "–"),
      h("dt", {}, `${DAYS} days`), h("dd", {}, trend)));
  el.classList.add("card", "panel");
  return [el, agent.id, trend];
}

// Runs per day of each agent, a few requests at a time.
async function trends(made, signal) {
  const today = new Date();
  today.setUTCHours(0, 0, 0, 0);
  const after = new Date(today.getTime() - (DAYS - 1) * 86_400_000).toISOString();
  const queue = [...made];
  const worker = async () => {
    while (queue.length && !signal.aborted) {
      const [, id, trend] = queue.shift();
      try {
        const stats = await request(`/agents/${id}/executions/stats${query({ started_after: after, interval: "day" })}`, { signal });
        const counts = everyBucket(stats.series || [], Date.parse(after), Date.now(), false).map((p) => p.total);
        trend.replaceChildren(sparkline(counts, `runs per day: ${counts.join(", ")}`));
      } catch {
        trend.textContent = "–";
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}
