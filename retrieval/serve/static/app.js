// xmr search page: plain JS over the JSON API (no build step). Text goes into the page
// only through textContent, never innerHTML, so file names cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { upload: null, like: null, offset: 0, next: null, lastHits: [] };

function splitList(value) {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

function request() {
  const body = { k: Number($("k").value) || 24, offset: state.offset, rerank: $("rerank").checked };
  const text = $("q").value.trim();
  if (text) body.q = [text];
  if (state.upload) body.images = [state.upload];
  if (state.like !== null) body.like = [state.like];
  const not = $("not").value.trim();
  if (not) body.not = [not];
  const under = $("under").value.trim();
  if (under) body.under = [under];
  if ($("after").value) body.after = $("after").value;
  if ($("before").value) body.before = $("before").value;
  const ext = splitList($("ext").value);
  if (ext.length) body.ext = [ext.join(",")];
  const min = $("min-score").value;
  if (min !== "") body.min_score = Number(min);
  if ($("media").value !== "all") body.media = $("media").value;
  const contains = $("contains").value.trim();
  if (contains) body.contains = [contains];
  body.mode = $("mode").value;
  body.sort = $("sort").value;
  return body;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || response.statusText));
  return data;
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(error));
}

async function search() {
  const body = request();
  if (!body.q && !body.images && body.like === undefined) {
    setStatus("Type some words, drop an image, or pick “More like this”.");
    return;
  }
  setStatus("Searching…");
  try {
    const data = await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    render(data);
  } catch (err) {
    $("pager").hidden = true; // paging an error leads nowhere
    $("results").replaceChildren(); // and the last page's cards would read as this query's
    setStatus(err.message, true);
  }
}

// Cards in the first screenful load their thumbnails first; the rest wait until scrolled to.
const EAGER_CARDS = 12;

function render(data) {
  const grid = $("results");
  grid.replaceChildren();
  state.next = data.next_offset;
  state.lastHits = data.hits;
  data.hits.forEach((hit, i) => grid.appendChild(card(hit, i < EAGER_CARDS)));
  const first = data.offset + 1;
  const shown = data.hits.length ? `Results ${first}–${data.offset + data.hits.length}` : `No results${data.note ? ": " + data.note : ""}`;
  setStatus(`${shown}${data.reranked ? " (reranked)" : ""} · ${Math.round(data.took_ms)} ms`);
  $("pager").hidden = data.offset === 0 && data.next_offset === null;
  $("prev").disabled = data.offset === 0;
  $("next").disabled = data.next_offset === null;
  $("page-label").textContent = `page ${Math.floor(data.offset / data.k) + 1}`;
}

function card(hit, eager) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.id = hit.id;
  const frame = document.createElement("div");
  frame.className = "thumb";
  const placeholder = document.createElement("span"); // the name, until the thumbnail arrives
  placeholder.className = "placeholder";
  placeholder.textContent = hit.name;
  const img = document.createElement("img");
  img.alt = hit.name;
  img.loading = eager ? "eager" : "lazy";
  if (eager) img.fetchPriority = "high";
  img.addEventListener("load", () => frame.classList.add("loaded"));
  img.src = hit.thumbnail;
  frame.append(placeholder, img);
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = hit.name;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  caption.append(name, score);
  figure.append(frame, caption);
  if (hit.media === "video") {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `▶ ${clock(hit.start)}`;
    figure.appendChild(badge);
  }
  if (hit.match) {
    const snippet = document.createElement("span");
    snippet.className = "match";
    snippet.textContent = `“${hit.match.text}” · ${hit.match.source}`;
    figure.append(snippet);
  }
  figure.addEventListener("click", () => openViewer(hit));
  return figure;
}

function clock(seconds) {
  const s = Math.floor(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

// A video plays from its moment: the browser asks /file for byte ranges as it seeks.
function showVideo(hit) {
  const video = $("viewer-video");
  const isVideo = hit.media === "video";
  $("viewer-stage").hidden = isVideo;  // the photo and its matched-text box
  video.hidden = !isVideo;
  $("viewer-moments").hidden = !isVideo || !hit.moments.length;
  $("viewer-moments").replaceChildren();
  if (!isVideo) {
    video.removeAttribute("src");
    return;
  }
  video.src = `${hit.file}#t=${hit.start}`;
  video.play().catch(() => {});
  // The hit's own moment scores its cosine like the others (hybrid: dual_score; score is the fused one).
  for (const m of [{ start: hit.start, score: hit.dual_score ?? hit.score }, ...hit.moments]) {
    const jump = document.createElement("button");
    jump.type = "button";
    jump.textContent = `${clock(m.start)} (${m.score.toFixed(3)})`;
    jump.addEventListener("click", () => { video.currentTime = m.start; video.play().catch(() => {}); });
    $("viewer-moments").appendChild(jump);
  }
}

async function openViewer(hit) {
  const dialog = $("viewer");
  $("viewer-image").src = hit.preview;
  $("viewer-image").alt = hit.name;
  $("original").href = hit.file;
  showVideo(hit);
  showMatch(hit.match);
  const meta = $("viewer-meta");
  meta.textContent = `${hit.path} · score ${hit.score.toFixed(4)}`;
  $("more-like").onclick = () => moreLike(hit.id);
  $("viewer-texts").replaceChildren();
  $("viewer-texts-title").hidden = true;
  dialog.showModal();
  try {
    const item = await api(`/api/items/${hit.id}`);
    const at = item.media === "video" ? `@ ${clock(item.start)}` : null;
    const parts = [item.path, at, item.width && `${item.width}×${item.height}`, item.format, item.captured_at, item.camera, item.description, `score ${hit.score.toFixed(4)}`];
    meta.textContent = parts.filter(Boolean).join(" · ");
    const texts = await api(`/api/items/${hit.id}/texts?k=3`);
    for (const t of texts.hits) {
      const li = document.createElement("li");
      li.textContent = `${t.text} (${t.score.toFixed(3)})`;
      $("viewer-texts").appendChild(li);
    }
    $("viewer-texts-title").hidden = texts.hits.length === 0;
  } catch (err) {
    meta.textContent += ` · ${err.message}`;
  }
}

// The matched OCR line's box, drawn over the preview: its corners are fractions of the
// image's width and height, the SVG's viewBox is the unit square stretched over the image.
function showMatch(match) {
  const box = match && match.box;
  $("viewer-box").style.display = box ? "" : "none";
  $("viewer-box-shape").setAttribute("points", box ? [0, 2, 4, 6].map((i) => `${box[i]},${box[i + 1]}`).join(" ") : "");
  $("viewer-match").hidden = !match;
  $("viewer-match").textContent = match ? `Matched ${match.source}: “${match.text}”` : "";
}

function moreLike(id) {
  $("viewer").close();
  state.like = id;
  state.upload = null;
  $("q").value = "";
  showQueryImage(`/api/items/${id}/thumbnail`);
  state.offset = 0;
  search();
}

async function useImage(file) {
  if (!file) return;
  setStatus("Reading the image…");
  const form = new FormData();
  form.append("file", file);
  try {
    const data = await api("/api/uploads", { method: "POST", body: form });
    state.upload = data.id;
    state.like = null;
    showQueryImage(URL.createObjectURL(file));
    state.offset = 0;
    await search();
  } catch (err) {
    setStatus(err.message, true);
  }
}

function showQueryImage(src) {
  $("query-thumb").src = src;
  $("query-image").hidden = false;
  $("drop-text").hidden = true;
}

function clearImage() {
  state.upload = null;
  state.like = null;
  $("query-image").hidden = true;
  $("drop-text").hidden = false;
  $("file").value = "";
}

function wire() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    state.offset = 0;
    search();
  });
  $("file").addEventListener("change", () => useImage($("file").files[0]));
  $("clear-image").addEventListener("click", () => { clearImage(); state.offset = 0; search(); });
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); useImage(e.dataTransfer.files[0]); });
  $("next").addEventListener("click", () => { if (state.next !== null) { state.offset = state.next; search(); window.scrollTo(0, 0); } });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - (Number($("k").value) || 24)); search(); window.scrollTo(0, 0); });
  $("rerank").addEventListener("change", () => { state.offset = 0; search(); });
  $("viewer").addEventListener("close", () => $("viewer-video").pause());
}

async function init() {
  wire();
  try {
    const info = await api("/api/info");
    $("k").max = info.limits.max_k;
    if (!info.reranker) {
      $("rerank").disabled = true;
      $("rerank-label").classList.add("disabled");
      $("rerank-label").title = "This server was started without --reranker";
    }
    const videos = info.videos ? ` · ${info.videos.toLocaleString()} videos` : "";
    setStatus(`${info.images.toLocaleString()} images${videos} · ${info.model}`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

init();
