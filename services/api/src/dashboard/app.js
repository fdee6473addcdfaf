// sitetally dashboard: sites table (sortable) and a per-site SVG chart of daily counts
// with tier boundaries and the forecast. Plain DOM, no libraries; every value from the
// API is inserted as text, never as HTML.
"use strict";

const state = { token: "", tenant: "", sites: [], sort: { key: "utilisation", dir: -1 }, site: "" };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// Severity order for sorting by status (most urgent first when descending).
const SEVERITY = ["WITHIN_TIER", "TRIAL_ENDING", "NEAR_LIMIT", "TRIAL_OVER_ALLOWANCE", "GRACE_PERIOD",
  "RETENTION_ENDING", "POSSIBLY_OVER", "UNLICENSED", "OVER_TIER", "SERVICE_STOPPED", "RETENTION_OVER", "BILLED_NO_PLAN"];

function message(text) { $("message").textContent = text || ""; }

async function api(path) {
  const resp = await fetch(path, { headers: { "Authorization": "Bearer " + state.token, "Accept": "application/json" } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = body.error || {};
    const err = new Error(`${resp.status} ${e.code || ""}: ${e.message || resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

const enc = encodeURIComponent;

async function connect() {
  state.token = $("token").value.trim();
  sessionStorage.setItem("sitetally-token", state.token);
  message("");
  try {
    const t = await api("/api/v1/tenants");
    const sel = $("tenant");
    sel.replaceChildren(...t.tenants.map((id) => { const o = document.createElement("option"); o.value = id; o.textContent = id; return o; }));
    sel.disabled = t.tenants.length === 0;
    if (state.tenant && t.tenants.includes(state.tenant)) sel.value = state.tenant;
    if (t.tenants.length) await loadSites(sel.value);
    else message("this token sees no tenants");
  } catch (e) {
    if (e.status === 401 && !state.token) {
      // No token yet: ask for one instead of greeting with an error.
      message("Enter an API token (admin, or your tenant's) to see your sites.");
      document.body.dataset.state = "needs-token";
      $("token").focus();
    } else { message(e.message); document.body.dataset.state = "error"; }
  }
}

async function loadSites(tenant) {
  state.tenant = tenant;
  const r = await api(`/api/v1/tenants/${enc(tenant)}/sites?limit=1000`);
  state.sites = r.sites;
  $("as-of").textContent = `${tenant}, billing window ${r.window_days} days, as of ${r.as_of.slice(0, 16).replace("T", " ")} UTC`;
  renderSites();
  document.body.dataset.state = "sites-loaded";
  const pick = state.site && r.sites.find((s) => s.site === state.site) ? state.site : (r.sites[0] || {}).site;
  if (pick) await loadChart(pick);
}

function sortValue(s, key) {
  switch (key) {
    case "utilisation": return s.utilisation == null ? -1 : s.utilisation;
    case "status": return SEVERITY.indexOf(s.status);
    case "devices": return s.devices;
    case "licensed": return s.licensed_capacity == null ? -1 : s.licensed_capacity;
    case "required": return s.required_tier || "";
    default: return s.site;
  }
}

function renderSites() {
  const { key, dir } = state.sort;
  const rows = [...state.sites].sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : a.site.localeCompare(b.site)) * dir;
  });
  document.querySelectorAll("#sites th").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.sort === key && dir === 1);
    th.classList.toggle("sorted-desc", th.dataset.sort === key && dir === -1);
  });
  const tbody = $("sites").tBodies[0];
  tbody.replaceChildren(...rows.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.site = s.site;
    if (s.site === state.site) tr.classList.add("selected");
    const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.append(td); return td; };
    cell(s.site);
    cell(s.error_bound > 0 ? `${s.devices} ±${s.error_bound}` : String(s.devices), "num");
    cell(s.licensed_tier ? `${s.licensed_tier} (${s.licensed_capacity})` : "—");
    cell(s.required_tier || "—");
    const u = cell("", "num");
    if (s.utilisation != null) {
      const bar = document.createElement("span");
      bar.className = "bar" + (s.utilisation > 1 ? " over" : s.utilisation >= 0.9 ? " near" : "");
      bar.style.width = `${Math.min(80, Math.round(s.utilisation * 60))}px`;
      u.append(bar, `${(s.utilisation * 100).toFixed(0)}%`);
    } else u.textContent = "—";
    const st = cell(s.status_detail, "status " + s.status);
    st.title = s.notes.join("; ");
    tr.addEventListener("click", () => loadChart(s.site));
    return tr;
  }));
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

const DAY = 86400000;
const dayOf = (iso) => Date.parse(iso + "T00:00:00Z") / DAY;
const isoOf = (d) => new Date(d * DAY).toISOString().slice(0, 10);

async function loadChart(site) {
  state.site = site;
  document.querySelectorAll("#sites tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.site === site));
  try {
    const f = await api(`/api/v1/tenants/${enc(state.tenant)}/sites/${enc(site)}/forecast?history_days=90&horizon_days=365`);
    drawChart(f);
    document.body.dataset.state = "chart-drawn";
  } catch (e) { message(e.message); }
}

function drawChart(f) {
  $("chart-section").hidden = false;
  $("chart-title").textContent = `${f.tenant} / ${f.site}: daily devices, tiers and forecast`;
  $("forecast-summary").textContent = `${f.outlook.replace(/_/g, " ")}: ${f.summary}`;
  const svg = $("chart");
  svg.replaceChildren();
  const W = 900, H = 380, L = 60, R = 70, T = 16, B = 36;
  const today = dayOf(f.as_of);
  const first = f.history.length ? dayOf(f.history[0].date) : today - 30;
  const cross = f.latest || f.crossing_date || f.earliest;
  let last = today + 30;
  if (cross) last = Math.max(last, dayOf(cross) + 14);
  last = Math.min(last, today + f.horizon_days);
  const trendAt = (d) => f.trend ? f.trend.today + f.trend.slope_per_day * (d - today) : null;
  const maxHist = Math.max(0, ...f.history.map((p) => p.devices));
  const target = f.target ? f.target.devices : 0;
  let ymax = Math.max(maxHist, target, f.current.devices, 10) * 1.15;
  if (f.trend) ymax = Math.max(ymax, Math.min(trendAt(last), target * 1.5 || trendAt(last)));
  const x = (d) => L + (d - first) / Math.max(1, last - first) * (W - L - R);
  const y = (v) => H - B - Math.max(0, v) / ymax * (H - T - B);

  svg.append(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    svg.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, Math.round(v)));
  }
  for (let i = 0; i <= 5; i++) {
    const d = Math.round(first + (last - first) * i / 5);
    svg.append(el("text", { x: x(d), y: H - B + 16, "text-anchor": "middle" }, isoOf(d)));
  }
  svg.append(el("line", { class: "today", x1: x(today), y1: T, x2: x(today), y2: H - B }));
  svg.append(el("text", { x: x(today) + 3, y: T + 10 }, "today"));

  for (const b of f.boundaries.filter((b) => b.devices <= ymax)) {
    const isTarget = f.target && b.devices === f.target.devices;
    svg.append(el("line", { class: "boundary" + (isTarget ? " target" : ""), x1: L, y1: y(b.devices), x2: W - R, y2: y(b.devices) }));
    svg.append(el("text", { x: W - R + 4, y: y(b.devices) + 4 }, `${b.label} ${b.devices}`));
  }
  if (f.earliest) {
    const x0 = x(dayOf(f.earliest)), x1 = x(f.latest ? dayOf(f.latest) : last);
    svg.append(el("rect", { class: "range", x: x0, y: T, width: Math.max(2, x1 - x0), height: H - T - B }));
  }
  if (f.crossing_date) {
    const cx = x(dayOf(f.crossing_date));
    svg.append(el("line", { class: "crossing", x1: cx, y1: T, x2: cx, y2: H - B }));
    svg.append(el("text", { x: cx + 3, y: T + 24 }, `crosses ${f.crossing_date}`));
  }
  if (f.trend) {
    svg.append(el("line", { class: "trend", x1: x(first), y1: y(trendAt(first)), x2: x(last), y2: y(trendAt(last)) }));
  }
  if (f.history.length) {
    const pts = f.history.map((p) => `${x(dayOf(p.date)).toFixed(1)},${y(p.devices).toFixed(1)}`).join(" ");
    svg.append(el("polyline", { class: "history", points: pts }));
    for (const p of f.history) {
      const c = el("circle", { class: "dot", cx: x(dayOf(p.date)), cy: y(p.devices), r: 2.5 });
      c.append(el("title", {}, `${p.date}: ${p.devices}`));
      svg.append(c);
    }
  }
}

document.querySelectorAll("#sites th").forEach((th) => th.addEventListener("click", () => {
  const key = th.dataset.sort;
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (key === "site" ? 1 : -1) };
  renderSites();
}));
$("login").addEventListener("submit", (e) => { e.preventDefault(); connect(); });
$("tenant").addEventListener("change", (e) => { state.site = ""; loadSites(e.target.value).catch((err) => message(err.message)); });

// A link may carry #token=...&tenant=...&site=... (the fragment never reaches the
// server); it is moved to sessionStorage and removed from the address bar.
(function start() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("token")) sessionStorage.setItem("sitetally-token", h.get("token"));
  state.tenant = h.get("tenant") || "";
  state.site = h.get("site") || "";
  if (location.hash) history.replaceState(null, "", location.pathname);
  const saved = sessionStorage.getItem("sitetally-token");
  $("token").value = saved || "";
  // With --no-auth any token works; an empty one is tried too.
  connect();
})();
