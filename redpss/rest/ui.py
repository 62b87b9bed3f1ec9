"""``/ui``: the status page, plain HTML and a little JS (no build step).

The page itself holds no data and needs no token; its script reads the JSON API with a token
the operator gives it once: typed into the page, or passed as ``/ui#token=...`` (a fragment is
never sent to the server). The token is kept in ``sessionStorage`` (gone with the tab) and the
fragment is removed from the address bar. It refreshes itself every :data:`REFRESH_SECONDS`.
"""

from __future__ import annotations

import html

__all__ = ["REFRESH_SECONDS", "page"]

REFRESH_SECONDS = 5

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redpss %(instance)s</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
th { border-bottom: 1px solid #999; }
.a0 { background: #c8f0c8; } .a1 { background: #ffe08a; } .a2 { background: #f5a3a3; }
#state { padding: 2px 8px; border-radius: 4px; } #err { color: #b00; }
.muted { color: #777; }
</style></head>
<body>
<h1>redpss instance <b>%(instance)s</b>: <span id="state" class="a1">loading…</span></h1>
<form id="login" hidden>token: <input id="token" type="password" size="50">
<button>show</button></form>
<p id="err"></p><p class="muted" id="stamp"></p>
<h2>Roles</h2><table id="roles"></table>
<h2>Pools</h2><table id="pools"></table>
<h2>Running</h2><table id="running"></table>
<h2>Recent runs</h2><table id="runs"></table>
<h2>Watcher executor errors</h2><table id="we"></table>
<h2>Landing zone</h2><table id="landing"></table><table id="lerr"></table>
<h2>SENDMAIL spool</h2><table id="mail"></table>
<script>
"use strict";
const KEY = "redpss-token";
const m = location.hash.match(/token=([^&]+)/);
if (m) { sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
         history.replaceState(null, "", location.pathname); }
const $ = (id) => document.getElementById(id);
$("login").addEventListener("submit", (e) => { e.preventDefault();
  sessionStorage.setItem(KEY, $("token").value); refresh(); });
async function get(path) {
  const auth = {Authorization: "Bearer " + sessionStorage.getItem(KEY)};
  const r = await fetch(path, {headers: auth});
  if (r.status === 401) { $("login").hidden = false; throw new Error("token needed"); }
  if (!r.ok) { throw new Error(path + ": " + r.status + " " + (await r.text())); }
  return r.json();
}
function table(id, rows, cols, alertOf) {
  const t = $(id); t.textContent = "";
  if (!rows.length) { t.insertRow().insertCell().textContent = "none"; return; }
  const h = t.createTHead().insertRow();
  for (const c of cols) {
    const th = document.createElement("th"); th.textContent = c; h.appendChild(th); }
  const b = t.createTBody();
  for (const r of rows) {
    const tr = b.insertRow();
    if (alertOf) { tr.className = "a" + alertOf(r); }
    for (const c of cols) { const v = r[c];
      tr.insertCell().textContent = v === null || v === undefined ? "-" :
        (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v)); }
  }
}
async function part(fn) { try { await fn(); } catch (e) { errors.push(e.message); } }
let errors = [];
async function refresh() {
  if (!sessionStorage.getItem(KEY)) { $("login").hidden = false; return; }
  errors = [];
  await part(async () => { const s = await get("/api/status");
    const st = $("state"); st.textContent = s.state;
    st.className = "a" + (s.exit_code === 0 ? 0 : s.exit_code === 1 ? 1 : 2);
    const cols = ["role", "state", "pid", "heartbeat_age", "restarts", "alert", "reason"];
    table("roles", s.roles, cols, (r) => r.alert); $("login").hidden = true; });
  await part(async () => { const s = await get("/api/show");
    table("pools", Object.entries(s.pools).map(([p, v]) => ({pool: p, ...v})),
          ["pool", "size", "busy", "queued"]);
    table("running", s.running, ["run_id", "job", "pool", "started", "duration", "pid"]); });
  await part(async () => { const r = await get("/api/runs?limit=15");
    const bad = {FAILED: 2, TIMEOUT: 2, ABORTED: 1};
    table("runs", r.runs, ["run_id", "name", "pool", "state", "queued_at", "ended_at", "message"],
          (x) => bad[x.state] || 0); });
  await part(async () => { table("we", await get("/api/watchers/errors"),
          ["watcher", "key", "count", "last_seen", "message"], () => 2); });
  await part(async () => { const l = await get("/api/landing");
    table("landing", [l], ["input", "work", "error", "archive"], () => (l.error ? 1 : 0));
    const errs = await get("/api/landing/errors?limit=10");
    table("lerr", errs, ["name", "reason", "time"], () => 2); });
  await part(async () => { const q = await get("/api/sendmail");
    table("mail", [q], Object.keys(q), () => (q.dead ? 2 : 0)); });
  $("err").textContent = errors.join("; ");
  $("stamp").textContent = "updated " + new Date().toISOString() + " (every %(refresh)d s)";
}
refresh(); setInterval(refresh, %(refresh)d * 1000);
</script></body></html>
"""


def page(instance: str) -> str:
    """The HTML of the status page of ``instance``."""
    return _PAGE % {"instance": html.escape(instance), "refresh": REFRESH_SECONDS}
