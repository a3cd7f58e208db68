// xmr duplicates page: plain JS over GET /api/duplicates. Text goes into the page only
// through textContent, never innerHTML, so file names cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { next: null, query: "" };
const PAGE = 20;

function query() {
  const params = new URLSearchParams();
  for (const box of document.querySelectorAll("input[name=tier]:checked")) params.append("tier", box.value);
  params.set("min_score", $("min-score").value || "0.95");
  return params;
}

async function load(offset) {
  const params = offset ? new URLSearchParams(state.query) : query();
  if (!params.getAll("tier").length) { setStatus("Pick at least one kind of duplicate.", true); return; }
  state.query = params.toString();
  params.set("offset", offset);
  params.set("limit", PAGE);
  if (!offset) { $("groups").replaceChildren(); setStatus("Comparing every photo with the others… (minutes for a large library)"); }
  try {
    const response = await fetch(`/api/duplicates?${params}`);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || response.statusText));
    for (const group of data.groups) $("groups").appendChild(section(group));
    state.next = data.next_offset;
    $("pager").hidden = data.next_offset === null;
    const spare = data.total ? ` · showing ${data.offset + data.groups.length} of ${data.total}` : "";
    let text = `${data.total} groups among ${data.images.toLocaleString()} photos${spare}`;
    if (data.took_ms) text += ` · ${(data.took_ms / 1000).toFixed(1)} s`;
    if (data.without_hash) text += ` · ${data.without_hash} photos lack a perceptual hash: run xmr index once to find them as near copies`;
    setStatus(text);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(error));
}

function section(group) {
  const box = document.createElement("section");
  box.className = `dup-group tier-${group.tier}`;
  const title = document.createElement("h2");
  title.textContent = `${group.tier} · ${group.members.length} photos`;
  const why = document.createElement("p");
  why.className = "why";
  why.textContent = `Suggested keeper: ${group.members[0].name} (${group.reason})`;
  const grid = document.createElement("div");
  grid.className = "grid";
  for (const member of group.members) grid.appendChild(card(member));
  box.append(title, why, grid);
  return box;
}

function card(member) {
  const figure = document.createElement("figure");
  figure.className = member.relation === "keeper" ? "card keeper" : "card";
  const link = document.createElement("a");
  link.href = member.file;
  link.target = "_blank";
  link.rel = "noopener";
  const img = document.createElement("img");
  img.src = member.thumbnail;
  img.alt = member.name;
  img.loading = "lazy";
  link.appendChild(img);
  const caption = document.createElement("figcaption");
  caption.className = "dup-caption";
  const lines = [
    member.relation === "keeper" ? "keep" : member.relation,
    member.name,
    `${member.width}×${member.height} · ${(member.size / 1e6).toFixed(1)} MB`,
    member.relation === "keeper" ? (member.captured_at || "") : `score ${member.score.toFixed(3)}${member.bits === null ? "" : ` · ${member.bits} bits`}`,
  ];
  for (const text of lines) {
    const span = document.createElement("span");
    span.textContent = text;
    caption.appendChild(span);
  }
  caption.title = member.path;
  figure.append(link, caption);
  return figure;
}

$("dup-form").addEventListener("submit", (event) => { event.preventDefault(); load(0); });
$("more").addEventListener("click", () => { if (state.next !== null) load(state.next); });
