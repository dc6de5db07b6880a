// The supervisors' live page: one EventSource on /api/metrics/stream renders every document;
// waits tick locally between documents; the hourly chart comes from /api/metrics/hourly.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const STREAM = "/api/metrics/stream";
  const HOURLY = "/api/metrics/hourly?day=today";
  const DANGER = "/api/tickets?danger=true&state=open&per_page=50";
  const LOGIN = "/login?next=/supervisor";
  let doc = null; // the latest document
  let receivedAt = 0; // performance.now() when it came
  let source = null;
  let hourlyKey = "";
  let hourlyTimer = 0;

  const $ = (id) => document.getElementById(id);
  const target = () => (doc && typeof doc.answer_rate_target === "number" ? doc.answer_rate_target : 0.9);
  const percent = (rate) => (rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + " %");
  const sinceDocument = () => (doc ? (performance.now() - receivedAt) / 1000 : 0);

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  }

  function setValue(id, value) {
    const el = $(id);
    el.textContent = String(value);
    el.dataset.value = String(value);
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function rateClass(rate) {
    if (rate === null || rate === undefined) return "num";
    return rate >= target() ? "num good" : "num bad";
  }

  function setConnection(state, zh, en) {
    const el = $("connection");
    el.dataset.state = state;
    el.replaceChildren(zh + " ");
    const small = document.createElement("small");
    small.textContent = en;
    el.appendChild(small);
  }

  // --- the document ---------------------------------------------------------------------
  function render() {
    const card = $("rate-card");
    $("answer-rate").textContent = percent(doc.answer_rate);
    card.dataset.status = doc.answer_rate === null ? "none" : doc.answer_rate >= target() ? "good" : "bad";
    $("target").textContent = Math.round(target() * 100) + " %";
    setValue("answered", doc.answered);
    setValue("offered", doc.offered);
    setValue("waiting-now", doc.waiting_now);
    setValue("over-count", doc.over_threshold_now.length);
    setValue("agents-free", doc.agents_free);
    setValue("agents-busy", doc.agents_busy);
    setValue("agents-paused", doc.agents_paused);
    setValue("ivr-only", doc.ivr_only);
    renderRedList();
    renderAgents();
    renderQueues();
    renderHealth(doc.health || {});
    const at = new Date(doc.at * 1000).toLocaleTimeString("zh-CN", { timeZone: doc.timezone, hourCycle: "h23" });
    $("updated").textContent = `更新于 ${at}`;
    tick();
    const key = [doc.bucket, doc.offered, doc.answered, doc.ivr_only].join("/");
    if (key !== hourlyKey) {
      hourlyKey = key;
      clearTimeout(hourlyTimer);
      hourlyTimer = setTimeout(loadHourly, 500);
    }
  }

  function renderRedList() {
    const body = $("red-list").tBodies[0];
    const rows = doc.over_threshold_now.map((call) => {
      const row = document.createElement("tr");
      row.dataset.linkedid = call.linkedid;
      cell(row, call.caller || "—", "caller");
      cell(row, call.queue);
      const waited = cell(row, duration(call.waited_s), "num waited");
      waited.dataset.base = String(call.waited_s);
      const part = doc.queues[call.queue];
      cell(row, part ? `${part.threshold_s} s` : "", "num");
      return row;
    });
    body.replaceChildren(...rows);
    $("red-empty").hidden = rows.length > 0;
  }

  // --- agents: one row per 工号; a timed wrap-up turns idle locally when it runs out -------
  const STATES = {
    idle: ["空闲", "idle"],
    ringing: ["振铃", "ringing"],
    talking: ["通话", "talking"],
    wrapup: ["后处理", "wrap-up"],
    paused: ["小休", "paused"],
    offline: ["离线", "offline"],
  };
  const nowOnServer = () => (doc ? doc.at + sinceDocument() : 0);

  function agentNow(agent) {
    if (agent.state === "wrapup" && agent.until !== null && nowOnServer() >= agent.until) {
      return { state: "idle", since: agent.until, reason: "" };
    }
    return agent;
  }

  function stateCell(td, agent) {
    const shown = agentNow(agent);
    const [zh, en] = STATES[shown.state] || [shown.state, ""];
    td.replaceChildren(zh + " ");
    const small = document.createElement("small");
    small.textContent = en;
    td.appendChild(small);
    if (shown.reason && shown.reason !== zh) {
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = shown.reason;
      td.appendChild(reason);
    }
    td.className = `state ${shown.state}`;
    td.parentElement.dataset.state = shown.state;
    return shown;
  }

  function renderAgents() {
    const agents = doc.agents || [];
    const rows = agents.map((agent) => {
      const row = document.createElement("tr");
      row.dataset.workNumber = agent.work_number;
      row.agent = agent;
      cell(row, agent.work_number, "work-number");
      cell(row, agent.name || "—");
      stateCell(cell(row, ""), agent);
      cell(row, "", "num for");
      cell(row, agent.caller_masked || "—", "caller");
      cell(row, String(agent.calls_today), "num calls");
      cell(row, agent.mean_handle_s === null ? "—" : duration(agent.mean_handle_s), "num handle");
      return row;
    });
    $("agent-states").tBodies[0].replaceChildren(...rows);
    $("agent-states-empty").hidden = rows.length > 0;
  }

  function tickAgents() {
    for (const row of $("agent-states").tBodies[0].rows) {
      const shown = stateCell(row.querySelector("td.state"), row.agent);
      row.querySelector("td.for").textContent = duration(nowOnServer() - shown.since);
    }
  }

  function renderQueues() {
    const body = $("queues").tBodies[0];
    const rows = Object.keys(doc.queues).sort().map((name) => {
      const q = doc.queues[name];
      const row = document.createElement("tr");
      row.dataset.queue = name;
      cell(row, name);
      cell(row, percent(q.answer_rate), rateClass(q.answer_rate));
      for (const key of ["offered", "answered", "answered_late", "abandoned", "timed_out"]) {
        cell(row, String(q[key]), "num");
      }
      cell(row, `${q.threshold_s} s`, "num");
      cell(row, String(q.waiting_now), "num");
      const longest = cell(row, q.waiting_now ? duration(q.longest_wait_s) : "—", "num longest");
      longest.dataset.base = String(q.longest_wait_s);
      longest.dataset.waiting = String(q.waiting_now);
      cell(row, String(q.over_threshold_now.length), q.over_threshold_now.length ? "num bad" : "num");
      cell(row, `${q.agents_free} / ${q.agents_busy} / ${q.agents_paused}`, "num");
      return row;
    });
    body.replaceChildren(...rows);
  }

  function renderCounts(id, counts, alarming) {
    const list = $(id);
    const entries = Object.entries(counts || {});
    const items = [];
    if (!entries.length) {
      const dt = document.createElement("dt");
      dt.textContent = "无 none";
      items.push(dt);
    }
    for (const [name, count] of entries) {
      const dt = document.createElement("dt");
      dt.textContent = name.replaceAll("_", " ");
      const dd = document.createElement("dd");
      dd.textContent = String(count);
      if (count && alarming) dd.className = "nonzero";
      items.push(dt, dd);
    }
    list.replaceChildren(...items);
  }

  function renderHealth(health) {
    renderCounts("anomalies-today", health.anomalies_today, true);
    renderCounts("anomalies", health.anomalies, true);
    renderCounts("dropped", health.dropped, true);
    renderCounts("resync", health.resync, false); // a resync after a restart is routine
    const dropped = Object.values(health.dropped || {}).reduce((a, b) => a + b, 0);
    setValue("dropped-total", dropped);
  }

  // --- local ticking between documents --------------------------------------------------
  function tick() {
    if (!doc) return;
    const extra = sinceDocument();
    $("longest-wait").textContent = duration(doc.waiting_now ? doc.longest_wait_s + extra : 0);
    for (const el of document.querySelectorAll("#red-list td.waited")) {
      el.textContent = duration(Number(el.dataset.base) + extra);
    }
    for (const el of document.querySelectorAll("#queues td.longest")) {
      if (el.dataset.waiting !== "0") el.textContent = duration(Number(el.dataset.base) + extra);
    }
    tickAgents();
  }

  // --- the hourly chart -----------------------------------------------------------------
  function svg(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawHourly(data) {
    const chart = $("hourly-chart");
    const W = 760, H = 230, left = 44, right = 12, top = 18, bottom = 28;
    const pw = W - left - right, ph = H - top - bottom;
    const hours = data.hours;
    const goal = data.answer_rate_target;
    const y = (rate) => top + ph * (1 - rate);
    const width = pw / Math.max(1, hours.length);
    const now = Date.now() / 1000;
    const parts = [];
    for (const rate of [0, 0.5, 1]) {
      parts.push(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(rate), y2: y(rate) }));
      parts.push(svg("text", { class: "tick", x: left - 6, y: y(rate) + 4, "text-anchor": "end" }, `${rate * 100}%`));
    }
    hours.forEach((hour, i) => {
      const x = left + i * width;
      const end = i + 1 < hours.length ? hours[i + 1].start : hour.start + 3600;
      if (hour.start <= now && now < end) {
        parts.push(svg("rect", { class: "now", x, y: top, width, height: ph }));
      }
      if (hour.offered > 0) {
        const h = Math.max(2, ph * hour.answer_rate);
        const bar = svg("rect", {
          class: `bar ${hour.answer_rate >= goal ? "good" : "bad"}`,
          x: x + width * 0.15, y: top + ph - h, width: width * 0.7, height: h,
        });
        bar.appendChild(svg("title", {}, `${hour.label}  接通率 ${percent(hour.answer_rate)}  呼入 ${hour.offered}  及时接通 ${hour.answered}`));
        parts.push(bar);
        parts.push(svg("text", { class: "offered", x: x + width / 2, y: top + ph - h - 3, "text-anchor": "middle" }, String(hour.offered)));
      }
      if (i % 2 === 0) {
        parts.push(svg("text", { class: "tick", x: x + width / 2, y: H - bottom + 14, "text-anchor": "middle" }, hour.label.slice(0, 2)));
      }
    });
    parts.push(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) }));
    parts.push(svg("line", { class: "target", x1: left, x2: W - right, y1: y(goal), y2: y(goal) }));
    parts.push(svg("text", { class: "target-label", x: W - right, y: y(goal) - 4, "text-anchor": "end" }, `目标 ${Math.round(goal * 100)}%`));
    chart.replaceChildren(...parts);
    chart.dataset.day = data.day;
    chart.dataset.hours = String(hours.length);
  }

  async function loadHourly() {
    try {
      const response = await fetch(HOURLY, { cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        location.href = LOGIN;
        return;
      }
      if (response.ok) drawHourly(await response.json());
    } catch (err) {
      // the stream's status line already says when the server is unreachable
    }
  }

  // --- open tickets in which a danger word was heard --------------------------------------
  function renderDanger(data) {
    const rows = data.items.map((ticket) => {
      const row = document.createElement("tr");
      row.dataset.ticket = String(ticket.id);
      const link = document.createElement("a");
      link.href = `/tickets?state=open&danger=true#ticket-${ticket.id}`;
      link.textContent = `#${ticket.id}`;
      cell(row, "").appendChild(link);
      cell(row, ticket.caller || "—", "caller");
      cell(row, ticket.desk || "—");
      cell(row, ticket.danger_words.join("、"), "words");
      cell(row, ticket.state);
      const due = ticket.deadline_at
        ? new Date(ticket.deadline_at).toLocaleString("zh-CN", { timeZone: data.timezone, hourCycle: "h23" })
        : "—";
      cell(row, ticket.overdue ? `${due} 已超时 overdue` : due, ticket.overdue ? "overdue" : "");
      return row;
    });
    $("danger-list").tBodies[0].replaceChildren(...rows);
    $("danger-empty").hidden = rows.length > 0;
  }

  async function loadDanger() {
    try {
      const response = await fetch(DANGER, { cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        location.href = LOGIN;
        return;
      }
      if (response.ok) renderDanger(await response.json());
    } catch (err) {
      // the stream's status line already says when the server is unreachable
    }
  }

  // --- 回访 and call-backs (docs/followup.md) ------------------------------------------------
  async function loadFollowups() {
    try {
      const [flagged, callbacks] = await Promise.all([
        fetch("/api/followups/flagged", { cache: "no-store", credentials: "same-origin" }),
        fetch("/api/callbacks", { cache: "no-store", credentials: "same-origin" }),
      ]);
      if (flagged.status === 401 || callbacks.status === 401) {
        location.href = LOGIN;
        return;
      }
      if (flagged.ok) {
        const rows = (await flagged.json()).tickets.map((ticket) => {
          const row = document.createElement("tr");
          const link = document.createElement("a");
          link.href = `/tickets?state=open#ticket-${ticket.ticket_id}`;
          link.textContent = `#${ticket.ticket_id}`;
          cell(row, "").appendChild(link);
          cell(row, ticket.desk || "—");
          cell(row, ticket.state);
          cell(row, String(ticket.priority));
          return row;
        });
        $("flagged-list").tBodies[0].replaceChildren(...rows);
        $("flagged-empty").hidden = rows.length > 0;
      }
      if (callbacks.ok) {
        const share = (await callbacks.json()).called_back_within_30_min;
        $("callback-share-value").textContent =
          share.rate === null ? "—" : `${(share.rate * 100).toFixed(1)}%`;
        $("callback-share-parts").textContent = `${share.called_back} / ${share.owed}`;
      }
    } catch (err) {
      // the stream's status line already says when the server is unreachable
    }
  }

  // --- the stream -----------------------------------------------------------------------
  async function streamClosed() {
    try {
      const me = await fetch("/api/auth/me", { cache: "no-store", credentials: "same-origin" });
      if (me.status === 401) {
        location.href = LOGIN;
        return;
      }
    } catch (err) {
      // unreachable: try again below
    }
    setTimeout(connect, 5000);
  }

  function connect() {
    source = new EventSource(STREAM);
    source.onopen = () => setConnection("live", "实时", "live");
    source.onmessage = (event) => {
      doc = JSON.parse(event.data);
      receivedAt = performance.now();
      setConnection("live", "实时", "live");
      render();
    };
    source.addEventListener("unavailable", () => setConnection("lost", "数据暂不可用", "metrics unavailable, retrying"));
    source.addEventListener("signed-out", () => {
      source.close(); // the session ended (signed out elsewhere, expired, disabled)
      location.href = LOGIN;
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("lost", "连接中断", "disconnected");
        streamClosed();
      } else {
        setConnection("connecting", "重新连接中", "reconnecting");
      }
    };
  }

  // --- disk space: the web role's /health names the folders running low ------------------
  async function loadHealth() {
    try {
      const response = await fetch("/health", { cache: "no-store" });
      const health = await response.json();
      const low = health.disk_low || [];
      const banner = $("disk-warning");
      banner.textContent = low.length
        ? `磁盘空间不足，请尽快清理 Low disk space, free some soon: ${low.join(", ")}`
        : "";
      banner.hidden = low.length === 0;
    } catch (err) {
      // the stream's status line already says when the server is unreachable
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    connect();
    loadHourly();
    loadDanger();
    setInterval(tick, 250);
    setInterval(loadHourly, 60000);
    setInterval(loadDanger, 10000);
    loadFollowups();
    setInterval(loadFollowups, 15000);
    loadHealth();
    setInterval(loadHealth, 30000);
  });
})();
