// graffiti-edge clip viewer: list, play with detection boxes, review. No build step, no CDN.
"use strict";

const $ = (sel) => document.querySelector(sel);
const STATE_NAMES = { unreviewed: "unreviewed", confirmed: "confirmed",
                      false_positive: "false positive", cleaned: "cleaned" };
const view = { cursor: null, lastGroup: null, count: 0, selected: new Set(), detail: null,
               etag: null, frames: [], hold: 0.5 };

const path = (id) => id.split("/").map(encodeURIComponent).join("/");

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function say(text, kind = "error") {
  const box = $("#message");
  box.textContent = text || "";
  box.className = kind;
  box.hidden = !text;
}

// ---- filters and list ---------------------------------------------------------------------

function filterQuery() {
  const query = new URLSearchParams();
  for (const [key, value] of new FormData($("#filters"))) {
    if (String(value).trim()) query.set(key, String(value).trim());
  }
  return query;
}

function restoreFilters() {
  const query = new URLSearchParams(location.hash.slice(1));
  for (const element of $("#filters").elements) {
    if (element.name && query.has(element.name)) element.value = query.get(element.name);
  }
}

function when(clip) {
  if (!clip.start_utc) return "";
  const start = new Date(clip.start_utc);
  return isNaN(start) ? "" : start.toISOString().slice(11, 19) + " UTC";
}

function badge(state) {
  const span = document.createElement("span");
  span.className = `badge ${state}`;
  span.textContent = STATE_NAMES[state] || state;
  return span;
}

const score = (value) => (typeof value === "number" ? value.toFixed(2) : "?");

// Marks for what storage could not vouch for: a recording recovered after a crash or a power
// cut, and a clip whose metadata could not be read (its problems in the tooltip).
function flags(clip) {
  const found = [];
  if (clip.interrupted) {
    const span = document.createElement("span");
    span.className = "flag interrupted";
    span.textContent = "interrupted";
    span.title = "recording cut short (crash or power cut) and recovered";
    found.push(span);
  }
  if (clip.unreadable) {
    const span = document.createElement("span");
    span.className = "flag unreadable";
    span.textContent = "unreadable";
    span.title = (clip.problems || []).join("\n");
    found.push(span);
  }
  return found;
}

// Where the camera is on the train, for the crew: "car 4021 left"; empty for older clips.
function place(clip) {
  if (!clip.carriage) return clip.position || "";
  return `car ${clip.carriage}` + (clip.position ? ` ${clip.position}` : "");
}

function card(clip) {
  const li = document.createElement("li");
  li.className = "clip";
  li.dataset.id = clip.id;
  li.dataset.state = clip.review_state;
  li.dataset.etag = clip.review_etag || "";
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.title = "select for a bulk mark";
  pick.checked = view.selected.has(clip.id);
  pick.addEventListener("click", (e) => { e.stopPropagation(); toggle(clip.id, pick.checked); });
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = "";
  if (clip.thumbnail) img.src = `/api/thumb/${path(clip.id)}`;
  const facts = document.createElement("div");
  facts.className = "facts";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = when(clip);
  const duration = document.createElement("span");
  duration.className = "duration";
  duration.textContent = clip.duration_s == null ? "" : `${clip.duration_s.toFixed(1)} s`;
  const best = document.createElement("span");
  best.className = "score";
  best.textContent = score(clip.max_score);
  best.title = "max score";
  facts.append(time, duration, best);
  const foot = document.createElement("div");
  foot.className = "facts";
  const event = document.createElement("span");
  event.textContent = clip.event_id + (clip.part > 1 ? ` p${clip.part}` : "");
  const where = document.createElement("span");
  where.className = "place";
  where.textContent = place(clip);
  where.title = "carriage and position";
  foot.append(event, where, ...flags(clip), badge(clip.review_state));
  li.append(pick, img, facts, foot);
  li.addEventListener("click", () => openClip(clip.id));
  return li;
}

function render(clips) {
  const list = $("#list");
  for (const clip of clips) {
    const group = `${clip.day} · ${clip.train} · ${clip.camera}`;
    if (group !== view.lastGroup) {
      const section = document.createElement("section");
      section.className = "group";
      const title = document.createElement("h3");
      title.textContent = group;
      const cards = document.createElement("ul");
      cards.className = "cards";
      section.append(title, cards);
      list.append(section);
      view.lastGroup = group;
    }
    list.lastElementChild.querySelector(".cards").append(card(clip));
  }
  view.count += clips.length;
  $("#summary").textContent = view.count ? `${view.count} clips shown` : "No clips match.";
}

async function load(reset) {
  if (reset) {
    view.cursor = null;
    view.lastGroup = null;
    view.count = 0;
    $("#list").replaceChildren();
  }
  const query = filterQuery();
  if (view.cursor) query.set("cursor", view.cursor);
  try {
    const page = await api(`/api/clips?${query}`);
    say("");
    render(page.clips);
    view.cursor = page.next;
    $("#more").hidden = !page.next;
  } catch (error) {
    say(error.message);
  }
}

// ---- selection and bulk marks --------------------------------------------------------------

function toggle(id, on) {
  if (on) view.selected.add(id); else view.selected.delete(id);
  $("#bulk").hidden = view.selected.size === 0;
  $("#bulk-count").textContent = `${view.selected.size} selected`;
}

function markCard(id, state, etag) {
  for (const li of document.querySelectorAll(".clip")) {
    if (li.dataset.id !== id) continue;
    li.dataset.state = state;
    li.dataset.etag = etag || "";
    li.querySelector(".badge").replaceWith(badge(state));
  }
}

async function bulkApply() {
  const state = $("#bulk-state").value;
  try {
    const answer = await api("/api/reviews", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ clips: [...view.selected], state, note: $("#bulk-note").value }),
    });
    for (const result of answer.results) {
      if (result.ok) markCard(result.id, state, result.etag);
    }
    const failed = answer.results.filter((r) => !r.ok);
    say(`${answer.ok} marked ${STATE_NAMES[state]}` +
        (failed.length ? `, ${failed.length} failed: ${failed[0].message}` : ""),
        failed.length ? "error" : "info");
    view.selected.clear();
    for (const box of document.querySelectorAll(".clip .pick")) box.checked = false;
    toggle("", false);
  } catch (error) {
    say(error.message);
  }
}

// ---- player --------------------------------------------------------------------------------

async function openClip(id) {
  let detail;
  try {
    detail = await api(`/api/clips/${path(id)}`);
  } catch (error) {
    say(error.message);
    return;
  }
  view.detail = detail;
  view.etag = detail.review_etag;
  const sidecar = detail.sidecar || {};
  view.frames = (sidecar.detections || []).slice().sort((a, b) => a.t_s - b.t_s);
  const gaps = view.frames.slice(1).map((f, i) => f.t_s - view.frames[i].t_s).sort((a, b) => a - b);
  view.hold = gaps.length ? Math.max(0.1, gaps[Math.floor(gaps.length / 2)] * 1.5) : 0.5;
  for (const li of document.querySelectorAll(".clip")) {
    li.classList.toggle("current", li.dataset.id === id);
  }
  const clip = detail.clip;
  $("#player").hidden = false;
  $("#player").dataset.id = id;
  $("#clip-title").textContent = [clip.train, place(clip), clip.camera, clip.event_id]
    .filter(Boolean).join(" · ");
  const video = sidecar.video || {};
  $("#clip-facts").textContent = `${clip.start_utc || "start unknown"} · ` +
    `${(video.duration_s ?? 0).toFixed(1)} s · max score ${score(clip.max_score)} · ` +
    `labels ${clip.labels.join(", ") || "none"} · model ${clip.model_version || "?"}`;
  $("#clip-warning").replaceChildren(...warnings(detail));
  $("#clip-warning").hidden = !$("#clip-warning").childElementCount;
  const player = $("#video");
  player.src = `/api/video/${path(id)}`;
  buildTimeline(video.duration_s || 0, sidecar.gaps || []);
  const form = $("#review");
  for (const radio of form.elements.state) {
    radio.checked = detail.review ? radio.value === detail.review.state : false;
  }
  $("#note").value = detail.review ? detail.review.note : "";
  $("#review-status").textContent = detail.review ? `saved ${detail.review.updated_utc}` : "";
  $("#review-status").className = "";
}

// What the operator must know before trusting the clip as evidence, one line each.
function warnings(detail) {
  const lines = [];
  const add = (kind, text) => {
    const p = document.createElement("p");
    p.className = kind;
    p.textContent = text;
    lines.push(p);
  };
  const sidecar = detail.sidecar;
  if (sidecar && sidecar.interrupted) {
    const cut = sidecar.interruption || {};
    add("interrupted", `Recording interrupted (${cut.reason || "reason unknown"}); ` +
        `last recorded ${cut.last_recorded_utc || "?"}.`);
  }
  for (const gap of (sidecar && sidecar.gaps) || []) {
    add("gap", `Stream gap at ${gap.at_s.toFixed(1)} s: ${gap.missing_s.toFixed(1)} s ` +
        "without video (the picture jumps there).");
  }
  if (detail.sidecar_problem) add("unreadable", `Sidecar unreadable: ${detail.sidecar_problem}`);
  for (const problem of detail.clip.problems || []) add("unreadable", `Metadata: ${problem}`);
  return lines;
}

function buildTimeline(duration, gaps) {
  const line = $("#timeline");
  line.replaceChildren();
  const length = duration || (view.frames.length ? view.frames[view.frames.length - 1].t_s : 1);
  line.dataset.duration = String(length);
  for (const gap of gaps) {
    const mark = document.createElement("div");
    mark.className = "gap";
    mark.title = `stream gap: ${gap.missing_s.toFixed(1)} s without video`;
    mark.style.left = `${Math.min(100, (gap.at_s / length) * 100)}%`;
    line.append(mark);
  }
  for (const frame of view.frames) {
    if (!frame.detections.length) continue;
    const mark = document.createElement("button");
    mark.type = "button";
    mark.className = "mark";
    mark.dataset.t = String(frame.t_s);
    const best = Math.max(...frame.detections.map((d) => d.score));
    mark.title = `${frame.t_s.toFixed(2)} s, ${frame.detections.length} box(es), score ${score(best)}`;
    mark.style.left = `${Math.min(100, (frame.t_s / length) * 100)}%`;
    mark.addEventListener("click", () => { $("#video").currentTime = frame.t_s; draw(); });
    line.append(mark);
  }
  const cursor = document.createElement("div");
  cursor.className = "cursor";
  line.append(cursor);
}

function frameAt(t) {
  // The last sampled frame at or before t, held until the next sample is due.
  let found = null;
  for (const frame of view.frames) {
    if (frame.t_s <= t + 0.02) found = frame; else break;
  }
  return found && t - found.t_s <= view.hold ? found : null;
}

function draw() {
  const video = $("#video");
  const canvas = $("#overlay");
  const width = video.clientWidth, height = video.clientHeight;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  let count = 0;
  if (view.detail && video.videoWidth) {
    // The picture inside the element (object-fit: contain letterboxes it).
    const scale = Math.min(width / video.videoWidth, height / video.videoHeight);
    const w = video.videoWidth * scale, h = video.videoHeight * scale;
    const x0 = (width - w) / 2, y0 = (height - h) / 2;
    const frame = frameAt(video.currentTime);
    ctx.lineWidth = 3;
    ctx.font = "13px system-ui, sans-serif";
    for (const d of frame ? frame.detections : []) {
      const [x1, y1, x2, y2] = d.box;
      ctx.strokeStyle = "#ffcc00";
      ctx.strokeRect(x0 + x1 * w, y0 + y1 * h, (x2 - x1) * w, (y2 - y1) * h);
      ctx.fillStyle = "#ffcc00";
      ctx.fillText(`${d.label} ${d.score.toFixed(2)}`, x0 + x1 * w + 3, y0 + y1 * h + 14);
      count += 1;
    }
  }
  canvas.dataset.boxes = String(count);
  canvas.dataset.t = video.currentTime.toFixed(2);
  const line = $("#timeline");
  const cursor = line.querySelector(".cursor");
  if (cursor) {
    const length = Number(line.dataset.duration) || 1;
    cursor.style.left = `${Math.min(100, (video.currentTime / length) * 100)}%`;
  }
}

function loop() {
  draw();
  requestAnimationFrame(loop);
}

async function saveReview(event) {
  event.preventDefault();
  const id = $("#player").dataset.id;
  const state = new FormData($("#review")).get("state");
  const status = $("#review-status");
  if (!state) {
    status.textContent = "choose a state first";
    status.className = "error";
    return;
  }
  try {
    const answer = await api(`/api/reviews/${path(id)}`, {
      method: "PUT", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ state, note: $("#note").value, etag: view.etag }),
    });
    view.etag = answer.review_etag;
    markCard(id, state, answer.review_etag);
    status.textContent = `saved ${answer.review.updated_utc}`;
    status.className = "ok";
  } catch (error) {
    status.textContent = error.message;
    status.className = "error";
  }
}

// ---- wiring --------------------------------------------------------------------------------

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  history.replaceState(null, "", `#${filterQuery()}`);
  load(true);
});
$("#clear-filters").addEventListener("click", () => {
  $("#filters").reset();
  history.replaceState(null, "", location.pathname);
  load(true);
});
$("#more").addEventListener("click", () => load(false));
$("#bulk-apply").addEventListener("click", bulkApply);
$("#bulk-clear").addEventListener("click", () => {
  view.selected.clear();
  for (const box of document.querySelectorAll(".clip .pick")) box.checked = false;
  toggle("", false);
});
$("#review").addEventListener("submit", saveReview);
for (const name of ["seeked", "timeupdate", "loadeddata"]) $("#video").addEventListener(name, draw);

restoreFilters();
load(true);
requestAnimationFrame(loop);
