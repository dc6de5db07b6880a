"use strict";
// The agent desk's 工单 part (section #ticket). The ami role opens the call's ticket when the
// agent connects; this part opens its form on "hotline:connected" (detail.linkedid), or from
// the agent's own list of tickets not yet recorded (the call in progress, in wrap-up). What
// is typed is kept on the server as a draft (PUT, debounced), so a reload or a crashed
// browser loses nothing: on load, the newest ticket with a draft is opened again. Saving
// sends the record (POST): refused fields are named and marked. Changing the form of address
// dispatches "hotline:customer" {surname, title}. The agent's tickets the department reported
// on are listed to tell the customer (待回访). Every value is shown as text, never as HTML.
(() => {
  const DRAFT_DELAY_MS = 600;
  const FIND_TRIES = 20; // the ami role commits the ticket about when the page hears of the call
  const TEXT_FIELDS = ["surname", "title", "contact_number", "estate", "building", "unit", "room",
    "account", "category", "subcategory", "happened_at", "place", "description", "urgency",
    "level", "reply", "department"];
  const BOOL_FIELDS = ["contact_confirmed", "complaint"];
  let choices = null;
  let current = null; // the ticket whose form is open
  let timer = null;
  let lastCustomer = "";

  const $ = (id) => document.getElementById(id);
  const form = () => $("ticket-form");

  function expired() {
    $("expired").hidden = false;
    document.dispatchEvent(new CustomEvent("hotline:session-expired"));
  }

  async function call(url, init) {
    const res = await fetch(url, { cache: "no-store", credentials: "same-origin", ...init });
    if (res.status === 401) {
      expired();
      throw new Error("登录已过期 session expired");
    }
    const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
    if (!res.ok) {
      const err = new Error((body && body.message) || `HTTP ${res.status}`);
      err.details = (body && body.details) || {};
      throw err;
    }
    return body;
  }

  function send(url, method, payload) {
    return call(url, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  }

  function label(entry) {
    return `${entry.label.zh} ${entry.label.en}`;
  }

  function fillCategories() {
    const category = form().elements.category;
    category.replaceChildren(new Option("—", ""), ...choices.problem_types.map((t) => new Option(label(t), t.id)));
    const department = form().elements.department;
    department.replaceChildren(new Option("—", ""), ...choices.departments.map((d) => new Option(label(d), d.id)));
  }

  function fillSubcategories() {
    const f = form();
    const type = choices.problem_types.find((t) => t.id === f.elements.category.value);
    const keep = f.elements.subcategory.value;
    f.elements.subcategory.replaceChildren(new Option("—", ""), ...(type ? type.subtypes.map((s) => new Option(label(s), s.id)) : []));
    if (type && type.subtypes.some((s) => s.id === keep)) f.elements.subcategory.value = keep;
  }

  function outcome() {
    const checked = form().querySelector('input[name="outcome"]:checked');
    return checked ? checked.value : "";
  }

  function showDependents() {
    const f = form();
    $("ticket-level-label").hidden = !f.elements.complaint.checked;
    $("ticket-reply-label").hidden = outcome() !== "resolved";
    $("ticket-department-label").hidden = outcome() !== "dispatched";
  }

  function values() {
    const f = form();
    const doc = {};
    for (const name of TEXT_FIELDS) doc[name] = f.elements[name].value;
    for (const name of BOOL_FIELDS) doc[name] = f.elements[name].checked;
    doc.outcome = outcome();
    return doc;
  }

  function announceCustomer() {
    const f = form();
    const surname = f.elements.surname.value.trim();
    const title = f.elements.title.value;
    const key = `${surname}|${title}`;
    if (key === lastCustomer) return;
    lastCustomer = key;
    document.dispatchEvent(new CustomEvent("hotline:customer", { detail: { surname, title } }));
  }

  function markInvalid(fields) {
    const f = form();
    for (const el of f.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const name of fields || []) {
      const el = f.elements[name];
      if (el && el.setAttribute) el.setAttribute("aria-invalid", "true");
      else if (el && el.length) for (const one of el) one.setAttribute("aria-invalid", "true");
    }
  }

  function fill(ticket) {
    const f = form();
    const draft = ticket.draft || {};
    f.reset();
    markInvalid([]);
    $("ticket-error").textContent = "";
    for (const name of BOOL_FIELDS) f.elements[name].checked = draft[name] === true;
    for (const name of TEXT_FIELDS) {
      if (name === "subcategory") continue;
      f.elements[name].value = draft[name] || "";
      if (name === "category") fillSubcategories();
    }
    f.elements.subcategory.value = draft.subcategory || "";
    if (!draft.contact_number) f.elements.contact_number.value = ticket.caller || "";
    if (!draft.account && ticket.account) f.elements.account.value = ticket.account;
    for (const radio of f.querySelectorAll('input[name="outcome"]')) radio.checked = radio.value === draft.outcome;
    showDependents();
    $("ticket-id").textContent = `工单 #${ticket.id}`;
    $("ticket-call").textContent = `${ticket.caller || ""} · ${ticket.desk || ""} · ${ticket.linkedid}`;
    $("ticket-draft-status").textContent = ticket.draft_at ? `草稿已恢复 draft restored (${new Date(ticket.draft_at).toLocaleTimeString("zh-CN", { hourCycle: "h23" })})` : "";
    f.dataset.ticket = String(ticket.id);
    f.hidden = false;
    $("ticket-saved").textContent = "";
    $("ticket-repeat").hidden = true;
    lastCustomer = "";
    announceCustomer();
  }

  async function saveDraft() {
    timer = null;
    if (!current) return;
    try {
      const doc = await send(`/api/agent/tickets/${current.id}/draft`, "PUT", values());
      $("ticket-draft-status").textContent = `草稿已保存 draft saved ${new Date(doc.draft_at).toLocaleTimeString("zh-CN", { hourCycle: "h23" })}`;
    } catch (err) {
      $("ticket-draft-status").textContent = `草稿未保存 draft not saved: ${err.message}`;
    }
  }

  function changed(event) {
    if (!current) return;
    if (event && event.target && event.target.removeAttribute) event.target.removeAttribute("aria-invalid");
    if (event && event.target && event.target.name === "category") {
      fillSubcategories();
      const type = choices.problem_types.find((t) => t.id === form().elements.category.value);
      if (type && type.department && !form().elements.department.value) form().elements.department.value = type.department;
    }
    showDependents();
    announceCustomer();
    if (timer) clearTimeout(timer);
    timer = setTimeout(saveDraft, DRAFT_DELAY_MS);
  }

  async function save(event) {
    event.preventDefault();
    if (!current) return;
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    $("ticket-error").textContent = "";
    try {
      const doc = await send(`/api/agent/tickets/${current.id}/record`, "POST", values());
      markInvalid([]);
      form().hidden = true;
      const resumed = doc.wrapup_pause_ended ? " · 后处理暂停已结束 wrap-up pause ended" : "";
      $("ticket-saved").textContent = `工单 #${doc.id} 已保存 saved: ${doc.state}${resumed}`;
      showRepeat(doc);
      current = null;
      await loadMine();
    } catch (err) {
      $("ticket-error").textContent = err.message;
      markInvalid(err.details.fields);
    }
  }

  // A complaint saved as a repeat (重复投诉) of an earlier one: the agent confirms or unlinks it.
  function showRepeat(doc) {
    const box = $("ticket-repeat");
    const link = doc.record && doc.record.repeat_of;
    box.hidden = !link;
    if (!link) return;
    box.dataset.ticket = String(doc.id);
    const state = { marked: "待确认 to confirm", confirmed: "已确认 confirmed", unlinked: "已解除 unlinked" };
    $("ticket-repeat-text").textContent =
      `重复投诉 repeat of 工单 #${link}，已升一级 escalated to ${doc.level} · ${state[doc.record.repeat_state] || ""} `;
    $("ticket-repeat-confirm").disabled = doc.record.repeat_state !== "marked";
    $("ticket-repeat-unlink").disabled = doc.record.repeat_state === "unlinked";
  }

  async function answerRepeat(action) {
    const id = $("ticket-repeat").dataset.ticket;
    try {
      showRepeat(await send(`/api/agent/tickets/${id}/repeat`, "POST", { action }));
    } catch (err) {
      $("ticket-error").textContent = err.message;
    }
  }

  function open(ticket) {
    if (timer) { // what was typed in the form open until now is kept first
      clearTimeout(timer);
      saveDraft();
    }
    current = ticket;
    fill(ticket);
  }

  function renderMine(items) {
    const list = $("ticket-list");
    list.replaceChildren(...items.map((t) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "open-ticket";
      button.dataset.id = String(t.id);
      button.textContent = `#${t.id} ${t.caller || ""} ${t.desk || ""} ${new Date(t.created_at).toLocaleString("zh-CN", { hourCycle: "h23" })}${t.draft_at ? " · 草稿 draft" : ""}`;
      button.addEventListener("click", () => open(t));
      li.append(button);
      return li;
    }));
    $("ticket-none").hidden = items.length > 0;
  }

  async function loadMine() {
    const doc = await call("/api/agent/tickets");
    renderMine(doc.items);
    await loadReplies();
    return doc.items;
  }

  // The agent's tickets the department reported on (待验收): the agent calls the customer
  // back and records the reply (its content and time), which closes the ticket.
  function renderReply(t) {
    const li = document.createElement("li");
    li.className = "reply-ticket";
    li.dataset.id = String(t.id);
    const head = document.createElement("p");
    const who = t.record.surname ? `${t.record.surname}${t.record.title || ""} ` : "";
    head.textContent = `#${t.id} ${who}${t.record.contact_number || t.caller || ""}`;
    const result = document.createElement("p");
    result.className = "result";
    result.textContent = `处理结果 result: ${t.record.result || "—"}`;
    const form = document.createElement("form");
    form.className = "confirm";
    const reply = document.createElement("input");
    reply.name = "reply";
    reply.maxLength = 4000;
    reply.required = true;
    reply.placeholder = "回访内容 reply to the customer";
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "回访确认 → 已完成";
    form.append(reply, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await send(`/api/tickets/${t.id}/confirm`, "POST", { reply: reply.value });
        await loadReplies();
      } catch (err) {
        $("ticket-error").textContent = `#${t.id}: ${err.message}`;
      }
    });
    li.append(head, result, form);
    return li;
  }

  async function loadReplies() {
    const doc = await call("/api/agent/replies");
    $("ticket-reply-list").replaceChildren(...doc.items.map(renderReply));
    $("ticket-replies").hidden = doc.items.length === 0;
  }

  async function connected(event) {
    const linkedid = event.detail && event.detail.linkedid;
    if (!linkedid) return;
    for (let i = 0; i < FIND_TRIES; i += 1) {
      const doc = await call(`/api/agent/tickets?linkedid=${encodeURIComponent(linkedid)}`);
      if (doc.items.length) {
        open(doc.items[0]);
        await loadMine();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // a transferred call's ticket stays with the agent who answered it first (首问负责制)
    $("ticket-error").textContent = `此通话没有您的工单（转接来电由首问坐席负责） no ticket of yours for call ${linkedid} (a transferred call stays with its first agent)`;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const f = form();
    f.addEventListener("input", changed);
    f.addEventListener("change", changed);
    f.addEventListener("submit", save);
    $("ticket-repeat-confirm").addEventListener("click", () => answerRepeat("confirm"));
    $("ticket-repeat-unlink").addEventListener("click", () => answerRepeat("unlink"));
    document.addEventListener("hotline:connected", (event) => connected(event).catch((err) => {
      $("ticket-error").textContent = err.message;
    }));
    try {
      choices = await call("/api/ticket-form");
      fillCategories();
      const mine = await loadMine();
      const withDraft = mine.find((t) => t.draft_at);
      if (withDraft && !current) open(withDraft);
      setInterval(() => {
        if (!document.activeElement || !document.activeElement.closest("#ticket-reply-list")) {
          loadReplies().catch((err) => { $("ticket-error").textContent = err.message; });
        }
      }, 60000);
    } catch (err) {
      $("ticket-error").textContent = err.message;
    }
  });
})();
