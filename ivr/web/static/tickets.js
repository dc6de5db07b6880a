// The tickets page: lists /api/tickets with the filters, renders each ticket with its notes,
// and (supervisors, admins) moves tickets and adds staff notes. No inline code (CSP).
"use strict";
(() => {
  const API = "/api/tickets";
  const LOGIN = "/login?next=/tickets";
  const MANAGERS = new Set(["supervisor", "admin"]);
  const STATE_EN = { "待派单": "awaiting dispatch", "处理中": "in progress", "待验收": "awaiting acceptance", "已完成": "done" };
  const KIND = { transcript: "录音转写 transcript", staff: "备注 staff note" };
  let me = null;
  let page = 1;
  let perPage = 50;
  let total = 0;

  const $ = (id) => document.getElementById(id);
  // Times are shown in the hotline's zone (the list says which), wherever the browser is.
  let timezone = "Asia/Shanghai";
  const local = (at, style) => at.toLocaleString("zh-CN", { timeZone: timezone, hourCycle: "h23", ...style });
  const when = (iso) => (iso ? local(new Date(iso), {}) : "—");
  // Working-day deadlines end at local midnight: say "24:00" of the last day, not "00:00" after.
  function due(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    if (local(at, { timeStyle: "medium" }) !== "00:00:00") return when(iso);
    const day = local(new Date(at.getTime() - 1), { dateStyle: "short" });
    return `${day} 24:00`;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  async function call(url, options) {
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin", ...options });
    if (response.status === 401) {
      location.href = LOGIN;
      throw new Error("signed out");
    }
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Error((body && body.message) || `HTTP ${response.status}`);
    return body;
  }

  function post(url, payload) {
    return call(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
  }

  function query() {
    const form = $("filters");
    const params = new URLSearchParams();
    const state = form.elements.state.value;
    if (state) params.set("state", state);
    if (form.elements.desk.value) params.set("desk", form.elements.desk.value);
    for (const name of ["overdue", "danger", "emergency", "reopened"]) {
      if (form.elements[name].checked) params.set(name, "true");
    }
    for (const name of ["from", "to"]) {
      if (form.elements[name].value) params.set(name, form.elements[name].value);
    }
    params.set("page", String(page));
    params.set("per_page", String(perPage));
    return params;
  }

  function text(el, value) {
    el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function renderNotes(list, notes) {
    const items = notes.map((note) => {
      const li = document.createElement("li");
      li.className = `note ${note.kind}`;
      li.dataset.id = String(note.id);
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${KIND[note.kind] || note.kind} · ${note.author} · ${when(note.created_at)}`;
      const body = document.createElement("p");
      body.className = "text";
      body.textContent = note.text;
      li.append(meta, body);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "暂无备注 no notes yet";
      items.push(li);
    }
    list.replaceChildren(...items);
  }

  async function loadHistory(article, ticket) {
    const detail = await call(`${API}/${ticket.id}`);
    const items = detail.transitions.map((m) => {
      const li = document.createElement("li");
      li.textContent = `${when(m.at)} ${m.actor}: ${m.from || "—"} → ${m.to}${m.comment ? " (" + m.comment + ")" : ""}`;
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = "尚未流转 not moved yet";
      items.push(li);
    }
    article.querySelector(".transitions").replaceChildren(...items);
  }

  function renderTicket(ticket) {
    const article = $("ticket-template").content.firstElementChild.cloneNode(true);
    article.id = `ticket-${ticket.id}`;
    article.dataset.id = String(ticket.id);
    article.dataset.state = ticket.state;
    article.dataset.overdue = String(ticket.overdue);
    article.dataset.danger = String(ticket.danger);
    article.querySelector(".id").textContent = `#${ticket.id}`;
    const state = article.querySelector(".state");
    state.textContent = `${ticket.state} ${STATE_EN[ticket.state] || ""}`;
    state.dataset.state = ticket.state;
    text(article.querySelector(".level"), ticket.level ? `${ticket.level} · 优先级 ${ticket.priority}` : null);
    article.querySelector(".emergency-flag").hidden = !ticket.emergency;
    const danger = article.querySelector(".danger-flag");
    danger.hidden = !ticket.danger;
    danger.textContent = `危险词 ${ticket.danger_words.join("、")}`;
    article.querySelector(".overdue-marker").hidden = !ticket.overdue;
    // reopened by a "not resolved" 回访: back in 处理中 with its priority raised
    const reopened = article.querySelector(".reopened-flag");
    reopened.hidden = !ticket.reopened;
    reopened.textContent = `重新处理 reopened · 优先级 priority ${ticket.priority}`;
    article.dataset.reopened = String(Boolean(ticket.reopened));
    text(article.querySelector(".desk"), ticket.category && ticket.category !== ticket.desk ? `${ticket.desk} / ${ticket.category}` : ticket.desk);
    text(article.querySelector(".caller"), ticket.caller);
    text(article.querySelector(".account"), ticket.account);
    text(article.querySelector(".agent"), ticket.agent);
    text(article.querySelector(".created"), when(ticket.created_at));
    const deadline = article.querySelector(".deadline");
    deadline.textContent = due(ticket.deadline_at);
    deadline.classList.toggle("late", ticket.overdue);
    text(article.querySelector(".recording"), ticket.recording_id ? `#${ticket.recording_id}` : ticket.voice_message_id ? `留言 message #${ticket.voice_message_id}` : null);
    renderRecord(article, ticket);
    renderNotes(article.querySelector(".notes"), ticket.notes);
    const history = article.querySelector(".history");
    history.addEventListener("toggle", () => {
      if (history.open) loadHistory(article, ticket).catch((err) => showError(err.message));
    });
    if (me && MANAGERS.has(me.role)) wireActions(article, ticket);
    return article;
  }

  const PLACE = { indoors: "户内 indoors", public: "公共区域 public area" };
  const URGENCY = { normal: "一般 normal", urgent: "紧急 urgent", critical: "特急 critical" };

  // The agent's record, the department's part and the reply to the customer (as text).
  function renderRecord(article, ticket) {
    const r = ticket.record;
    article.querySelector(".record").hidden = !r.recorded_at;
    if (!r.recorded_at) return;
    text(article.querySelector(".customer"), r.surname ? `${r.surname}${r.title || ""}` : null);
    text(article.querySelector(".contact"), r.contact_number ? `${r.contact_number}${r.contact_confirmed ? " ✓ 已复述 read back" : ""}` : null);
    text(article.querySelector(".address"), [r.estate, r.building && `${r.building}栋`, r.unit && `${r.unit}单元`, r.room].filter(Boolean).join(" "));
    text(article.querySelector(".problem"), r.problem_category ? `${r.problem_category} / ${r.problem_subcategory}${r.complaint ? " · 投诉 complaint" : ""}` : null);
    text(article.querySelector(".happened"), [r.happened_at && r.happened_at.replace("T", " "), PLACE[r.place]].filter(Boolean).join(" · "));
    text(article.querySelector(".urgency"), URGENCY[r.urgency] || r.urgency);
    text(article.querySelector(".outcome"), r.outcome === "resolved" ? `当场解答 resolved: ${r.reply} (${when(r.replied_at)})` : r.outcome === "dispatched" ? `派单 dispatched: ${r.department}` : null);
    text(article.querySelector(".dept"), r.taken_by ? `${r.taken_by} ${when(r.taken_at)}${r.result ? ` · ${r.result} (${when(r.reported_at)})` : ""}` : null);
    text(article.querySelector(".customer-reply"), r.customer_reply ? `${r.customer_reply} · ${when(r.customer_reply_at)} · ${r.customer_reply_by}` : null);
    const description = article.querySelector(".description");
    description.hidden = !r.description;
    description.textContent = r.description || "";
  }

  function wireConfirm(article, ticket) {
    const confirm = article.querySelector("form.confirm");
    confirm.hidden = false;
    confirm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("");
      const payload = { reply: confirm.elements.reply.value };
      if (confirm.elements.replied_at.value) payload.replied_at = new Date(confirm.elements.replied_at.value).toISOString();
      try {
        await post(`${API}/${ticket.id}/confirm`, payload);
        await load();
      } catch (err) {
        showError(`#${ticket.id}: ${err.message}`);
      }
    });
  }

  function wireActions(article, ticket) {
    const move = article.querySelector("form.move");
    const actions = move.querySelector(".actions");
    // A dispatched ticket is closed by the reply to the customer (its form), not a bare move.
    const confirms = ticket.record.outcome === "dispatched" && ticket.allowed_next.includes("已完成");
    if (confirms) wireConfirm(article, ticket);
    for (const to of ticket.allowed_next.filter((s) => !(confirms && s === "已完成"))) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "to";
      button.dataset.to = to;
      button.textContent = `→ ${to}`;
      button.addEventListener("click", async () => {
        showError("");
        try {
          await post(`${API}/${ticket.id}/transitions`, { to, comment: move.elements.comment.value });
          await load();
        } catch (err) {
          showError(`#${ticket.id}: ${err.message}`);
        }
      });
      actions.appendChild(button);
    }
    move.hidden = ticket.allowed_next.length === 0;
    move.addEventListener("submit", (event) => event.preventDefault());
    const note = article.querySelector("form.add-note");
    note.hidden = false;
    note.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("");
      try {
        await post(`${API}/${ticket.id}/notes`, { text: note.elements.text.value });
        await load();
      } catch (err) {
        showError(`#${ticket.id}: ${err.message}`);
      }
    });
  }

  async function load() {
    $("status").textContent = "加载中 loading…";
    try {
      const data = await call(`${API}?${query()}`);
      timezone = data.timezone || timezone;
      total = data.total;
      perPage = data.per_page;
      $("tickets").replaceChildren(...data.items.map(renderTicket));
      $("empty").hidden = data.items.length > 0;
      const pages = Math.max(1, Math.ceil(total / perPage));
      $("page-info").textContent = `第 ${page} / ${pages} 页 · 共 ${total} 条 (${total} tickets)`;
      $("prev").disabled = page <= 1;
      $("next").disabled = page >= pages;
      $("status").textContent = `更新于 ${when(data.at)}`;
      showError("");
    } catch (err) {
      $("status").textContent = "";
      showError(err.message);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try {
      me = await call("/api/auth/me");
      $("who").textContent = `${me.username} (${me.role})`;
    } catch (err) {
      return;
    }
    const params = new URLSearchParams(location.search);
    const form = $("filters");
    for (const [key, value] of params) {
      const field = form.elements[key];
      if (!field) continue;
      if (field.type === "checkbox") field.checked = value === "true";
      else field.value = value;
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      page = 1;
      load();
    });
    $("prev").addEventListener("click", () => { page -= 1; load(); });
    $("next").addEventListener("click", () => { page += 1; load(); });
    await load();
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target) {
      target.classList.add("target");
      target.scrollIntoView();
    }
    setInterval(() => {
      if (!document.activeElement || !document.activeElement.closest("form.move, form.add-note")) load();
    }, 30000);
  });
})();
