// The departments' page: the tickets dispatched to the user's departments (/api/department/
// tickets), take one, report its result (→ 待验收). Every value is shown as text. No inline
// code (CSP).
"use strict";
(() => {
  const LOGIN = "/login?next=/department";
  const PLACE = { indoors: "户内 indoors", public: "公共区域 public area" };
  const URGENCY = { normal: "一般 normal", urgent: "紧急 urgent", critical: "特急 critical" };
  const STATE_EN = { "处理中": "in progress", "待验收": "awaiting acceptance" };
  let me = null;
  let names = { types: {}, subtypes: {}, departments: {} };
  const $ = (id) => document.getElementById(id);
  const when = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hourCycle: "h23" }) : "—");

  function showError(message) {
    $("error").textContent = message || "";
    $("error").hidden = !message;
  }

  async function call(url, options) {
    const res = await fetch(url, { cache: "no-store", credentials: "same-origin", ...options });
    if (res.status === 401) {
      location.href = LOGIN;
      throw new Error("signed out");
    }
    const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
    if (!res.ok) throw new Error((body && body.message) || `HTTP ${res.status}`);
    return body;
  }

  function post(url, payload) {
    return call(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload || {}) });
  }

  function text(el, value) {
    el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function render(ticket) {
    const r = ticket.record;
    const article = $("ticket-template").content.firstElementChild.cloneNode(true);
    article.id = `ticket-${ticket.id}`;
    article.dataset.id = String(ticket.id);
    article.dataset.state = ticket.state;
    article.querySelector(".id").textContent = `#${ticket.id}`;
    article.querySelector(".state").textContent = `${ticket.state} ${STATE_EN[ticket.state] || ""}`;
    text(article.querySelector(".level"), ticket.level);
    article.querySelector(".deadline").textContent = `期限 due ${when(ticket.deadline_at)}${ticket.overdue ? " 已超时 overdue" : ""}`;
    article.querySelector(".taken").textContent = r.taken_by ? `${r.taken_by} 已接单 taken ${when(r.taken_at)}` : "未接单 not taken";
    text(article.querySelector(".department"), names.departments[r.department] || r.department);
    text(article.querySelector(".customer"), r.surname ? `${r.surname}${r.title || ""}` : null);
    text(article.querySelector(".contact"), r.contact_number);
    text(article.querySelector(".address"), [r.estate, r.building && `${r.building}栋`, r.unit && `${r.unit}单元`, r.room].filter(Boolean).join(" "));
    text(article.querySelector(".account"), ticket.account);
    const type = names.types[r.problem_category];
    const sub = names.subtypes[`${r.problem_category}/${r.problem_subcategory}`];
    text(article.querySelector(".problem"), r.problem_category ? `${type || r.problem_category} / ${sub || r.problem_subcategory}` : null);
    text(article.querySelector(".happened"), r.happened_at ? r.happened_at.replace("T", " ") : null);
    text(article.querySelector(".place"), PLACE[r.place] || r.place);
    text(article.querySelector(".urgency"), URGENCY[r.urgency] || r.urgency);
    text(article.querySelector(".agent"), ticket.agent);
    text(article.querySelector(".description"), r.description);
    const result = article.querySelector(".result");
    result.hidden = !r.result;
    result.textContent = r.result ? `处理结果 result: ${r.result}` : "";
    const take = article.querySelector("button.take");
    take.hidden = ticket.state !== "处理中" || Boolean(r.taken_by);
    take.addEventListener("click", async () => {
      showError("");
      try {
        await post(`/api/department/tickets/${ticket.id}/take`);
        await load();
      } catch (err) {
        showError(`#${ticket.id}: ${err.message}`);
      }
    });
    const report = article.querySelector("form.report");
    report.hidden = !(ticket.state === "处理中" && r.taken_by === me.username);
    report.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("");
      try {
        await post(`/api/department/tickets/${ticket.id}/report`, { result: report.elements.result.value });
        await load();
      } catch (err) {
        showError(`#${ticket.id}: ${err.message}`);
      }
    });
    return article;
  }

  async function load() {
    const data = await call("/api/department/tickets");
    $("departments").textContent = `本部门 departments: ${data.departments.map((d) => names.departments[d] || d).join("、") || "—"}`;
    $("tickets").replaceChildren(...data.items.map(render));
    $("empty").hidden = data.items.length > 0;
    $("status").textContent = `更新于 updated ${when(new Date().toISOString())}`;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try {
      me = await call("/api/auth/me");
      $("who").textContent = `${me.username} (${me.role})`;
      const form = await call("/api/ticket-form");
      for (const t of form.problem_types) {
        names.types[t.id] = `${t.label.zh} ${t.label.en}`;
        for (const s of t.subtypes) names.subtypes[`${t.id}/${s.id}`] = `${s.label.zh} ${s.label.en}`;
      }
      for (const d of form.departments) names.departments[d.id] = `${d.label.zh} ${d.label.en}`;
      await load();
    } catch (err) {
      showError(err.message);
      return;
    }
    setInterval(() => {
      if (!document.activeElement || !document.activeElement.closest("form.report")) load().catch((err) => showError(err.message));
    }, 15000);
  });
})();
