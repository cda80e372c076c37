// ComputeNet console: live updates over server-sent events (no polling, no page reloads).
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const ACTIVE = new Set(["placed", "dispatched", "running", "migrating"]);
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const page = document.body.dataset.page;

  function showTimes(root) {
    for (const t of root.querySelectorAll("time[data-ms]")) {
      const ms = Number(t.dataset.ms);
      if (ms > 0) t.textContent = new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
    }
  }
  function timeCell(ms) {
    const t = document.createElement("time");
    t.dataset.ms = String(ms);
    showTimes({ querySelectorAll: () => [t] });
    return t;
  }
  function stateBadge(state) {
    const s = document.createElement("span");
    s.className = "state state-" + state;
    s.textContent = state;
    return s;
  }
  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  // -- map ------------------------------------------------------------------------------
  const mapData = (function () {
    const el = document.getElementById("map-data");
    return el ? JSON.parse(el.textContent) : null;
  })();
  const flows = new Map();

  function drawFlow(f) {
    const layer = document.getElementById("flows");
    if (!layer || !mapData) return;
    removeFlow(f.job_id);
    const to = mapData.positions[f.site];
    if (!to) return;
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("class", "flow flow-" + f.state);
    g.dataset.job = f.job_id;
    g.dataset.site = f.site;
    const origins = (f.origins || []).filter((o) => mapData.positions[o] && o !== f.site);
    for (const origin of origins) {
      const from = mapData.positions[origin];
      const mx = (from[0] + to[0]) / 2, my = (from[1] + to[1]) / 2 - 0.15 * Math.abs(from[0] - to[0]);
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", `M${from[0]},${from[1]} Q${mx},${my} ${to[0]},${to[1]}`);
      g.appendChild(path);
    }
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", to[0]); dot.setAttribute("cy", to[1]); dot.setAttribute("r", 3);
    g.appendChild(dot);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${f.job_id}: ${f.state} at ${f.site}` + (origins.length ? ` from ${origins.join(", ")}` : "");
    g.appendChild(title);
    layer.appendChild(g);
    flows.set(f.job_id, f);
    listFlow(f);
    countFlows();
  }
  function removeFlow(jobId) {
    const old = document.querySelector(`#flows g[data-job="${CSS.escape(jobId)}"]`);
    if (old) old.remove();
    if (flows.delete(jobId)) {
      const li = document.querySelector(`#flow-list li[data-job="${CSS.escape(jobId)}"]`);
      if (li) li.remove();
      countFlows();
    }
  }
  function listFlow(f) {
    const list = document.getElementById("flow-list");
    if (!list) return;
    let li = list.querySelector(`li[data-job="${CSS.escape(f.job_id)}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.job = f.job_id;
      list.prepend(li);
    }
    li.textContent = "";
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(f.job_id);
    a.textContent = f.job_id;
    li.append(a, ` → ${f.site} (${f.state})`);
  }
  function countFlows() {
    const n = document.getElementById("flow-count");
    if (n) n.textContent = String(flows.size);
    const running = {};
    for (const f of flows.values()) running[f.site] = (running[f.site] || 0) + 1;
    for (const t of document.querySelectorAll("#sites text.count")) {
      const site = t.parentNode.dataset.site;
      t.textContent = running[site] ? String(running[site]) : "";
    }
  }
  function mapJob(e) {
    if (ACTIVE.has(e.state) && e.site) {
      const known = flows.get(e.job_id);
      drawFlow({ job_id: e.job_id, site: e.site, state: e.state,
                 origins: e.origins || (known ? known.origins : []) });
    } else {
      removeFlow(e.job_id);
    }
  }
  function mapSites(statuses) {
    if (!mapData) return;
    for (const [site, status] of Object.entries(statuses)) {
      const g = document.getElementById("map-site-" + site);
      if (!g) continue;
      g.dataset.status = status;
      const c = g.querySelector("circle");
      if (c && mapData.colours[status]) c.setAttribute("fill", mapData.colours[status]);
    }
  }

  // -- tables ---------------------------------------------------------------------------
  function updateRow(row, e) {
    const st = row.querySelector(".c-state");
    if (st) { st.textContent = ""; st.appendChild(stateBadge(e.state)); }
    const site = row.querySelector(".c-site");
    if (site) site.textContent = e.site || "—";
    // a waiting or finished job's message says why; a running one's is the executor's detail
    const reason = row.querySelector(".c-reason");
    if (reason) reason.textContent = e.state === "pending" || FINAL.has(e.state) ? e.message : "";
    const t = row.querySelector(".c-time");
    if (t) { t.textContent = ""; t.appendChild(timeCell(e.time_unix_ms)); }
    row.classList.add("changed");
  }
  function matchesFilters(table, e) {
    const f = table.dataset;
    return (!f.state || f.state === e.state) && (!f.kind || f.kind === e.kind) &&
           (!f.site || f.site === e.site) && (!f.tenant || f.tenant === e.tenant);
  }
  function jobsJob(e) {
    const table = document.getElementById("jobs-table");
    if (!table) return;
    const row = table.querySelector(`tr[data-job="${CSS.escape(e.job_id)}"]`);
    if (row) { updateRow(row, e); return; }
    if (!e.name || !matchesFilters(table, e)) return;
    const tr = document.createElement("tr");
    tr.dataset.job = e.job_id;
    tr.className = "new";
    const link = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(e.job_id);
    a.textContent = e.job_id;
    link.appendChild(a);
    const st = cell(""); st.className = "c-state";
    const site = cell(""); site.className = "c-site";
    const reason = cell(""); reason.className = "c-reason";
    const t = cell(""); t.className = "c-time";
    tr.append(link, cell(e.name), cell(e.tenant), cell(e.kind), st, site, reason, t);
    updateRow(tr, e);
    document.getElementById("jobs-live").prepend(tr);
    for (const empty of table.querySelectorAll("tr.empty")) empty.remove();
  }
  function jobPage(e) {
    const line = document.getElementById("timeline");
    if (!line || line.dataset.job !== e.job_id) return;
    if (line.querySelector(`li[data-seq="${e.seq}"]`)) return;
    const li = document.createElement("li");
    li.dataset.seq = String(e.seq);
    const small = document.createElement("small");
    small.textContent = e.cause + (e.message ? ": " + e.message : "");
    li.append(timeCell(e.time_unix_ms), " ", stateBadge(e.state), e.site ? ` at ${e.site} ` : " ", small);
    line.appendChild(li);
    const facts = document.querySelector(`.facts[data-job="${CSS.escape(e.job_id)}"]`);
    if (facts) {
      const badge = facts.querySelector(".state");
      if (badge) badge.replaceWith(stateBadge(e.state));
      const site = facts.querySelector(".c-site");
      if (site) site.textContent = e.site || "—";
    }
  }
  function queueJob(e) {
    const body = document.getElementById("queue-body");
    if (!body) return;
    const row = body.querySelector(`tr[data-job="${CSS.escape(e.job_id)}"]`);
    if (row && e.state !== "pending") { row.remove(); return; }
    if (row) { const r = row.querySelector(".c-reason"); if (r && e.message) r.textContent = e.message; return; }
    if (e.state !== "pending" || !e.name) return;
    // a new submission joins the end until a reload shows its place in the admission order
    const tr = document.createElement("tr");
    tr.dataset.job = e.job_id;
    tr.className = "new";
    const link = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(e.job_id);
    a.textContent = e.job_id;
    link.appendChild(a);
    const pos = cell("new"); pos.className = "n muted";
    const prio = cell(String(e.priority || 0)); prio.className = "n";
    const when = cell(""); when.appendChild(timeCell(e.time_unix_ms));
    const reason = cell(e.message || "waiting for the next placement round"); reason.className = "c-reason";
    tr.append(pos, link, cell(e.tenant), cell(e.resources || ""), prio, when, cell(""), reason);
    for (const empty of body.querySelectorAll("tr.empty")) empty.remove();
    if (!document.querySelector(".pager a[href*='page_token']")) body.appendChild(tr);
  }
  // The tenants table is re-rendered by the server after job events: a burst of events costs
  // one request, and never more than one is in flight.
  let tenantsTimer = null, tenantsBusy = false, tenantsAgain = false;
  function refreshTenants() {
    const box = document.getElementById("tenants");
    if (!box) return;
    if (tenantsBusy) { tenantsAgain = true; return; }
    tenantsBusy = true;
    fetch("/queue/tenants", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (html === null) return;
        box.innerHTML = html;
        box.dataset.renders = String(Number(box.dataset.renders || 0) + 1);
      })
      .catch(() => {})
      .finally(() => {
        tenantsBusy = false;
        if (tenantsAgain) { tenantsAgain = false; scheduleTenants(); }
      });
  }
  function scheduleTenants() {
    if (tenantsTimer !== null || !document.getElementById("tenants")) return;
    tenantsTimer = setTimeout(() => { tenantsTimer = null; refreshTenants(); }, 300);
  }
  function sitesTable(statuses) {
    for (const [site, status] of Object.entries(statuses)) {
      const span = document.querySelector(`#site-${CSS.escape(site)} .status`);
      if (!span || span.dataset.status === status) continue;
      span.dataset.status = status;
      span.className = "status status-" + status;
      span.textContent = status;
    }
  }

  // -- the stream -----------------------------------------------------------------------
  function connect() {
    const after = document.body.dataset.after;
    if (after === undefined || typeof EventSource === "undefined") return;
    const live = document.getElementById("live");
    const source = new EventSource("/events?after=" + encodeURIComponent(after));
    source.addEventListener("open", () => { if (live) live.className = "live on"; });
    source.addEventListener("error", () => { if (live) live.className = "live off"; });
    source.addEventListener("job", (msg) => {
      const e = JSON.parse(msg.data);
      document.body.dataset.after = String(e.seq);
      if (page === "map") mapJob(e);
      if (page === "jobs") { jobsJob(e); jobPage(e); }
      if (page === "queue") { queueJob(e); scheduleTenants(); }
    });
    source.addEventListener("bye", () => {
      source.close();
      if (live) { live.className = "live off"; live.title = "signed out: reload to sign in"; }
    });
    source.addEventListener("sites", (msg) => {
      const statuses = JSON.parse(msg.data);
      if (page === "map") mapSites(statuses);
      if (page === "sites") sitesTable(statuses);
    });
  }

  showTimes(document);
  if (mapData) for (const f of mapData.flows) drawFlow(f);
  connect();
})();
