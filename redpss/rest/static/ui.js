// The status page of redpss (/ui): reads the REST API with the operator's bearer token.
// The token comes from the sign-in box or from /ui#token=... (a fragment is never sent to the
// server; it is removed from the address bar) and is kept in sessionStorage (gone with the
// tab). An operator's token shows buttons; each action asks for a confirmation and the API
// writes its audit line. Nothing is loaded from outside the instance's own server.
"use strict";

const KEY = "redpss-token";
const REFRESH = Number(document.body.dataset.refresh) || 5;
const STATES = ["QUEUED", "RUNNING", "OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED", "KILLED"];
const BAD = { FAILED: 2, TIMEOUT: 2, KILLED: 1, ABORTED: 1, SKIPPED: 1 };
const COLORS = { OK: "#2a9d2a", FAILED: "#d62728", TIMEOUT: "#ff7f0e", ABORTED: "#9467bd",
  KILLED: "#8c564b", SKIPPED: "#7f7f7f", RUNNING: "#1f77b4", QUEUED: "#17becf" };
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
const $ = (id) => document.getElementById(id);

let me = null;          // {name, role} of the token
let offset = 0;         // runs paging
let jobsOffset = 0;     // jobs paging
const JOBS_PAGE = 100;  // jobs a page: 10 000 definitions at once took ~0.4 s a refresh
let lastCharts = 0;
let timer = null;

const hash = location.hash.match(/token=([^&]+)/);
if (hash) {
  sessionStorage.setItem(KEY, decodeURIComponent(hash[1]));
  history.replaceState(null, "", location.pathname);
}

class Unauthorized extends Error {}

async function call(path, method) {
  const token = sessionStorage.getItem(KEY) || "";
  const r = await fetch(path, { method, headers: { Authorization: "Bearer " + token } });
  if (r.status === 401) { throw new Unauthorized("token not accepted"); }
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail
      : JSON.stringify(body.detail)) : r.statusText;
    throw new Error(`${method} ${path}: ${r.status} ${detail}`);
  }
  return { r, body };
}

async function api(path, method = "GET") { return (await call(path, method)).body; }

// A page of a list that says in its Link header whether more follow (/api/jobs).
async function apiPage(path) {
  const { r, body } = await call(path, "GET");
  return { rows: body, more: /rel="next"/.test(r.headers.get("Link") || "") };
}

function showSignin(message) {
  me = null;
  $("signin").hidden = false; $("main").hidden = true; $("signout").hidden = true;
  $("instance-actions").textContent = ""; $("who").textContent = "";
  $("state").textContent = "not signed in"; $("state").className = "a1";
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function signin() {
  if (!sessionStorage.getItem(KEY)) { showSignin(""); return; }
  try {
    me = await api("/api/whoami");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    if (e instanceof Unauthorized) {
      showSignin("This token was not accepted (401): it is unknown or was revoked. Check it, " +
        "or make one with: restctl token add NAME --role reader|operator");
    } else {
      showSignin("The API did not answer: " + e.message);
    }
    return;
  }
  $("signin").hidden = true; $("main").hidden = false; $("signout").hidden = false;
  $("who").textContent = `signed in as ${me.name} (${me.role})`;
  await fillFilters();
  await refresh(true);
  if (timer === null) { timer = setInterval(() => refresh(false), REFRESH * 1000); }
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("token").value = "";
  signin();
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showSignin(""); });

function cellText(v) {
  if (v === null || v === undefined) { return "-"; }
  if (typeof v === "boolean") { return v ? "yes" : "no"; }
  if (typeof v === "number" && !Number.isInteger(v)) { return v.toFixed(1); }
  if (Array.isArray(v)) { return v.join(", "); }
  return String(v);
}

// rows as a table; opts: alert(row) -> 0/1/2, actions(row) -> [buttons] (operators only),
// onclick(row), cls(row)
function table(id, rows, cols, opts = {}) {
  const t = $(id); t.textContent = "";
  if (!rows.length) { t.insertRow().insertCell().textContent = "none"; return; }
  const acts = opts.actions && me && me.role === "operator";
  const h = t.createTHead().insertRow();
  for (const c of cols.concat(acts ? ["actions"] : [])) {
    const th = document.createElement("th"); th.textContent = c; h.appendChild(th);
  }
  const b = t.createTBody();
  for (const r of rows) {
    const tr = b.insertRow();
    if (opts.alert) { tr.className = "a" + opts.alert(r); }
    if (opts.onclick) { tr.classList.add("run"); tr.addEventListener("click", () => opts.onclick(r)); }
    for (const c of cols) {
      const td = tr.insertCell(); td.textContent = cellText(r[c]);
      if (c === "message" || c === "reason") { td.className = "msg"; }
    }
    if (acts) {
      const td = tr.insertCell();
      for (const button of opts.actions(r)) { td.appendChild(button); }
    }
  }
}

function ask(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// an operator's button: asks, then POSTs; the answer (or the refusal) is shown in #notice
function button(label, question, path) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.className = "act";
  b.addEventListener("click", async (e) => {
    e.stopPropagation();
    if (!(await ask(question))) { $("notice").textContent = `${label}: cancelled`; return; }
    try {
      const answer = await api(path, "POST");
      $("notice").textContent = `${label}: done (${JSON.stringify(answer)}); audited as token ${me.name}`;
    } catch (err) {
      $("notice").textContent = ""; $("err").textContent = `${label}: ${err.message}`;
    }
    await refresh(false);
  });
  return b;
}

const q = encodeURIComponent;

async function fillFilters() {
  const state = $("f-state");
  if (state.options.length === 1) {
    for (const s of STATES) { state.add(new Option(s, s)); }
  }
}

$("jobs-prev").addEventListener("click", () => { jobsOffset = Math.max(0, jobsOffset - JOBS_PAGE); part(definitions).then(done); });
$("jobs-next").addEventListener("click", () => { jobsOffset += JOBS_PAGE; part(definitions).then(done); });
$("runfilter").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; part(runs).then(done); });
$("prev").addEventListener("click", () => { offset = Math.max(0, offset - limit()); part(runs).then(done); });
$("next").addEventListener("click", () => { offset += limit(); part(runs).then(done); });

function limit() { return Number($("f-limit").value); }

function iso(local) { return local ? new Date(local).toISOString() : ""; }

async function runs() {
  const params = [`limit=${limit()}`, `offset=${offset}`];
  if ($("f-job").value) { params.push("job=" + q($("f-job").value)); }
  if ($("f-state").value) { params.push("state=" + q($("f-state").value)); }
  if ($("f-since").value) { params.push("since=" + q(iso($("f-since").value))); }
  if ($("f-until").value) { params.push("until=" + q(iso($("f-until").value))); }
  const r = await api("/api/runs?" + params.join("&"));
  $("page").textContent = r.runs.length
    ? `runs ${offset + 1}-${offset + r.runs.length}` + (r.more ? "" : " (the last page)")
    : "no runs match";
  $("prev").disabled = offset === 0; $("next").disabled = !r.more;
  table("runs", r.runs, ["run_id", "name", "pool", "state", "queued_at", "duration", "rows", "message"], {
    alert: (x) => BAD[x.state] || 0,
    onclick: (x) => part(() => runDetail(x.run_id)).then(done),
    actions: (x) => (x.state === "RUNNING" || x.state === "QUEUED")
      ? [button("kill", `Kill run ${x.run_id} of job ${x.name}?`, `/api/runs/${x.run_id}/kill`)] : [],
  });
}

async function runDetail(id) {
  const d = await api(`/api/runs/${id}`);
  $("run-detail").hidden = false;
  $("run-title").textContent = `run ${d.run.run_id} of ${d.run.name}: ${d.run.state}`;
  $("run-message").textContent = "message: " + (d.run.message || "(none)");
  $("run-log").textContent = d.log.length ? d.log.join("\n") : "(no lines name this run in log/*.log)";
}

async function status() {
  const s = await api("/api/status");
  const st = $("state"); st.textContent = s.state;
  st.className = "a" + (s.exit_code === 0 ? 0 : s.exit_code === 1 ? 1 : 2);
  table("roles", s.roles, ["role", "state", "pid", "heartbeat_age", "restarts", "alert", "reason"],
    { alert: (r) => r.alert });
  const acts = $("instance-actions"); acts.textContent = "";
  if (me && me.role === "operator") {
    acts.appendChild(s.suspended
      ? button("resume", `Resume instance ${s.instance}: jobs and watchers start again?`, "/api/resume")
      : button("suspend", `Suspend instance ${s.instance}: no job or watcher is started?`, "/api/suspend"));
  }
}

async function show() {
  const s = await api("/api/show");
  table("pools", Object.entries(s.pools).map(([p, v]) => ({ pool: p, ...v })), ["pool", "size", "busy", "queued"]);
  table("running", s.running, ["run_id", "job", "kind", "pool", "started", "duration", "pid"], {
    actions: (x) => [button("kill", `Kill run ${x.run_id} of job ${x.job}?`, `/api/runs/${x.run_id}/kill`)],
  });
}

async function definitions() {
  const page = await apiPage(`/api/jobs?limit=${JOBS_PAGE}&offset=${jobsOffset}`);
  const jobs = page.rows;
  $("jobs-page").textContent = jobs.length
    ? `jobs ${jobsOffset + 1}-${jobsOffset + jobs.length}` + (page.more ? ", more follow" : " (the last page)")
    : "no jobs";
  $("jobs-prev").disabled = jobsOffset === 0; $("jobs-next").disabled = !page.more;
  const names = $("f-jobs"); names.textContent = "";  // the run filter's suggestions
  for (const j of jobs) { names.appendChild(new Option(j.job, j.job)); }
  table("jobs", jobs, ["job", "schema", "kind", "pool", "schedule", "active", "last_state", "last_run", "next_run", "alert", "reason"], {
    alert: (j) => j.alert,
    actions: (j) => [
      button("start", `Start job ${j.job} now?`, `/api/jobs/${q(j.job)}/start`),
      button(j.active ? "deactivate" : "activate", `${j.active ? "Deactivate" : "Activate"} job ${j.job}?`, `/api/jobs/${q(j.job)}/toggle`),
    ],
  });
  const watchers = await api("/api/watchers");
  table("watchers", watchers, ["watcher", "schema", "kind", "watch", "interval", "executor", "active", "errors"], {
    alert: (w) => (w.errors ? 2 : 0),
    actions: (w) => {
      const b = [button(w.active ? "deactivate" : "activate", `${w.active ? "Deactivate" : "Activate"} watcher ${w.watcher}?`, `/api/watchers/${q(w.watcher)}/toggle`)];
      if (w.errors) { b.push(button("reset errors", `Reset the ${w.errors} executor error(s) of watcher ${w.watcher}? Their keys are tried again.`, `/api/watchers/errors/reset?watcher=${q(w.watcher)}`)); }
      return b;
    },
  });
  table("we", await api("/api/watchers/errors"), ["watcher", "key", "count", "last_seen", "message"], {
    alert: () => 2,
    actions: (e) => [button("reset", `Reset the error of watcher ${e.watcher} for ${e.key}?`, `/api/watchers/errors/reset?watcher=${q(e.watcher)}&key=${q(e.key)}`)],
  });
  table("loaders", await api("/api/loaders"), ["loader", "pattern", "schema", "table", "format", "active", "jobs"]);
}

async function services() {
  const l = await api("/api/landing");
  table("landing", [l], ["input", "work", "error", "archive"], { alert: () => (l.error ? 1 : 0) });
  table("lerr", await api("/api/landing/errors?limit=20"), ["name", "reason", "loader", "time"], { alert: () => 2 });
  const m = await api("/api/sendmail");
  table("mail", [m], Object.keys(m), { alert: () => (m.dead ? 2 : m.queue ? 1 : 0) });
  table("mails", await api("/api/sendmail/mails?limit=20"), ["folder", "subject", "rcpt", "attempts", "last_error", "reason"], { alert: (x) => (x.folder === "dead" ? 2 : 1) });
  table("logmsg", await api("/api/log_messages?limit=20"), ["log_ts", "level", "schema", "source", "message"], { alert: (x) => (x.level === "ALERT" ? 2 : 1) });
}

function plot(id, data, series, opts = {}) {
  const el = $(id); el.textContent = "";
  const names = Object.keys(data.series);
  if (!data.x.length || !names.length) { el.textContent = "no data"; return; }
  const cols = [data.x].concat(names.map((n) => data.series[n]));
  const ser = [{}].concat(names.map((n, i) => Object.assign({ label: n, stroke: series(n, i), width: 2, spanGaps: true }, opts.series || {})));
  const span = data.range || [data.x[0], data.x[data.x.length - 1]];
  const scales = { x: { time: true, range: () => span }, y: { range: (u, lo, hi) => [0, Math.max(hi, 1)] } };
  new uPlot({ width: 420, height: 220, series: ser, axes: [{}, { size: 50 }], scales }, cols, el);
}

async function charts() {
  const runsPerHour = await api("/api/charts/runs_per_hour");
  plot("chart-runs", runsPerHour, (n) => COLORS[n] || "#333");
  const rows = await api("/api/charts/load_rows_per_hour");
  plot("chart-rows", rows, () => "#1f77b4", { series: { fill: "rgba(31,119,180,0.25)" } });
  const durations = await api("/api/charts/durations");
  plot("chart-durations", durations, (n, i) => PALETTE[i % PALETTE.length], { series: { points: { show: true } } });
}

let errors = [];
async function part(fn) {
  try { await fn(); } catch (e) {
    if (e instanceof Unauthorized) { throw e; }
    errors.push(e.message);
  }
}
function done() { $("err").textContent = errors.join("; "); errors = []; }

async function refresh(full) {
  if (!me) { return; }
  errors = [];
  try {
    await part(status); await part(show); await part(definitions); await part(runs); await part(services);
    if (full || Date.now() - lastCharts > 60000) { lastCharts = Date.now(); await part(charts); }
  } catch (e) {
    sessionStorage.removeItem(KEY);
    showSignin("The token is no longer accepted (401): it was revoked. Sign in again.");
    return;
  }
  done();
  $("stamp").textContent = "updated " + new Date().toISOString() + ` (every ${REFRESH} s)`;
  document.body.dataset.loaded = "yes";
}

signin();
