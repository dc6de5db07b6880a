"use strict";
// The agent desk's screen pop (section #pop): who is calling and what they told the menu,
// shown while the call rings, from the server-sent events of /api/agent/events (one per call,
// keyed on its Linkedid). Dispatches "hotline:pop", "hotline:connected" and "hotline:ended" on
// document (docs/agent-desk.md); stops on "hotline:session-expired". Every value is put in
// the page as text (textContent), never as HTML.

(() => {
  const LANGUAGES = { zh: "中文", en: "English" };
  const TAGS = { elderly_alone: "独居老人 Elderly, alone", key_account: "重点客户 Key account" };
  const FLAGS = {
    emergency: "紧急 Emergency",
    silent: "未按键 No key pressed",
    no_menu: "未经菜单 Menu down",
  };
  const calls = new Map(); // linkedid -> "ringing" | "connected" | "ended"
  let source = null;
  let stopped = false;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(list, label, value) {
    list.append(el("dt", label), el("dd", value === "" || value === null ? "—" : value));
  }

  function day(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function ticketItem(ticket) {
    const item = el("li", null, ticket.open ? "open" : "closed");
    item.dataset.ticket = String(ticket.id);
    const what = [ticket.desk || ticket.category || "", ticket.level || ""].filter(Boolean).join(" ");
    item.append(el("span", `#${ticket.id}`, "id"), el("span", day(ticket.created_at), "when"),
      el("span", ticket.state, "ticket-state"), el("span", what, "what"));
    if (ticket.by_account) item.append(el("span", "同户号 same account", "tag"));
    if (ticket.emergency || ticket.danger) item.append(el("span", "紧急 emergency", "tag flag"));
    return item;
  }

  function render(doc) {
    const section = document.getElementById("pop");
    let body = document.getElementById("pop-body");
    if (body) body.remove();
    body = el("div");
    body.id = "pop-body";
    body.dataset.linkedid = doc.linkedid;
    body.dataset.state = calls.get(doc.linkedid) || "ringing";

    const head = el("p", null, "caller");
    head.append(el("span", doc.caller || "未知号码 unknown number", "number"));
    const tags = el("span", null, "tags");
    const ivr = doc.ivr;
    if (ivr.priority_tag) tags.append(el("span", TAGS[ivr.priority_tag] || ivr.priority_tag, "tag priority"));
    if (doc.history.repeat) {
      tags.append(el("span", `重复来电 Repeat: ${doc.history.calls_in_days} 次/${doc.history.days} 天`, "tag repeat"));
    }
    for (const flag of ivr.flags) tags.append(el("span", FLAGS[flag] || flag, "tag flag"));
    head.append(tags);
    body.append(head, el("p", "振铃中 Ringing", "call-state"));

    const path = el("dl", null, "ivr-path");
    row(path, "服务台 Desk", ivr.desk_label ? `${ivr.desk_label} (${ivr.desk})` : ivr.desk);
    row(path, "语言 Language", LANGUAGES[ivr.language] || ivr.language);
    row(path, "按键 Keys", ivr.keys.join(" → "));
    row(path, "户号 Account", ivr.account ? `${ivr.account} ${ivr.account_confirmed ? "已确认 confirmed" : "未确认 not confirmed"}` : "");
    row(path, "区域 Area", ivr.area_name || ivr.area);
    row(path, "已听通知 Notices heard", ivr.notices_heard.map((n) => n.text || n.prompt).join(" / "));
    row(path, "队列 Queue", doc.queue);
    body.append(el("h3", "菜单路径 IVR path"), path);

    if (doc.ticket) {
      // A transferred call: its one ticket, owned by the agent who answered first (首问负责制).
      const own = el("p", null, "call-ticket");
      own.dataset.ticket = String(doc.ticket.id);
      own.append(el("span", `本通工单 This call's ticket #${doc.ticket.id}`, "id"),
        el("span", `首问 Owner ${doc.ticket.agent || "—"}`, "owner"),
        el("span", doc.ticket.state, "ticket-state"));
      body.append(own);
    }

    body.append(el("h3", `历史工单 History (未完成 open: ${doc.history.open.length})`));
    const recent = el("ul", null, "history");
    const seen = new Set();
    for (const ticket of [...doc.history.open, ...doc.history.recent]) {
      if (seen.has(ticket.id)) continue;
      seen.add(ticket.id);
      recent.append(ticketItem(ticket));
    }
    if (!seen.size) recent.append(el("li", "无 none", "none"));
    body.append(recent);

    // a complaint from this number or account within the repeat window: shown before the
    // answer; the agent confirms or unlinks the link on the 工单 part once the record is saved
    const maybe = doc.history.possible_repeat;
    if (maybe) {
      const how = maybe.matched_on === "account" ? "同户号 same account" : "同号码 same number";
      const first = maybe.first !== maybe.ticket_id ? ` (首次 first #${maybe.first})` : "";
      const note = el("p", `可能重复投诉 possible repeat complaint: #${maybe.ticket_id} ${day(maybe.created_at)} ${maybe.state}${first} · ${how}`, "possible-repeat");
      note.dataset.ticket = String(maybe.ticket_id);
      tags.append(el("span", "可能重复投诉 possible repeat", "tag repeat"));
      body.insertBefore(note, body.querySelector(".call-state"));
    }

    body.append(el("h3", "停供公告 Outages"));
    const outages = el("ul", null, "outages");
    for (const outage of doc.outages) {
      outages.append(el("li", `${outage.area_name || outage.area} ${outage.starts} – ${outage.ends}: ${outage.text}`));
    }
    if (!doc.outages.length) outages.append(el("li", "无 none", "none"));
    body.append(outages);
    section.append(body);
    body.dataset.renderedAt = String(performance.timeOrigin + performance.now());
  }

  function mark(linkedid, state) {
    calls.set(linkedid, state);
    const body = document.getElementById("pop-body");
    if (body && body.dataset.linkedid === linkedid) {
      body.dataset.state = state;
      body.querySelector(".call-state").textContent =
        state === "connected" ? "通话中 Connected" : state === "ended" ? "已结束 Ended" : "振铃中 Ringing";
    }
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent(name, { detail }));
  }

  function onPop(event) {
    const doc = JSON.parse(event.data);
    const known = calls.has(doc.linkedid) && calls.get(doc.linkedid) !== "ended";
    if (!known) calls.set(doc.linkedid, "ringing");
    render(doc);
    if (!known) emit("hotline:pop", doc);
  }

  function onConnected(event) {
    const doc = JSON.parse(event.data);
    if (calls.get(doc.linkedid) === "connected") return;
    mark(doc.linkedid, "connected");
    emit("hotline:connected", doc);
  }

  function ended(linkedid) {
    if (calls.get(linkedid) === "ended") return;
    mark(linkedid, "ended");
    emit("hotline:ended", { linkedid });
  }

  function onCurrent(event) {
    document.getElementById("pop").dataset.stream = "open";
    const live = new Set(JSON.parse(event.data).linkedids);
    for (const [linkedid, state] of calls) {
      if (state !== "ended" && !live.has(linkedid)) ended(linkedid);
    }
  }

  function expired() {
    document.getElementById("expired").hidden = false;
    document.dispatchEvent(new CustomEvent("hotline:session-expired"));
  }

  function stop() {
    stopped = true;
    if (source) source.close();
  }

  async function closedWhy() {
    // The browser gives up on a stream answered other than 200: find out why.
    if (stopped) return;
    const res = await fetch("/api/agent/presence", { cache: "no-store" }).catch(() => null);
    if (res && res.status === 401) {
      expired();
      return;
    }
    setTimeout(connect, 2000);
  }

  function connect() {
    if (stopped) return;
    source = new EventSource("/api/agent/events");
    source.addEventListener("pop", onPop);
    source.addEventListener("connected", onConnected);
    source.addEventListener("ended", (event) => ended(JSON.parse(event.data).linkedid));
    source.addEventListener("current", onCurrent);
    source.addEventListener("signed-out", () => {
      stop();
      expired();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) closedWhy();
    });
  }

  document.addEventListener("hotline:session-expired", stop);
  document.addEventListener("DOMContentLoaded", connect);
})();
