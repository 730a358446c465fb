// Hand-drawn SVG charts from the stats series: no library, classes carry the theme's colours.
import { duration, h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
export const STATUSES = ["completed", "failed", "timed_out", "cancelled", "running", "pending"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function svg(width, height, label) {
  return s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
}

export function sparkline(values, label) {
  const width = 120, height = 28;
  const top = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  const chart = svg(width, height, label);
  chart.append(s("polyline", { class: "spark", points: points.join(" ") }));
  return chart;
}

// The stats series holds the buckets that have runs; a chart's time axis needs every bucket,
// an empty one drawn as nothing (no bar, no point), not closed up.
export function everyBucket(series, from, to, hourly) {
  const step = hourly ? 3_600_000 : 86_400_000;
  const had = new Map(series.map((p) => [new Date(p.start).getTime(), p]));
  const points = [];
  for (let t = Math.floor(from / step) * step; t < to; t += step) {
    points.push(had.get(t) || { start: new Date(t).toISOString(), total: 0, counts: {}, execution_time_ms: { p50: null, p95: null } });
  }
  return points;
}

function day(iso, hourly) {
  const d = new Date(iso);
  return hourly ? `${d.getHours()}:00` : `${d.getMonth() + 1}/${d.getDate()}`;
}

function frame(chart, width, height, pad, top, format, series, hourly) {
  chart.append(s("line", { class: "axis", x1: pad, y1: height - 16, x2: width, y2: height - 16 }));
  chart.append(s("text", { x: 0, y: 10 }, format(top)));
  if (series.length) {
    chart.append(s("text", { x: pad, y: height - 3 }, day(series[0].start, hourly)));
    chart.append(s("text", { x: width, y: height - 3, "text-anchor": "end" }, day(series[series.length - 1].start, hourly)));
  }
}

export function statusBars(series, hourly) {
  const width = 480, height = 160, pad = 34, plot = height - 26;
  const top = Math.max(1, ...series.map((p) => p.total));
  const chart = svg(width, height, "Runs by status over time");
  frame(chart, width, height, pad, top, String, series, hourly);
  const slot = (width - pad) / Math.max(1, series.length);
  series.forEach((point, i) => {
    let y = height - 16;
    for (const status of STATUSES) {
      const n = point.counts[status];
      if (!n) continue;
      const bar = (n / top) * (plot - 4);
      y -= bar;
      chart.append(s("rect", {
        class: `fill-${status}`, x: (pad + i * slot + slot * 0.1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, slot * 0.8).toFixed(1), height: bar.toFixed(1),
      }, s("title", {}, `${day(point.start, hourly)}: ${n} ${status}`)));
    }
  });
  const legend = h("div", { class: "legend" }, STATUSES.map((st) => h("span", { class: `status s-${st}` }, st.replace("_", " "))));
  return h("figure", { class: "chart panel" }, h("figcaption", {}, "Runs by status"), chart, legend);
}

export function durationLines(series, hourly) {
  const width = 480, height = 160, pad = 34, plot = height - 26;
  const values = series.flatMap((p) => [p.execution_time_ms.p50, p.execution_time_ms.p95]).filter((v) => v !== null);
  const top = Math.max(1, ...values);
  const chart = svg(width, height, "p50 and p95 duration over time");
  frame(chart, width, height, pad, top, duration, series, hourly);
  const slot = (width - pad) / Math.max(1, series.length);
  for (const name of ["p50", "p95"]) {
    const points = [];
    series.forEach((p, i) => {
      const v = p.execution_time_ms[name];
      if (v !== null) points.push(`${(pad + (i + 0.5) * slot).toFixed(1)},${(height - 16 - (v / top) * (plot - 4)).toFixed(1)}`);
    });
    if (points.length) chart.append(s("polyline", { class: name, points: points.join(" ") }, s("title", {}, name)));
  }
  const legend = h("div", { class: "legend" }, h("span", {}, "— p50 (blue)"), h("span", {}, "— p95 (orange)"));
  return h("figure", { class: "chart panel" }, h("figcaption", {}, "Duration p50 / p95"), chart, legend);
}
