// The report page: every service-standard figure of a month or a day range against its target
// (green met, red missed), the definition on hover, a 12-month trend drawn as plain SVG, per
// desk, per agent and per department tables; every number opens the calls or tickets it
// counts, and those lead on to the recording (played here, from /api/recordings/ID/audio;
// users with the qa role also get /qa?recording=ID) and the ticket (/tickets#ticket-ID).
// Text only.
"use strict";
(() => {
  const LOGIN = "/login?next=/reports";
  const SVG = "http://www.w3.org/2000/svg";
  const GROUP_FIGURES = [
    "answer_rate", "offered", "answered", "abandoned", "wait_mean", "handle_mean",
    "consultation_reply_rate", "complaint_reply_rate", "complaint_reply_timely_rate",
    "complaint_satisfaction", "occupancy", "qa_average",
  ];
  const DEPARTMENT_FIGURES = [
    "consultation_reply_rate", "complaint_reply_rate", "consultation_reply_timely_rate",
    "complaint_reply_timely_rate", "consultation_satisfaction", "complaint_satisfaction",
    "follow_up_complaints", "follow_up_repairs", "follow_up_new_supply",
  ];
  const GROUP_NAMES = {
    desk: ["坐席组", "desk"], agent: ["工号", "agent"], department: ["部门", "department"],
  };
  const FOLLOW_UP_COLUMNS = [
    ["owed", "应回访", "owed"], ["called", "已拨打", "called"], ["reached", "已回访", "reached"],
    ["resolved", "已解决", "resolved"], ["not_resolved", "未解决", "not resolved"],
    ["satisfied", "满意", "satisfied"], ["dissatisfied", "不满意", "dissatisfied"],
    ["refused", "拒访", "refused"], ["not_reached", "未接通", "not reached"],
    ["not_called", "未拨打", "not called yet"],
  ];
  const FOLLOW_UP_STATES = {
    resolved: "已解决 resolved", not_resolved: "未解决 not resolved", refused: "拒访 refused",
    not_reached: "未接通 not reached", not_called: "未拨打 not called",
  };
  const KINDS = { true: ["投诉", "complaint"], false: ["非投诉", "not a complaint"] };
  const PER_PAGE = 50;
  let defs = []; // from /api/reports/definitions, in order
  let byKey = {};
  let windowParams = new URLSearchParams();
  let timezone = "Asia/Shanghai";
  let list = null; // {figure, part, by, group, page, pages}
  let scores = false; // the user may open /qa (admin: the page is for supervisors and admins)

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function bilingual(tag, zh, en) {
    const node = el(tag, zh + " ");
    node.appendChild(el("small", en));
    return node;
  }

  async function api(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign(LOGIN);
      throw new Error("signed out");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    return body;
  }

  function shown(value, unit) {
    if (value === null || value === undefined) return "—";
    if (unit === "rate") return `${(value * 100).toFixed(1)}%`;
    if (unit === "seconds") return `${value.toFixed(1)} s`;
    if (unit === "score") return value.toFixed(1);
    return String(value);
  }

  function when(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString("zh-CN", { timeZone: timezone, hour12: false });
  }

  function definitionText(def) {
    const lines = [`${def.zh} ${def.en}`, `公式 formula: ${def.formula}`];
    if (def.numerator) lines.push(`分子 numerator: ${def.numerator}`);
    lines.push(`${def.numerator ? "分母 denominator" : "计数 counts"}: ${def.denominator}`);
    lines.push(`目标 target: ${def.target_text || "—"}`);
    for (const note of def.notes) lines.push(`· ${note}`);
    return lines.join("\n");
  }

  function isRatio(def) {
    return def.unit === "rate";
  }

  function metClass(meets) {
    return meets === true ? "met" : meets === false ? "missed" : "";
  }

  function numberButton(text, figure, part, by, group, className) {
    const button = el("button", text, `link ${className || ""}`.trim());
    button.type = "button";
    button.dataset.figure = figure;
    button.dataset.part = part;
    button.addEventListener("click", () => openList({ figure, part, by, group, page: 1 }));
    return button;
  }

  // --- the trend --------------------------------------------------------------------------
  function trendSvg(def, months, values) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "trend");
    svg.setAttribute("viewBox", "0 0 140 32");
    const title = document.createElementNS(SVG, "title");
    title.textContent = months.map((m, i) => `${m}: ${shown(values[i], def.unit)}`).join("\n");
    svg.appendChild(title);
    const known = values.filter((v) => v !== null);
    if (!known.length) return svg;
    let low = Math.min(...known);
    let high = Math.max(...known);
    if (def.target) {
      low = Math.min(low, def.target.value);
      high = Math.max(high, def.target.value);
    }
    if (def.unit === "rate") {
      low = Math.min(low, 0);
      high = Math.max(high, 1);
    }
    const span = high - low || 1;
    const x = (i) => 4 + (i * 132) / Math.max(months.length - 1, 1);
    const y = (v) => 28 - ((v - low) * 24) / span;
    if (def.target) {
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("class", "target");
      line.setAttribute("x1", "4");
      line.setAttribute("x2", "136");
      line.setAttribute("y1", String(y(def.target.value)));
      line.setAttribute("y2", String(y(def.target.value)));
      svg.appendChild(line);
    }
    const points = [];
    values.forEach((v, i) => {
      if (v === null) return;
      points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(i).toFixed(1));
      dot.setAttribute("cy", y(v).toFixed(1));
      dot.setAttribute("r", "1.8");
      svg.appendChild(dot);
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
    return svg;
  }

  // --- the figures ------------------------------------------------------------------------
  function renderFigures(total, trend) {
    const body = $("figures").querySelector("tbody");
    body.replaceChildren();
    for (const def of defs) {
      const value = total[def.key];
      if (!value) continue;
      const row = el("tr");
      row.dataset.key = def.key;
      const name = bilingual("td", def.zh, def.en);
      name.className = "figure-name";
      name.title = definitionText(def);
      row.appendChild(name);
      const met = metClass(value.meets_target);
      const cell = el("td", null, "num");
      const main = isRatio(def) && value.numerator !== null ? "numerator" : "denominator";
      cell.appendChild(numberButton(shown(value.value, def.unit), def.key, main, "total", "", met));
      row.appendChild(cell);
      const num = el("td", null, "num");
      if (value.numerator !== null) num.appendChild(numberButton(String(value.numerator), def.key, "numerator", "total", ""));
      row.appendChild(num);
      const den = el("td", null, "num");
      if (value.denominator !== null) den.appendChild(numberButton(String(value.denominator), def.key, "denominator", "total", ""));
      row.appendChild(den);
      row.appendChild(el("td", def.target_text || "—"));
      const status = el("td", value.meets_target === null ? "—" : value.meets_target ? "达标 met" : "未达标 missed", met);
      row.appendChild(status);
      const chart = el("td");
      if (trend) chart.appendChild(trendSvg(def, trend.months, trend.figures[def.key] || []));
      row.appendChild(chart);
      body.appendChild(row);
    }
  }

  function renderGroups(table, by, groups, keys) {
    const head = table.querySelector("thead");
    const body = table.querySelector("tbody");
    const header = el("tr");
    header.appendChild(bilingual("th", ...GROUP_NAMES[by]));
    for (const key of keys) {
      const def = byKey[key];
      const th = bilingual("th", def.zh, def.en);
      th.className = "num";
      th.title = definitionText(def);
      header.appendChild(th);
    }
    head.replaceChildren(header);
    body.replaceChildren();
    for (const [name, values] of Object.entries(groups)) {
      const row = el("tr");
      row.dataset.group = name;
      row.appendChild(el("td", name || "(无 none)"));
      for (const key of keys) {
        const def = byKey[key];
        const value = values[key];
        const cell = el("td", null, "num");
        if (value) {
          const part = isRatio(def) && value.numerator !== null ? "numerator" : "denominator";
          cell.appendChild(numberButton(shown(value.value, def.unit), key, part, by, name, metClass(value.meets_target)));
        } else {
          cell.textContent = "—";
        }
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
  }

  // --- the follow-up report -----------------------------------------------------------------
  function renderFollowUps(summary, total) {
    const table = $("follow-ups");
    const header = headRow([["回访指标", "figure"], ...FOLLOW_UP_COLUMNS.map(([, zh, en]) => [zh, en]),
      ["回访率", "rate"]]);
    table.querySelector("thead").replaceChildren(header);
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const [key, counts] of Object.entries(summary)) {
      const def = byKey[key];
      const row = el("tr");
      row.dataset.key = key;
      row.appendChild(bilingual("td", def.zh, def.en));
      for (const [field] of FOLLOW_UP_COLUMNS) {
        const cell = el("td", counts[field], "num");
        cell.dataset.field = field;
        row.appendChild(cell);
      }
      const value = total[key];
      const rate = el("td", null, "num");
      rate.appendChild(numberButton(shown(value.value, def.unit), key, "denominator", "total", "", metClass(value.meets_target)));
      row.appendChild(rate);
      body.appendChild(row);
    }
  }

  // --- the lists behind a number ----------------------------------------------------------
  function link(text, href) {
    const a = el("a", text);
    a.href = href;
    return a;
  }

  function play(id) {
    const audio = $("player-audio");
    $("player-what").textContent = `#${id}`;
    $("player").dataset.id = String(id);
    $("player").hidden = false;
    audio.src = `/api/recordings/${encodeURIComponent(id)}/audio`;
    audio.load();
    $("player").scrollIntoView();
  }

  function recordingCell(id) {
    const td = el("td");
    if (id === null || id === undefined) {
      td.textContent = "—";
      return td;
    }
    const button = el("button", `▶ 录音 #${id}`, "link play");
    button.type = "button";
    button.dataset.recording = String(id);
    button.addEventListener("click", () => play(id));
    td.appendChild(button);
    if (scores) {
      td.appendChild(document.createTextNode(" · "));
      td.appendChild(link("质检 QA", `/qa?recording=${encodeURIComponent(id)}`));
    }
    return td;
  }

  function ticketCell(id) {
    const td = el("td");
    if (id === null || id === undefined) td.textContent = "—";
    else td.appendChild(link(`工单 #${id}`, `/tickets#ticket-${encodeURIComponent(id)}`));
    return td;
  }

  function headRow(labels) {
    const row = el("tr");
    for (const [zh, en] of labels) row.appendChild(bilingual("th", zh, en));
    return row;
  }

  function renderCalls(calls) {
    const table = $("item-rows");
    table.querySelector("thead").replaceChildren(headRow([
      ["通话", "Linkedid"], ["结果", "class"], ["坐席组", "desk"], ["等待", "wait (s)"],
      ["坐席", "agent"], ["时间", "counted at"], ["录音", "recording"], ["工单", "ticket"],
    ]));
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const call of calls) {
      const row = el("tr");
      row.dataset.linkedid = call.linkedid;
      row.appendChild(el("td", call.linkedid));
      row.appendChild(el("td", call.class));
      row.appendChild(el("td", call.desk || "—"));
      row.appendChild(el("td", call.wait_s, "num"));
      row.appendChild(el("td", call.agent || "—"));
      row.appendChild(el("td", when(call.counted_at)));
      row.appendChild(recordingCell(call.recording_id));
      row.appendChild(ticketCell(call.ticket_id));
      body.appendChild(row);
    }
  }

  function renderTickets(tickets) {
    const table = $("item-rows");
    table.querySelector("thead").replaceChildren(headRow([
      ["工单", "ticket"], ["类型", "kind"], ["坐席组", "desk"], ["坐席", "agent"],
      ["部门", "department"], ["受理", "opened"], ["期限", "deadline"], ["回复", "replied"],
      ["满意度来源", "answer source"], ["回访", "follow-up"], ["录音", "recording"],
    ]));
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const t of tickets) {
      const row = el("tr");
      row.dataset.ticket = String(t.id);
      row.appendChild(ticketCell(t.id));
      const kind = KINDS[String(t.complaint)];
      row.appendChild(el("td", `${kind[0]} ${t.level || ""}`.trim()));
      row.appendChild(el("td", t.desk || "—"));
      row.appendChild(el("td", t.agent || "—"));
      row.appendChild(el("td", t.department || "—"));
      row.appendChild(el("td", when(t.opened_at)));
      row.appendChild(el("td", when(t.deadline_at)));
      row.appendChild(el("td", when(t.customer_reply_at || t.replied_at)));
      row.appendChild(el("td", t.answer_source || "—"));
      row.appendChild(el("td", FOLLOW_UP_STATES[t.follow_up] || "—"));
      row.appendChild(recordingCell(t.recording_id));
      body.appendChild(row);
    }
  }

  async function openList(wanted) {
    const params = new URLSearchParams(windowParams);
    params.set("by", wanted.by);
    params.set("group", wanted.group);
    params.set("page", String(wanted.page));
    params.set("per_page", String(PER_PAGE));
    try {
      const doc = await api(`/api/reports/figures/${encodeURIComponent(wanted.figure)}/${wanted.part}?${params}`);
      list = { ...wanted, pages: Math.max(1, Math.ceil(doc.total / PER_PAGE)) };
      const part = wanted.part === "numerator" ? "分子 numerator" : "分母 denominator";
      const group = wanted.group ? ` · ${wanted.group}` : "";
      $("items-what").textContent = `${doc.figure.zh} ${doc.figure.en} · ${part}${group} · ${doc.total}`;
      if (doc.lists === "calls") renderCalls(doc.calls);
      else renderTickets(doc.tickets);
      $("items-page").textContent = `${list.page} / ${list.pages}`;
      $("items-prev").disabled = list.page <= 1;
      $("items-next").disabled = list.page >= list.pages;
      $("items").hidden = false;
      $("items").dataset.figure = wanted.figure;
      $("items").dataset.part = wanted.part;
      $("items").scrollIntoView();
    } catch (error) {
      showError(error);
    }
  }

  // --- the window -------------------------------------------------------------------------
  function showError(error) {
    $("error").textContent = `出错 failed: ${error.message}`;
    $("error").hidden = false;
  }

  function lastMonth() {
    const now = new Date();
    const first = new Date(now.getFullYear(), now.getMonth() - 1, 1);
    return `${first.getFullYear()}-${String(first.getMonth() + 1).padStart(2, "0")}`;
  }

  function paramsFromForm() {
    const form = $("window");
    const params = new URLSearchParams();
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    if (from && to) {
      params.set("from", from);
      params.set("to", to);
    } else {
      params.set("month", form.elements.month.value || lastMonth());
    }
    return params;
  }

  async function load() {
    $("error").hidden = true;
    windowParams = paramsFromForm();
    history.replaceState(null, "", `/reports?${windowParams}`);
    for (const format of ["xlsx", "pdf", "csv"]) {
      $(`download-${format}`).href = `/api/reports/file?${windowParams}&format=${format}`;
    }
    const month = windowParams.get("month") || windowParams.get("from").slice(0, 7);
    try {
      const [total, desks, agents, departments, trend] = await Promise.all([
        api(`/api/reports/figures?${windowParams}`),
        api(`/api/reports/figures?${windowParams}&by=desk`),
        api(`/api/reports/figures?${windowParams}&by=agent`),
        api(`/api/reports/figures?${windowParams}&by=department`),
        api(`/api/reports/trend?month=${month}`),
      ]);
      timezone = total.timezone;
      $("period").textContent = `${when(total.from)} – ${when(total.to)}`;
      renderFigures(total.groups[""], trend);
      renderFollowUps(total.follow_ups, total.groups[""]);
      renderGroups($("by-desk"), "desk", desks.groups, GROUP_FIGURES);
      renderGroups($("by-agent"), "agent", agents.groups, GROUP_FIGURES);
      renderGroups($("by-department"), "department", departments.groups, DEPARTMENT_FIGURES);
      $("items").hidden = true;
      document.body.dataset.ready = "true";
    } catch (error) {
      showError(error);
    }
  }

  async function start() {
    const me = await api("/api/auth/me");
    $("who").textContent = `${me.username} (${me.role})`;
    scores = me.role === "admin"; // admin holds qa; a supervisor plays the audio here only
    defs = (await api("/api/reports/definitions")).figures;
    byKey = Object.fromEntries(defs.map((d) => [d.key, d]));
    const params = new URLSearchParams(location.search);
    const form = $("window");
    form.elements.month.value = params.get("month") || (params.get("from") ? "" : lastMonth());
    form.elements.from.value = params.get("from") || "";
    form.elements.to.value = params.get("to") || "";
    form.elements.month.addEventListener("input", () => {
      form.elements.from.value = "";
      form.elements.to.value = "";
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    $("items-prev").addEventListener("click", () => openList({ ...list, page: list.page - 1 }));
    $("items-next").addEventListener("click", () => openList({ ...list, page: list.page + 1 }));
    await load();
  }

  start().catch(showError);
})();
