"use strict";
// The front page's service status table (admins only: without #status this does nothing):
// /health every 2 s, shown as text.

function mark(id, ok, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.className = ok ? "ok" : "down";
}

async function refresh() {
  try {
    const res = await fetch("/health", { cache: "no-store" });
    const doc = await res.json();
    mark("web", true, "正常 up");
    mark("redis", doc.redis, doc.redis ? "正常 reachable" : "不可达 unreachable");
    const ami = doc.ami_listener;
    const state = ami ? (ami.connected ? "已登录 logged in" : "重连中 reconnecting") : "无心跳 no heartbeat";
    mark("ami", Boolean(ami && ami.connected), state);
    document.getElementById("events").textContent = ami ? String(ami.events) : "–";
    document.getElementById("reconnects").textContent = ami ? String(ami.reconnects) : "–";
  } catch (err) {
    mark("web", false, "不可达 unreachable");
  }
  document.getElementById("updated").textContent = "更新于 updated " + new Date().toLocaleTimeString();
}

document.addEventListener("DOMContentLoaded", () => {
  if (!document.getElementById("status")) {
    return;
  }
  refresh();
  setInterval(refresh, 2000);
});
