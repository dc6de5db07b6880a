// The QA page: search the recordings catalog, replay a call (seekable <audio> on the audit-
// logged /audio route), read its transcript (a click on a word seeks to it), score it.
"use strict";
(() => {
  const LOGIN = "/login?next=/qa";
  const STATUS = {
    ok: ["正常", "ok"],
    incomplete: ["不完整", "incomplete"],
    empty: ["无声音", "empty"],
    corrupt: ["已损坏", "corrupt"],
    deleted: ["已删除", "deleted"],
  };
  let items = []; // the spot-check items from /api/qa/items
  let maxTotal = 100;
  let timezone = "Asia/Shanghai";
  let query = new URLSearchParams(); // the current search, without page
  let page = 1;
  let pages = 0;
  let current = null; // the recording shown in the detail panel
  let words = []; // [{el, start, end}] of the shown transcript

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function bilingual(tag, zh, en, className) {
    const node = el(tag, zh + " ", className);
    node.appendChild(el("small", en));
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  }

  function when(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString("zh-CN", { timeZone: timezone, hour12: false });
  }

  async function api(url, options) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (response.status === 401) {
      window.location.assign(LOGIN);
      throw new Error("signed out");
    }
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const error = new Error((body && body.message) || `HTTP ${response.status}`);
      error.body = body;
      throw error;
    }
    return body;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function errorText(error) {
    const problems = error.body && error.body.details && error.body.details.problems;
    if (Array.isArray(problems) && problems.length) {
      return problems.map((p) => `${p.field}: ${p.message}`).join("; ");
    }
    const detail = error.body && error.body.detail; // FastAPI's own 422
    if (Array.isArray(detail)) return detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ");
    return error.message;
  }

  // --- search -----------------------------------------------------------------------------
  function statusCell(row, status, detail) {
    const [zh, en] = STATUS[status] || [status, status];
    const td = bilingual("td", zh, en, `status status-${status}`);
    td.dataset.status = status;
    if (detail) td.title = detail;
    row.appendChild(td);
  }

  function renderResults(doc) {
    const body = $("results").querySelector("tbody");
    body.replaceChildren();
    timezone = doc.timezone || timezone;
    for (const rec of doc.items) {
      const row = el("tr");
      row.dataset.id = String(rec.id);
      row.tabIndex = 0;
      if (current && current.id === rec.id) row.classList.add("selected");
      row.appendChild(el("td", when(rec.started_at)));
      row.appendChild(el("td", rec.caller, "caller"));
      row.appendChild(el("td", rec.desk || "—"));
      row.appendChild(el("td", rec.queue || "—"));
      row.appendChild(el("td", rec.agent || "—"));
      row.appendChild(el("td", duration(rec.duration_s), "num"));
      statusCell(row, rec.status, rec.status_detail);
      row.appendChild(rec.has_transcript ? bilingual("td", "有", "yes") : el("td", "—"));
      row.appendChild(el("td", rec.reviews, "num reviews"));
      if (rec.emergency) row.classList.add("emergency");
      row.addEventListener("click", () => openRecording(rec.id));
      row.addEventListener("keydown", (event) => {
        if (event.key === "Enter") openRecording(rec.id);
      });
      body.appendChild(row);
    }
    pages = doc.pages;
    $("total").textContent = `共 ${doc.total} 条 (${doc.total} calls)`;
    $("total").dataset.value = String(doc.total);
    $("page-info").textContent = pages ? `第 ${doc.page} / ${pages} 页 (page ${doc.page} of ${pages})` : "";
    $("page-info").dataset.page = String(doc.page);
    $("prev").disabled = doc.page <= 1;
    $("next").disabled = doc.page >= pages;
    show("no-results", doc.items.length === 0);
  }

  async function runSearch(wantedPage) {
    const params = new URLSearchParams(query);
    params.set("page", String(wantedPage));
    try {
      const doc = await api(`/api/recordings?${params}`);
      page = doc.page;
      show("search-error", false);
      renderResults(doc);
    } catch (error) {
      $("search-error").textContent = `查询失败 search failed: ${errorText(error)}`;
      show("search-error", true);
    }
  }

  function searchFromForm() {
    query = new URLSearchParams();
    for (const [name, value] of new FormData($("search"))) {
      if (String(value).trim() !== "") query.set(name, String(value).trim());
    }
    return runSearch(1);
  }

  // --- one call ---------------------------------------------------------------------------
  function fact(list, zh, en, value) {
    const box = el("div");
    box.appendChild(bilingual("dt", zh, en));
    box.appendChild(el("dd", value === null || value === undefined || value === "" ? "—" : value));
    list.appendChild(box);
  }

  function renderFacts(rec) {
    const list = $("facts");
    list.replaceChildren();
    fact(list, "开始", "started", when(rec.started_at));
    fact(list, "来电号码", "caller", rec.caller);
    fact(list, "户号", "account", rec.account);
    fact(list, "服务台", "desk", rec.desk);
    fact(list, "队列", "queue", rec.queue);
    fact(list, "坐席", "agent", rec.agent);
    fact(list, "等待", "wait", duration(rec.wait_s));
    fact(list, "通话时长", "duration", duration(rec.duration_s));
    fact(list, "紧急", "emergency", rec.emergency ? "是 yes" : "否 no");
    fact(list, "方向", "direction", rec.direction === "outbound" ? "坐席外呼 agent's outbound call" : "呼入 inbound");
    const [zh, en] = STATUS[rec.status] || [rec.status, rec.status];
    fact(list, "状态", "status", `${zh} ${en}${rec.status_detail ? ` — ${rec.status_detail}` : ""}`);
  }

  function renderPlayer(rec) {
    const player = $("player");
    player.pause();
    if (rec.playable) {
      player.src = `/api/recordings/${rec.id}/audio`;
      player.load();
      $("download-wav").href = `/api/recordings/${rec.id}/download?format=wav`;
      $("download-mp3").href = `/api/recordings/${rec.id}/download?format=mp3`;
    } else {
      player.removeAttribute("src");
      player.load();
      const [zh, en] = STATUS[rec.status] || [rec.status, rec.status];
      $("unplayable").textContent = `无法播放：${zh} (${en}) ${rec.status_detail || ""}`;
    }
    show("player", rec.playable);
    show("unplayable", !rec.playable);
    $("download-wav").hidden = !rec.playable;
    $("download-mp3").hidden = !rec.playable;
  }

  function renderTranscript(transcript) {
    const box = $("transcript");
    box.replaceChildren();
    words = [];
    show("transcript-none", !transcript);
    show("transcript", !!transcript);
    show("danger-words", !!(transcript && transcript.danger_words && transcript.danger_words.length));
    if (!transcript) return;
    if (transcript.danger_words && transcript.danger_words.length) {
      $("danger-words").textContent = `危险词 danger words: ${transcript.danger_words.join("、")}`;
    }
    if (!transcript.words.length) {
      box.appendChild(el("span", transcript.text || "（无语音 no speech）", "muted"));
      return;
    }
    for (const word of transcript.words) {
      const span = el("span", word.word, "word");
      span.dataset.start = String(word.start);
      span.dataset.end = String(word.end);
      span.title = `${word.start.toFixed(2)} s`;
      span.tabIndex = 0;
      span.addEventListener("click", () => seek(word.start));
      span.addEventListener("keydown", (event) => {
        if (event.key === "Enter") seek(word.start);
      });
      box.appendChild(span);
      box.appendChild(document.createTextNode(" "));
      words.push({ el: span, start: word.start, end: word.end });
    }
  }

  function seek(seconds) {
    const player = $("player");
    if (!current || !current.playable) return;
    player.currentTime = seconds;
    if (player.paused) player.play().catch(() => {});
  }

  function highlightWord() {
    const t = $("player").currentTime;
    for (const word of words) word.el.classList.toggle("now", t >= word.start && t < word.end);
  }

  async function openRecording(id) {
    const doc = await api(`/api/recordings/${id}`);
    current = doc.recording;
    for (const row of $("results").querySelectorAll("tbody tr")) {
      row.classList.toggle("selected", row.dataset.id === String(id));
    }
    $("detail-id").textContent = `#${current.id}`;
    $("detail").dataset.id = String(current.id);
    renderFacts(current);
    renderPlayer(current);
    renderTranscript(doc.transcript);
    resetReviewForm();
    renderReviews(doc.reviews);
    show("detail", true);
  }

  // --- reviews ----------------------------------------------------------------------------
  function buildReviewForm() {
    const body = $("review-items").querySelector("tbody");
    body.replaceChildren();
    for (const item of items) {
      const row = el("tr");
      row.dataset.key = item.key;
      const label = bilingual("th", item.zh, item.en);
      label.appendChild(el("span", `${item.hint_zh} / ${item.hint_en}`, "hint"));
      row.appendChild(label);
      const scoreCell = el("td", null, "num");
      const score = el("input");
      score.type = "number";
      score.min = String(item.min_score);
      score.max = String(item.max_score);
      score.step = "1";
      score.required = true;
      score.name = `score-${item.key}`;
      score.value = String(item.max_score);
      score.addEventListener("input", updateTotal);
      scoreCell.appendChild(score);
      scoreCell.appendChild(el("small", ` / ${item.max_score}`));
      row.appendChild(scoreCell);
      const commentCell = el("td");
      const comment = el("textarea");
      comment.name = `comment-${item.key}`;
      comment.rows = 1;
      comment.maxLength = 500;
      commentCell.appendChild(comment);
      row.appendChild(commentCell);
      body.appendChild(row);
    }
    $("review-max").textContent = String(maxTotal);
    updateTotal();
  }

  function formScores() {
    const scored = {};
    for (const item of items) {
      const form = $("review-form");
      scored[item.key] = {
        score: Number.parseInt(form.elements[`score-${item.key}`].value, 10),
        comment: form.elements[`comment-${item.key}`].value,
      };
    }
    return scored;
  }

  function updateTotal() {
    const scores = Object.values(formScores()).map((s) => (Number.isFinite(s.score) ? s.score : 0));
    $("review-total").textContent = String(scores.reduce((a, b) => a + b, 0));
  }

  function resetReviewForm() {
    $("review-form").reset();
    for (const item of items) $("review-form").elements[`score-${item.key}`].value = String(item.max_score);
    show("review-error", false);
    updateTotal();
  }

  function renderReviews(reviews) {
    const list = $("reviews");
    list.replaceChildren();
    const corrects = $("corrects");
    corrects.replaceChildren(el("option", "新评分 — a new review"));
    corrects.firstChild.value = "";
    show("reviews-none", reviews.length === 0);
    for (const review of [...reviews].reverse()) {
      const li = el("li", null, review.corrected_by.length ? "review superseded" : "review");
      li.dataset.id = String(review.id);
      const head = el("p", null, "review-head");
      head.appendChild(el("strong", `#${review.id} ${review.reviewer}`));
      head.appendChild(el("span", ` ${when(review.created_at)} `, "muted"));
      const total = el("span", `${review.total} / ${review.max_total}`, "total");
      total.dataset.total = String(review.total);
      head.appendChild(total);
      if (review.corrects_id) head.appendChild(bilingual("span", ` 更正 #${review.corrects_id}`, "corrects", "tag"));
      if (review.corrected_by.length) {
        head.appendChild(bilingual("span", ` 已被 #${review.corrected_by.join(", #")} 更正`, "corrected", "tag"));
      }
      li.appendChild(head);
      const table = el("table", null, "review-scores");
      for (const item of items) {
        const given = review.items[item.key];
        if (!given) continue;
        const row = el("tr");
        row.appendChild(bilingual("td", item.zh, item.en));
        row.appendChild(el("td", `${given.score} / ${item.max_score}`, "num"));
        row.appendChild(el("td", given.comment || ""));
        table.appendChild(row);
      }
      li.appendChild(table);
      if (review.comment) li.appendChild(el("p", review.comment, "review-comment"));
      list.appendChild(li);
      const option = el("option", `#${review.id} ${review.reviewer} (${review.total})`);
      option.value = String(review.id);
      corrects.appendChild(option);
    }
  }

  async function submitReview(event) {
    event.preventDefault();
    if (!current) return;
    const button = $("review-submit");
    button.disabled = true;
    const corrects = $("corrects").value;
    const payload = {
      items: formScores(),
      comment: $("review-comment").value,
      corrects_id: corrects ? Number.parseInt(corrects, 10) : null,
    };
    try {
      await api(`/api/recordings/${current.id}/reviews`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      const doc = await api(`/api/recordings/${current.id}/reviews`);
      resetReviewForm();
      renderReviews(doc.reviews);
      const row = $("results").querySelector(`tbody tr[data-id="${current.id}"] td.reviews`);
      if (row) row.textContent = String(doc.reviews.length);
    } catch (error) {
      $("review-error").textContent = `提交失败 not saved: ${errorText(error)}`;
      show("review-error", true);
    } finally {
      button.disabled = false;
    }
  }

  // --- start ------------------------------------------------------------------------------
  async function start() {
    const me = await api("/api/auth/me");
    $("who").textContent = `${me.username} (${me.role})`;
    const doc = await api("/api/qa/items");
    items = doc.items;
    maxTotal = doc.max_total;
    buildReviewForm();
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      searchFromForm();
    });
    $("search").addEventListener("reset", () => setTimeout(searchFromForm, 0));
    $("prev").addEventListener("click", () => runSearch(page - 1));
    $("next").addEventListener("click", () => runSearch(page + 1));
    $("review-form").addEventListener("submit", submitReview);
    $("player").addEventListener("timeupdate", highlightWord);
    await searchFromForm();
    const wanted = new URLSearchParams(location.search).get("recording"); // from /reports
    if (wanted && /^[0-9]+$/.test(wanted)) await openRecording(Number(wanted));
    document.body.dataset.ready = "true";
  }

  start().catch((error) => {
    $("search-error").textContent = `页面加载失败 the page failed to load: ${error.message}`;
    show("search-error", true);
  });
})();
