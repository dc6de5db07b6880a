"use strict";
// The agent desk's softphone (section #phone): JsSIP (/static/vendor/jssip/jssip.min.js)
// registers the agent's browser endpoint <工号>-webrtc over Asterisk's WebSocket with the
// account from GET /api/agent/phone (the digest HA1 and realm, never a password), while the
// presence part says the agent answers on the browser ("hotline:presence", device
// "browser"). An agent on the desk phone keeps this section idle, and it says so.
//
// The web session is checked every SESSION_CHECK_MS while the phone is on, and before a call
// rings: gone (401), the phone stops.
//
// One tab rings: a tab that registers claims the phone on the BroadcastChannel
// "hotline-phone"; any other tab of the same agent unregisters (after its call, if one is
// up) and offers to take the phone back. Another browser cannot be told so: Asterisk keeps
// one browser contact per agent, the newest, and qualifies it (OPTIONS) every 10 s; a page
// that hears no OPTIONS for REPLACED_AFTER_MS while registered was replaced, and stops the
// same way (else it would take the contact back at its next refresh). The web session ending ("hotline:session-expired",
// or a 401 here) stops the ringing and unregisters; a call already up goes on until hung up.
// The WebSocket dropping: JsSIP reconnects and registers again; the call's media does not go
// through the WebSocket, and the page shows the call until it really ends.

(() => {
const phone = {
  account: null, // GET /api/agent/phone
  ua: null, // JsSIP.UA while started
  call: null, // the caller's session (incoming)
  consult: null, // the consultation call of an attended transfer (outgoing)
  wanted: false, // the presence says: ring here
  expired: false, // the web session ended
  replaced: false, // another tab or browser took the phone
  optionsAt: 0, // when Asterisk last qualified this page's contact
  muted: false,
  held: false,
  tab: Math.random().toString(36).slice(2),
  channel: "BroadcastChannel" in window ? new BroadcastChannel("hotline-phone") : null,
};

const SESSION_CHECK_MS = 10000;
const REPLACED_AFTER_MS = 35000; // three of Asterisk's qualify rounds missed
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const TARGET = /^(desk-[a-z][a-z0-9-]{0,30}|[0-9]{1,12})$/;
const $ = (id) => document.getElementById(`phone-${id}`);

function status(state, text) {
  const node = $("status");
  node.dataset.state = state;
  node.textContent = text;
}

function note(text) {
  $("note").textContent = text;
}

function error(text) {
  $("error").textContent = text;
}

function sessionExpired() {
  document.getElementById("expired").hidden = false;
  document.dispatchEvent(new CustomEvent("hotline:session-expired"));
}

function controls() {
  const up = phone.call !== null && phone.call.isEstablished();
  const ringing = phone.call !== null && !up && phone.call.direction === "incoming";
  $("answer").disabled = !ringing || phone.expired;
  $("hangup").disabled = phone.call === null;
  $("mute").disabled = !up;
  $("hold").disabled = !up || phone.consult !== null;
  $("mute").setAttribute("aria-pressed", String(phone.muted));
  $("hold").setAttribute("aria-pressed", String(phone.held));
  $("blind").disabled = !up || phone.consult !== null;
  $("consult").disabled = !up || phone.consult !== null;
  $("complete").disabled = phone.consult === null || !phone.consult.isEstablished();
  $("cancel").disabled = phone.consult === null;
  for (const key of $("keypad").querySelectorAll("button")) {
    key.disabled = !up;
  }
}

function describeCall() {
  const node = $("call");
  if (phone.call === null) {
    node.textContent = "";
    delete node.dataset.state;
    $("media").textContent = "";
    return;
  }
  const who = phone.call.remote_identity;
  const number = who && who.uri ? who.uri.user : "";
  const up = phone.call.isEstablished();
  node.dataset.state = up ? (phone.held ? "held" : "talking") : "ringing";
  const label = up ? (phone.held ? "保持中 On hold" : "通话中 In a call") : "来电振铃 Ringing";
  node.textContent = `${label}: ${number}`;
  if (phone.consult !== null) {
    node.textContent += ` · 咨询 Consulting ${phone.consult.remote_identity.uri.user}`;
  }
}

function refresh() {
  controls();
  describeCall();
}

// --- the account and the user agent ---------------------------------------------------------
async function fetchAccount() {
  const res = await fetch("/api/agent/phone", { cache: "no-store" });
  if (res.status === 401) {
    if (!phone.expired) sessionExpired();
    return null;
  }
  const doc = await res.json();
  if (!res.ok) {
    error(doc.message || doc.error || res.statusText);
    return null;
  }
  return doc;
}

async function start() {
  if (phone.ua !== null || phone.expired) {
    return;
  }
  error("");
  phone.account = await fetchAccount();
  if (phone.account === null || !phone.wanted || phone.ua !== null) {
    return;
  }
  const acct = phone.account;
  phone.replaced = false;
  $("take").hidden = true;
  claim();
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(acct.websocket)],
    uri: acct.uri,
    authorization_user: acct.authorization_user,
    realm: acct.realm,
    ha1: acct.ha1,
    display_name: `${acct.work_number} ${acct.name}`,
    register: true,
    register_expires: 120,
    session_timers: false,
    user_agent: "hotline-agent-desk (JsSIP)",
    connection_recovery_min_interval: 1,
    connection_recovery_max_interval: 5,
  });
  phone.ua = ua;
  status("connecting", "连接中 Connecting");
  ua.on("connected", () => status("connecting", "注册中 Registering"));
  ua.on("disconnected", () => {
    if (phone.ua === ua) {
      status("reconnecting", "连接断开，重连中 Connection lost, reconnecting");
    }
  });
  ua.on("newOptions", () => {
    phone.optionsAt = Date.now();
  });
  ua.on("registered", () => {
    phone.optionsAt = Date.now();
    status("registered", "已注册，可接听 Registered: calls ring here");
    note(`${acct.uri}`);
  });
  ua.on("unregistered", () => {
    if (phone.ua === ua) {
      status("off", "未注册 Not registered");
    }
  });
  ua.on("registrationFailed", (e) => {
    status("failed", "注册失败 Registration failed");
    error(`${e.cause}${e.response ? ` (${e.response.status_code})` : ""}`);
  });
  ua.on("newRTCSession", (e) => onSession(e.session, e.originator));
  ua.start();
}

// Unregister and stop: at once, or once the call that is up has ended.
function stop(why) {
  const ua = phone.ua;
  if (ua === null) {
    return;
  }
  if (phone.call !== null && !phone.call.isEstablished()) {
    phone.call.terminate({ status_code: 480, reason_phrase: "Temporarily Unavailable" });
  }
  if (ua.isRegistered()) {
    ua.unregister();
  }
  if (phone.call === null) {
    phone.ua = null;
    ua.stop();
  }
  status("off", why);
  refresh();
}

// After a call: stop the user agent if the phone should no longer be here.
function settle() {
  if (phone.ua !== null && phone.call === null && (!phone.wanted || phone.expired || phone.replaced)) {
    const ua = phone.ua;
    phone.ua = null;
    ua.stop();
  }
}

// --- one tab rings --------------------------------------------------------------------------
function claim() {
  if (phone.channel !== null && phone.account !== null) {
    phone.channel.postMessage({ type: "claim", tab: phone.tab, work_number: phone.account.work_number });
  }
}

function checkReplaced() {
  if (phone.ua === null || phone.replaced || !phone.ua.isRegistered()) return;
  if (Date.now() - phone.optionsAt > REPLACED_AFTER_MS) {
    phone.replaced = true;
    stop("已在别处登录 Registered elsewhere");
    note("另一浏览器已使用此坐席的软电话，此页不再振铃 Another browser took this agent's phone: this page no longer rings.");
    $("take").hidden = false;
  }
}

function onClaim(message) {
  if (message.type !== "claim" || message.tab === phone.tab || phone.account === null) {
    return;
  }
  if (message.work_number !== phone.account.work_number || phone.ua === null) {
    return;
  }
  phone.replaced = true;
  stop("已在另一标签页使用 In use in another tab");
  note("此标签页不再振铃 This tab no longer rings.");
  $("take").hidden = false;
}

// --- calls ----------------------------------------------------------------------------------
function mediaOptions() {
  return { mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } };
}

function playRemote(session) {
  const audio = $("audio");
  const pc = session.connection;
  const attach = () => {
    const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === "audio");
    if (tracks.length > 0) {
      audio.srcObject = new MediaStream(tracks);
      audio.play().catch(() => {});
    }
  };
  pc.addEventListener("track", attach);
  attach();
}

function onSession(session, originator) {
  if (originator === "remote") {
    if (phone.call !== null || phone.expired || phone.replaced) {
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    fetchAccount().then((account) => {  // a page whose session ended does not ring
      if (account === null && phone.call === session && !session.isEstablished()) {
        session.terminate({ status_code: 480, reason_phrase: "Temporarily Unavailable" });
      }
    });
    phone.call = session;
    phone.muted = false;
    phone.held = false;
    session.on("peerconnection", () => playRemote(session));
    session.on("confirmed", () => {
      if (session.connection) playRemote(session);
      refresh();
    });
    session.on("hold", () => {
      phone.held = session.isOnHold().local;
      refresh();
    });
    session.on("unhold", () => {
      phone.held = session.isOnHold().local;
      refresh();
    });
    const ended = () => {
      if (phone.call === session) {
        phone.call = null;
        if (phone.consult !== null) {
          phone.consult.terminate();
          phone.consult = null;
        }
        $("audio").srcObject = null;
        settle();
      }
      refresh();
    };
    session.on("ended", ended);
    session.on("failed", ended);
  }
  refresh();
}

function answer() {
  if (phone.call === null || phone.call.isEstablished()) return;
  phone.call.answer(mediaOptions());
  refresh();
}

function hangup() {
  if (phone.call !== null) phone.call.terminate();
}

function toggleMute() {
  if (phone.call === null) return;
  phone.muted = !phone.muted;
  if (phone.muted) phone.call.mute({ audio: true });
  else phone.call.unmute({ audio: true });
  refresh();
}

function toggleHold() {
  if (phone.call === null) return;
  if (phone.held) phone.call.unhold();
  else phone.call.hold();
}

// Keys go to the leg the agent is talking on: the consultation call while there is one.
function sendKey(key) {
  const leg = phone.consult !== null && phone.consult.isEstablished() ? phone.consult : phone.call;
  if (leg !== null && leg.isEstablished()) {
    leg.sendDTMF(key, { transportType: "RFC2833", duration: 160 });
  }
}

function target() {
  const value = $("target").value.trim();
  if (!TARGET.test(value)) {
    error("转接目标：desk-<队列> 或 工号 Transfer to desk-<queue> or an agent's 工号");
    return null;
  }
  error("");
  return `sip:${value}@${phone.account.uri.split("@")[1]}`;
}

function blindTransfer() {
  const to = target();
  if (to === null || phone.call === null) return;
  watchRefer(phone.call.refer(to), phone.call);
}

function consult() {
  const to = target();
  if (to === null || phone.call === null) return;
  if (!phone.held) phone.call.hold();
  const session = phone.ua.call(to, mediaOptions());
  phone.consult = session;
  const audio = () => playRemote(session);
  session.on("confirmed", () => {
    audio();
    refresh();
  });
  const ended = () => {
    if (phone.consult === session) {
      phone.consult = null;
      if (phone.call !== null) playRemote(phone.call);
    }
    refresh();
  };
  session.on("ended", ended);
  session.on("failed", (e) => {
    error(`咨询失败 Consultation failed: ${e.cause}`);
    ended();
  });
  refresh();
}

function completeTransfer() {
  if (phone.call === null || phone.consult === null) return;
  watchRefer(phone.call.refer(phone.consult.remote_identity.uri, { replaces: phone.consult }), phone.call);
}

function cancelConsult() {
  if (phone.consult !== null) phone.consult.terminate();
  if (phone.call !== null && phone.held) phone.call.unhold();
}

// A REFER accepted (202): Asterisk has taken the caller on (blind: into the target's
// dialplan at once; it reports the outcome only once the target answers), so this phone
// hangs up its side, and the consultation leg of an attended transfer too.
function watchRefer(refer, session) {
  refer.on("requestFailed", (e) => error(`转接失败 Transfer refused: ${e.cause}`));
  refer.on("requestSucceeded", () => {
    error("");
    for (const leg of [session, phone.consult]) {
      if (leg !== null && !leg.isEnded()) leg.terminate();
    }
  });
}

// --- the page -------------------------------------------------------------------------------
function onPresence(doc) {
  const wanted = doc.logged_in && doc.device === "browser";
  phone.wanted = wanted;
  if (wanted) {
    note("");
    start();
    return;
  }
  if (doc.logged_in) {
    note("本席用话机接听：软电话未启用。Calls ring on the desk phone: the softphone is off.");
  } else {
    note("登录队列并选择浏览器即可在此接听。Log in with “Browser” to answer here.");
  }
  stop("未启用 Off");
}

function onExpired() {
  phone.expired = true;
  note("");
  stop("登录已过期 Session expired: calls no longer ring here");
}

document.addEventListener("hotline:presence", (e) => onPresence(e.detail));
document.addEventListener("hotline:session-expired", onExpired);
window.addEventListener("pagehide", () => {
  if (phone.ua !== null) phone.ua.stop();
});

document.addEventListener("DOMContentLoaded", () => {
  const keypad = $("keypad");
  for (const key of KEYS) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = key;
    button.dataset.key = key;
    button.addEventListener("click", () => sendKey(key));
    keypad.append(button);
  }
  $("answer").addEventListener("click", answer);
  $("hangup").addEventListener("click", hangup);
  $("mute").addEventListener("click", toggleMute);
  $("hold").addEventListener("click", toggleHold);
  $("blind").addEventListener("click", blindTransfer);
  $("consult").addEventListener("click", consult);
  $("complete").addEventListener("click", completeTransfer);
  $("cancel").addEventListener("click", cancelConsult);
  $("take").addEventListener("click", () => {
    phone.replaced = false;
    if (phone.wanted) start();
  });
  if (phone.channel !== null) {
    phone.channel.addEventListener("message", (e) => onClaim(e.data));
  }
  refresh();
});

// What the call's RTCPeerConnection has sent and received (getStats), every second: the
// agent sees that audio flows both ways.
async function mediaStats() {
  const node = $("media");
  const pc = phone.call !== null ? phone.call.connection : null;
  if (!pc || !phone.call.isEstablished()) {
    node.textContent = "";
    return;
  }
  let sent = 0;
  let received = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "outbound-rtp" && report.kind === "audio") sent += report.bytesSent || 0;
    if (report.type === "inbound-rtp" && report.kind === "audio") received += report.bytesReceived || 0;
  }
  node.dataset.sent = String(sent);
  node.dataset.received = String(received);
  node.textContent = `音频 Audio: 发送 sent ${Math.round(sent / 1024)} KB · 接收 received ${Math.round(received / 1024)} KB`;
}

setInterval(() => mediaStats().catch(() => {}), 1000);
setInterval(() => {
  if (phone.ua !== null && !phone.expired) fetchAccount().catch(() => {});
  checkReplaced();
}, SESSION_CHECK_MS);
})();
