"use strict";
// The agent desk's standard phrases (标准话术, section #phrases): GET /api/agent/phrases with
// the customer's form of address (the "hotline:customer" event from the 工单 part) and the
// call's language (the "hotline:pop" event's detail.ivr.language), shown as text with a copy
// button each. Refreshed every minute (the time of day and the day's kind are the server's,
// in the hotline's time zone) and whenever the customer, the language or the level changes.
(() => {
  const LEVELS = ["L1", "L2", "L3", "L4"];
  const DAY_KINDS = { workday: "工作日 workday", weekend: "周末 weekend", holiday: "节假日 holiday" };
  const state = { surname: "", title: "", lang: "", level: "", expired: false, asked: 0 };

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

  function bilingual(tag, zh, en) {
    const node = el(tag, "", `${zh} `);
    node.append(el("small", "", en));
    return node;
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "已复制 Copied";
    } catch (err) {
      button.textContent = "复制失败 Copy failed";
    }
    setTimeout(() => { button.textContent = "复制 Copy"; }, 1500);
  }

  function show(doc) {
    const list = document.getElementById("phrases-list");
    list.replaceChildren();
    for (const phrase of doc.phrases) {
      const item = el("li", "phrase");
      item.dataset.phrase = phrase.id;
      item.dataset.variant = phrase.variant;
      const head = el("div", "phrase-head");
      head.append(bilingual("h3", phrase.label.zh, phrase.label.en));
      const button = el("button", "copy", "复制 Copy");
      button.type = "button";
      button.addEventListener("click", () => copy(phrase.text, button));
      head.append(button);
      item.append(head, el("p", "phrase-text", phrase.text));
      if (phrase.gloss) {
        item.append(el("p", "phrase-gloss", phrase.gloss));
      }
      list.append(item);
    }
    document.getElementById("phrases-lang").value = doc.language;
    document.getElementById("phrases-level").value = doc.level;
    const when = `${DAY_KINDS[doc.day_kind] || doc.day_kind} · ${doc.day_part}`;
    const who = doc.customer_known ? "" : " · 未填称呼 no form of address yet";
    document.getElementById("phrases-context").textContent = `工号 ${doc.work_number} · ${when}${who}`;
  }

  async function refresh() {
    if (state.expired) {
      return;
    }
    const asked = ++state.asked;
    const query = new URLSearchParams();
    for (const key of ["surname", "title", "lang", "level"]) {
      if (state[key]) {
        query.set(key, state[key]);
      }
    }
    const error = document.getElementById("phrases-error");
    try {
      const res = await fetch(`/api/agent/phrases?${query}`, { cache: "no-store" });
      if (asked !== state.asked) {
        return; // a newer request is under way
      }
      if (res.status === 401) {
        state.expired = true;
        document.getElementById("expired").hidden = false;
        document.dispatchEvent(new CustomEvent("hotline:session-expired"));
        return;
      }
      const doc = await res.json();
      if (!res.ok) {
        error.textContent = doc.message || doc.error || res.statusText;
        return;
      }
      error.textContent = "";
      show(doc);
    } catch (err) {
      error.textContent = "话术加载失败 Could not load the phrases";
    }
  }

  function controls(section) {
    const bar = el("div", "phrases-controls");
    const lang = el("select");
    lang.id = "phrases-lang";
    lang.append(new Option("中文 Chinese", "zh"), new Option("English 英文", "en"));
    lang.addEventListener("change", () => { state.lang = lang.value; refresh(); });
    const level = el("select");
    level.id = "phrases-level";
    for (const value of LEVELS) {
      level.append(new Option(value, value));
    }
    level.addEventListener("change", () => { state.level = level.value; refresh(); });
    const langLabel = bilingual("label", "通话语言", "Call language");
    langLabel.append(lang);
    const levelLabel = bilingual("label", "投诉等级", "Complaint level");
    levelLabel.append(level);
    bar.append(langLabel, levelLabel);
    const context = el("p", "muted");
    context.id = "phrases-context";
    const error = el("p", "error");
    error.id = "phrases-error";
    error.setAttribute("role", "alert");
    const list = el("ul", "phrases-list");
    list.id = "phrases-list";
    section.append(bar, context, error, list);
  }

  document.addEventListener("hotline:customer", (event) => {
    const detail = event.detail || {};
    state.surname = typeof detail.surname === "string" ? detail.surname.trim() : "";
    state.title = state.surname && typeof detail.title === "string" ? detail.title : "";
    refresh();
  });
  document.addEventListener("hotline:pop", (event) => {
    const ivr = (event.detail && event.detail.ivr) || {};
    state.surname = "";
    state.title = "";
    state.level = "";
    state.lang = ivr.language === "en" || ivr.language === "zh" ? ivr.language : "";
    refresh();
  });
  document.addEventListener("hotline:session-expired", () => { state.expired = true; });
  document.addEventListener("DOMContentLoaded", () => {
    controls(document.getElementById("phrases"));
    refresh();
    setInterval(refresh, 60000);
  });
})();
