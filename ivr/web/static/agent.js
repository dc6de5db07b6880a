"use strict";
// The agent desk's presence part: who is signed in, and log in / pause / resume / log out
// through /api/agent/presence. A 401 from any part ends the page's session for all of them:
// it dispatches "hotline:session-expired" (the phone unregisters, the pop stops listening).
// Each presence it shows goes out as "hotline:presence" (the phone registers on "browser").

const PAUSE_REASONS = ["小休", "培训", "会议", "后处理"];

function sessionExpired() {
  document.getElementById("expired").hidden = false;
  document.dispatchEvent(new CustomEvent("hotline:session-expired"));
}

function showPresence(doc) {
  document.getElementById("who").textContent = `${doc.work_number} ${doc.name}`;
  const state = document.getElementById("presence-state");
  state.textContent = doc.label;
  state.dataset.loggedIn = String(doc.logged_in);
  state.dataset.paused = String(doc.paused);
  document.getElementById("presence-login").disabled = doc.logged_in;
  document.getElementById("presence-logout").disabled = !doc.logged_in;
  document.getElementById("presence-pause").disabled = !doc.logged_in || doc.paused;
  document.getElementById("presence-resume").disabled = !doc.paused;
  if (doc.logged_in) {
    document.getElementById("presence-device").value = doc.device;
  }
  document.dispatchEvent(new CustomEvent("hotline:presence", { detail: doc }));
}

async function presenceRequest(init) {
  const error = document.getElementById("presence-error");
  error.textContent = "";
  const res = await fetch("/api/agent/presence", { cache: "no-store", ...init });
  if (res.status === 401) {
    sessionExpired();
    return;
  }
  const doc = await res.json();
  if (!res.ok) {
    error.textContent = doc.message || doc.error || res.statusText;
    return;
  }
  showPresence(doc);
}

function change(action, reason) {
  return presenceRequest({
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(reason ? { action, reason } : { action }),
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("presence-reason");
  for (const reason of PAUSE_REASONS) {
    select.append(new Option(reason, reason));
  }
  const device = document.getElementById("presence-device");
  const login = () => presenceRequest({
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action: "login", device: device.value }),
  });
  document.getElementById("presence-login").addEventListener("click", login);
  device.addEventListener("change", () => {  // logged in: switch devices at once
    if (document.getElementById("presence-state").dataset.loggedIn === "true") login();
  });
  document.getElementById("presence-logout").addEventListener("click", () => change("logout"));
  document.getElementById("presence-resume").addEventListener("click", () => change("resume"));
  document.getElementById("presence-pause").addEventListener("click", () => change("pause", select.value));
  presenceRequest({});
});
