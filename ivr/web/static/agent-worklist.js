"use strict";
// The agent desk's 回访 worklist (section #worklist): the follow-ups the machine could not
// complete (GET /api/followups/worklist; overdue past their deadline shown red) and today's
// abandoned callers to call back (GET /api/callbacks: the wait and when). "呼叫 Call" asks
// POST /api/agent/outbound-calls: the hotline rings the agent's own phone, then dials the
// customer; a refusal (being called already, callers waiting in the agent's queues, outside
// the calling hours) is shown as the server says it. After calling a follow-up's customer the
// agent enters what they said (POST /api/agent/outbound-calls/{id}/result). Refreshed every
// 15 s, except while a result is being entered.
(() => {
  const state = { expired: false, entering: false };
  const OUTCOMES = [
    ["resolved", "已解决 Resolved"], ["not resolved", "未解决 Not resolved"],
    ["refused", "拒绝回访 Refused"], ["no answer", "未接通 No answer"],
  ];
  const SATISFACTION = [
    ["", "满意度 Satisfaction —"], ["satisfied", "满意 Satisfied"],
    ["basically satisfied", "基本满意 Fairly satisfied"], ["dissatisfied", "不满意 Dissatisfied"],
  ];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function when(iso) {
    return new Date(iso).toLocaleString("zh-CN", { hour12: false });
  }

  function expire() {
    state.expired = true;
    document.getElementById("expired").hidden = false;
    document.dispatchEvent(new CustomEvent("hotline:session-expired"));
  }

  function select(options) {
    const node = el("select");
    for (const [value, label] of options) {
      node.append(new Option(label, value));
    }
    return node;
  }

  function resultForm(li, callId) {
    state.entering = true;
    const form = el("form", "worklist-result");
    const outcome = select(OUTCOMES);
    const satisfaction = select(SATISFACTION);
    const save = el("button", "", "保存结果 Save result");
    save.type = "submit";
    form.append(outcome, satisfaction, save);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("worklist-error");
      const res = await fetch(`/api/agent/outbound-calls/${callId}/result`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ outcome: outcome.value, satisfaction: satisfaction.value || null }),
      });
      if (res.status === 401) {
        expire();
        return;
      }
      const doc = await res.json();
      if (!res.ok) {
        error.textContent = doc.message || doc.error || res.statusText;
        return;
      }
      error.textContent = "";
      state.entering = false;
      refresh();
    });
    li.append(form);
  }

  async function call(body, button) {
    const status = document.getElementById("worklist-status");
    const error = document.getElementById("worklist-error");
    button.disabled = true;
    try {
      const res = await fetch("/api/agent/outbound-calls", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status === 401) {
        expire();
        return;
      }
      const doc = await res.json();
      if (!res.ok) {
        error.textContent = doc.message || doc.error || res.statusText;
        status.textContent = "";
        return;
      }
      error.textContent = "";
      status.textContent = `正在呼叫您的电话，接听后拨打 ${doc.number} · Ringing your phone, then ${doc.number}`;
      if (body.followup_id) {
        resultForm(button.closest("li"), doc.id);
      }
    } catch (err) {
      error.textContent = "呼叫失败 Could not place the call";
    } finally {
      setTimeout(() => { button.disabled = false; }, 5000);
    }
  }

  function item(text, detail, overdue, body) {
    const li = el("li", overdue ? "overdue" : "");
    li.append(el("span", "number", text), el("span", "muted", detail));
    const button = el("button", "", "呼叫 Call");
    button.type = "button";
    button.addEventListener("click", () => call(body, button));
    li.append(button);
    return li;
  }

  async function load(path) {
    const res = await fetch(path, { headers: { Accept: "application/json" } });
    if (res.status === 401) {
      expire();
      return null;
    }
    const doc = await res.json();
    if (!res.ok) {
      throw new Error(doc.message || doc.error || res.statusText);
    }
    return doc;
  }

  async function refresh() {
    if (state.expired || state.entering) {
      return;
    }
    const error = document.getElementById("worklist-error");
    try {
      const [work, backs] = await Promise.all([load("/api/followups/worklist"), load("/api/callbacks")]);
      if (!work || !backs) {
        return;
      }
      const followups = document.getElementById("worklist-followups");
      followups.replaceChildren(...work.items.map((i) => item(
        i.number,
        `工单 #${i.ticket_id} · ${i.reason} · 尝试 ${i.attempts} 次 attempts · 截止 due ${when(i.due_at)}${i.overdue ? " · 已超时 overdue" : ""}`,
        i.overdue,
        { followup_id: i.followup_id },
      )));
      const callbacks = document.getElementById("worklist-callbacks");
      callbacks.replaceChildren(...backs.entries.map((e) => item(
        e.number,
        `${e.queue} · 等待 waited ${Math.round(e.wait_s)} s · ${when(e.left_at)}${e.calls > 1 ? ` · ${e.calls} 次 calls` : ""}`,
        false,
        { number: e.number },
      )));
      error.textContent = "";
    } catch (err) {
      error.textContent = `回访列表加载失败 Could not load the worklist: ${err.message}`;
    }
  }

  document.addEventListener("hotline:session-expired", () => { state.expired = true; });
  document.addEventListener("DOMContentLoaded", () => {
    refresh();
    setInterval(refresh, 15000);
  });
})();
