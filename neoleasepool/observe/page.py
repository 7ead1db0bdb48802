"""The status page: one self-contained HTML document (inline CSS and script).

The page needs nothing from outside: no CDN, no web font, no image. Its
script fetches ``status.json`` about once a second (passing the page's own
``?token=`` along, if it has one) and redraws the page from it with DOM
calls only (``textContent``, ``setAttribute``: a name that looks like HTML
stays text). The plots are inline SVG drawn by the script.

Every figure carries data attributes, so a test (or a scraper) can read it
from the rendered DOM without parsing the text: ``data-manager``,
``data-grinder``, ``data-aloop`` or ``data-worker`` names the part,
``data-field`` the figure (a key of ``status.json``), ``data-value`` the
raw number (empty for "n/a"). ``#updated`` carries ``data-time`` (the
reading's Unix time) and ``data-updates`` (fetches rendered so far).

The server sends the page with a Content-Security-Policy that allows this
script only, by its hash (:data:`SCRIPT_SHA256`).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["PAGE", "SCRIPT_SHA256"]

_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --mute: #5f6b7a; --line: #d8dde5;
  --bg: #f6f7f9; --card: #fff; --ok: #1f7a3d; --bad: #b42318; --a: #2563eb; --b: #d97706; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px; background: var(--bg); color: var(--ink);
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; margin-bottom: 12px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 14px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--mute); }
h3 { font-size: 14px; margin: 0 0 6px; }
.mute { color: var(--mute); }
.badge { padding: 1px 8px; border-radius: 9px; background: var(--line); font-size: 12px; }
.badge.ok { background: #dcf3e3; color: var(--ok); }
.badge.bad { background: #fde2df; color: var(--bad); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 12px; min-width: 300px; }
table { border-collapse: collapse; background: var(--card); }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
th { color: var(--mute); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.msg { white-space: normal; max-width: 520px; overflow-wrap: anywhere; }
.plots { display: flex; gap: 14px; flex-wrap: wrap; margin-top: 8px; }
figure.plot { margin: 0; }
.plot figcaption { font-size: 11px; color: var(--mute); }
svg.spark { display: block; background: #fbfcfd; border: 1px solid var(--line); }
svg.spark path { fill: none; stroke-width: 1.5; }
path.a { stroke: var(--a); } path.b { stroke: var(--b); }
#error { color: var(--bad); }
.empty { color: var(--mute); font-style: italic; }
"""

_SCRIPT = r"""
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const SOURCE = "status.json" + (token ? "?token=" + encodeURIComponent(token) : "");
const SVGNS = "http://www.w3.org/2000/svg";
let updates = 0;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const kid of kids) {
    if (kid !== undefined && kid !== null) e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}
function num(v, digits) {
  if (v === null || v === undefined) return "n/a";
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toFixed(digits === undefined ? 1 : digits);
}
function secs(v) {
  if (v === null || v === undefined) return "n/a";
  if (v < 0.001) return (v * 1e6).toFixed(0) + " \u00b5s";
  if (v < 1) return (v * 1e3).toFixed(1) + " ms";
  return v.toFixed(2) + " s";
}
function clock(t) { return t ? new Date(t * 1000).toLocaleTimeString("en-GB") : "n/a"; }
function cell(kind, name, field, value, text, cls) {
  const raw = value === null || value === undefined ? "" : value;
  const attrs = {"data-field": field, "data-value": raw, "class": cls === undefined ? "num" : cls};
  attrs["data-" + kind] = name;
  return el("td", attrs, text === undefined ? num(value) : text);
}
function table(heads, rows, emptyText) {
  if (!rows.length) return el("p", {"class": "empty"}, emptyText);
  return el("table", {}, el("thead", {}, el("tr", {}, ...heads.map(h => el("th", {}, h)))),
            el("tbody", {}, ...rows));
}
function spark(caption, lines, fmt, attrs, small) {
  const w = small ? 160 : 200, h = small ? 24 : 46, pad = 3;
  let max = 0;
  for (const line of lines) for (const v of line.values) if (v !== null && v > max) max = v;
  const top = max > 0 ? max : 1;
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", caption);
  for (const line of lines) {
    const n = line.values.length;
    let d = "", pen = false;
    line.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = pad + (w - 2 * pad) * (n <= 1 ? 1 : i / (n - 1));
      const y = h - pad - (h - 2 * pad) * v / top;
      d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + " ";
      pen = true;
    });
    const path = document.createElementNS(SVGNS, "path");
    path.setAttribute("class", line.cls);
    path.setAttribute("d", d.trim() || "M0 0");
    svg.append(path);
  }
  const last = lines.map(l => l.values.length ? l.values[l.values.length - 1] : null);
  return el("figure", Object.assign({"class": "plot"}, attrs || {}), svg,
            el("figcaption", {}, caption + ": now " + last.map(fmt).join(" / ") +
               ", top " + (max > 0 ? fmt(max) : "n/a")));
}

function managers(s) {
  return s.managers.map(m => {
    const c = (f, text) => cell("manager", m.name, f, m[f], text);
    const pools = table(["backend", "state", "desired", "total", "leased", "available",
                         "waiting", "max", "granted", "revoked"],
      [el("tr", {}, cell("manager", m.name, "backend", m.backend, m.backend, ""),
          cell("manager", m.name, "state", m.state, m.state, ""), c("desired"), c("total"),
          c("leased"), c("available"), c("waiting"), c("max_pools"), c("leases_granted"),
          c("leases_revoked"))], "");
    const leases = table(["owner", "state", "pending", "soft expiry in", "hard expiry in"],
      m.leases.map(l => el("tr", {"data-manager": m.name, "data-lease": l.lease_id},
        el("td", {"data-field": "owner"}, l.owner), el("td", {"data-field": "state"}, l.state),
        el("td", {"class": "num", "data-field": "pending", "data-value": l.pending},
           num(l.pending)),
        el("td", {"class": "num", "data-field": "seconds_to_soft_expiry",
                  "data-value": l.seconds_to_soft_expiry}, secs(l.seconds_to_soft_expiry)),
        el("td", {"class": "num", "data-field": "seconds_to_hard_expiry",
                  "data-value": l.seconds_to_hard_expiry}, secs(l.seconds_to_hard_expiry)))),
      "no leases out");
    return el("div", {"class": "card", "data-manager-card": m.name},
              el("h3", {}, "manager " + m.name), pools, el("h3", {}, "leases"), leases);
  });
}

function grinders(s) {
  return s.grinders.map(g => {
    const c = (f, text) => cell("grinder", g.name, f, g[f], text);
    const m = g.minute, na = !g.latency_measured;
    const counts = table(["state", "queue", "running", "submitted", "completed", "failed",
                          "cancelled", "timed out"],
      [el("tr", {}, cell("grinder", g.name, "state", g.state, g.state, ""), c("pending"),
          c("running"), c("submitted"), c("completed"), c("failed"), c("cancelled"),
          c("timed_out"))], "");
    const minute = table(["last minute: items/s", "p50", "p95"],
      [el("tr", {},
        cell("grinder", g.name, "items_per_second", m.items_per_second, num(m.items_per_second)),
        cell("grinder", g.name, "p50_seconds", m.p50_seconds, na ? "n/a" : secs(m.p50_seconds)),
        cell("grinder", g.name, "p95_seconds", m.p95_seconds, na ? "n/a" : secs(m.p95_seconds)))],
      "");
    const ser = g.series;
    const plots = el("div", {"class": "plots"},
      spark("queue depth", [{values: ser.queue, cls: "a"}], v => num(v),
            {"data-grinder": g.name, "data-plot": "queue"}),
      spark("items/s", [{values: ser.items_per_second, cls: "a"}], v => num(v),
            {"data-grinder": g.name, "data-plot": "items_per_second"}),
      na ? el("p", {"class": "empty", "data-grinder": g.name, "data-plot": "latency"},
              "latency n/a (metrics=False)")
         : spark("latency p50 / p95", [{values: ser.p50_seconds, cls: "a"},
                                        {values: ser.p95_seconds, cls: "b"}], secs,
                 {"data-grinder": g.name, "data-plot": "latency"}));
    return el("div", {"class": "card", "data-grinder-card": g.name},
              el("h3", {}, "grinder " + g.name, el("span", {"class": "mute"}, " on " + g.manager)),
              counts, minute, plots);
  });
}

function aloops(s) {
  return table(["aloop", "active", "tasks", "lag", "max lag (1 min)", "lag, last 2 min"],
    s.aloops.map(a => el("tr", {"data-aloop-row": a.name},
      el("td", {}, a.name + (a.own ? " (supervisor's own)" : "")),
      cell("aloop", a.name, "active", a.active ? 1 : 0, a.active ? "yes" : "no", ""),
      cell("aloop", a.name, "tasks", a.tasks),
      cell("aloop", a.name, "lag_seconds", a.lag_seconds, secs(a.lag_seconds)),
      cell("aloop", a.name, "lag_max_seconds", a.lag_max_seconds, secs(a.lag_max_seconds)),
      el("td", {}, spark("lag", [{values: a.series.lag_seconds, cls: "a"}], secs,
                         {"data-aloop": a.name, "data-plot": "lag"}, true)))),
    "no aloops");
}

function workers(s) {
  return table(["worker", "kind", "state", "runs", "errors", "last run"],
    s.workers.map(w => el("tr", {"data-worker-row": w.name}, el("td", {}, w.name),
      cell("worker", w.name, "kind", w.kind, w.kind, ""),
      cell("worker", w.name, "state", w.state, w.state, ""),
      cell("worker", w.name, "runs", w.runs), cell("worker", w.name, "errors", w.errors),
      cell("worker", w.name, "last_run_age_seconds", w.last_run_age_seconds,
           w.last_run_age_seconds === null ? "never" : secs(w.last_run_age_seconds) + " ago"))),
    "no background workers");
}

function failures(s) {
  return table(["time", "where", "error", "message"],
    s.failures.slice().reverse().map(f => el("tr", {"data-failure": f.source},
      el("td", {"data-field": "time", "data-value": f.time}, clock(f.time)),
      el("td", {"data-field": "where"},
         f.kind + " " + f.source + (f.where && f.where !== f.source ? ": " + f.where : "")),
      el("td", {"data-field": "error"}, f.error),
      el("td", {"data-field": "message", "class": "msg"}, f.message))),
    "no failures");
}

function render(s) {
  const sup = document.getElementById("supervisor");
  sup.textContent = "supervisor " + s.supervisor.id + " \u00b7 neoleasepool " + s.version;
  const state = document.getElementById("state");
  state.textContent = s.supervisor.active ? "active"
                    : (s.supervisor.stopping ? "stopping" : "stopped");
  state.className = "badge " + (s.supervisor.active ? "ok" : "bad");
  const none = what => [el("p", {"class": "empty"}, "no " + what)];
  const ms = managers(s), gs = grinders(s);
  document.getElementById("managers").replaceChildren(...(ms.length ? ms : none("lease managers")));
  document.getElementById("grinders").replaceChildren(...(gs.length ? gs : none("grinders")));
  document.getElementById("aloops").replaceChildren(aloops(s));
  document.getElementById("workers").replaceChildren(workers(s));
  document.getElementById("failures").replaceChildren(failures(s));
  updates += 1;
  const stamp = document.getElementById("updated");
  stamp.textContent = "updated " + clock(s.time);
  stamp.setAttribute("data-time", s.time);
  stamp.setAttribute("data-updates", updates);
  document.getElementById("error").textContent = "";
}

async function refresh() {
  try {
    const answer = await fetch(SOURCE, {cache: "no-store"});
    if (!answer.ok) throw new Error("status.json answered " + answer.status);
    render(await answer.json());
  } catch (err) {
    document.getElementById("error").textContent = "not updating: " + err.message;
  }
  setTimeout(refresh, 1000);
}
refresh();
"""

#: The script's hash, for the page's Content-Security-Policy.
SCRIPT_SHA256 = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

#: The whole page, UTF-8 text.
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>neoleasepool status</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>neoleasepool status</h1>
<span id="supervisor" class="mute">loading...</span>
<span id="state" class="badge">?</span>
<span id="updated" class="mute" data-time="" data-updates="0">not updated yet</span>
<span id="error"></span>
</header>
<h2>lease managers</h2><div id="managers" class="cards"></div>
<h2>grinders</h2><div id="grinders" class="cards"></div>
<h2>aloops</h2><div id="aloops"></div>
<h2>background workers</h2><div id="workers"></div>
<h2>last failures</h2><div id="failures"></div>
<script>{_SCRIPT}</script>
</body>
</html>
"""
