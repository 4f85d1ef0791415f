// mmgen viewer: a grid of images and one page per image, from the JSON routes of mmgen/viewer/server.py.
// Every value from the data is put in the page with textContent (never as HTML).
"use strict";

const PAGE_SIZE = 60;
const FILTERS = ["program", "answer_type", "status", "label"];
const state = { summary: null, layers: null, offset: 0 };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showError(err) {
  $("error").textContent = String(err.message || err);
  $("error").hidden = false;
}

// ------------------------------------------------------------------ routing (#/ and #/image/ID, filters as ?query)
function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  const m = path.match(/^\/image\/(.+)$/);
  return m ? { route: "image", id: decodeURIComponent(m[1]), params } : { route: "grid", params };
}

function filterParams() {
  const p = {};
  const { params } = parseHash();
  for (const f of FILTERS) if (params.get(f)) p[f] = params.get(f);
  return p;
}

function hashWith(route, filters) {
  const q = new URLSearchParams(filters).toString();
  return "#" + route + (q ? "?" + q : "");
}

function setFilter(name, value) {
  const { route, id } = parseHash();
  const filters = filterParams();
  if (value) filters[name] = value; else delete filters[name];
  state.offset = 0;
  location.hash = hashWith(route === "image" ? "/image/" + encodeURIComponent(id) : "/", filters);
}

// ------------------------------------------------------------------ filters
function fillSelect(select, counts, label) {
  for (const [name, n] of Object.entries(counts)) select.append(el("option", { value: name, text: `${name} (${n})` }));
  select.title = label;
}

function initFilters(summary) {
  fillSelect($("f-program"), summary.programs, "program");
  fillSelect($("f-answer-type"), summary.answer_types, "answer type");
  if (summary.curated) {
    for (const s of summary.statuses) $("f-status").append(el("option", { value: s, text: s }));
  } else {
    $("f-status").append(el("option", { value: "", text: "(no curation output)" }));
    $("f-status").disabled = true;
  }
  const bind = (id, name) => $(id).addEventListener("change", (e) => setFilter(name, e.target.value));
  bind("f-program", "program");
  bind("f-answer-type", "answer_type");
  bind("f-status", "status");
  let timer = null;
  $("f-label").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => setFilter("label", e.target.value.trim()), 250);
  });
}

function syncFilterControls() {
  const f = filterParams();
  $("f-program").value = f.program || "";
  $("f-answer-type").value = f.answer_type || "";
  $("f-status").value = f.status || "";
  if (document.activeElement !== $("f-label")) $("f-label").value = f.label || "";
}

// ------------------------------------------------------------------ grid
async function renderGrid() {
  $("image-view").hidden = true;
  $("grid-view").hidden = false;
  const filters = filterParams();
  const data = await api("/api/images", { ...filters, offset: state.offset, limit: PAGE_SIZE });
  const grid = $("grid");
  grid.replaceChildren();
  for (const img of data.images) {
    const thumb = el("img", { src: `/overlay?id=${encodeURIComponent(img.id)}&layers=boxes&max_side=360`,
                              alt: img.path, loading: "lazy" });
    const counts = `${img.objects} objects · ${img.relations} relations · ${img.text} text · ${img.qa} QA`;
    const card = el("a", { class: "card", href: hashWith("/image/" + encodeURIComponent(img.id), filters),
                           "data-id": img.id, title: img.labels.join(", ") },
                    thumb, el("div", { class: "path", text: img.path || img.id }),
                    el("div", { class: "counts", text: counts }));
    grid.append(card);
  }
  const shown = data.images.length;
  $("grid-count").textContent = `${data.total} image${data.total === 1 ? "" : "s"}` +
    (Object.keys(filters).length ? " match the filters" : "") + (shown < data.total ?
    ` · showing ${data.offset + 1}–${data.offset + shown}` : "");
  $("prev").disabled = data.offset === 0;
  $("next").disabled = data.offset + shown >= data.total;
  $("pager").hidden = data.total <= PAGE_SIZE;
}

// ------------------------------------------------------------------ one image
function overlayUrl(id) {
  return `/overlay?id=${encodeURIComponent(id)}&layers=${[...state.layers].join(",")}&max_side=1024&min_side=640`;
}

function renderLayers(id) {
  const box = $("layers");
  box.replaceChildren(el("legend", { text: "Layers" }));
  for (const layer of state.summary.layers) {
    const input = el("input", { type: "checkbox", value: layer, name: "layer" });
    input.checked = state.layers.has(layer);
    input.addEventListener("change", () => {
      if (input.checked) state.layers.add(layer); else state.layers.delete(layer);
      $("overlay").src = overlayUrl(id);
    });
    box.append(el("label", { class: "layer-toggle" }, input, " " + layer));
  }
}

function fmtBox(b) { return "[" + b.map((v) => Math.round(v)).join(", ") + "]"; }

function renderGraph(graph) {
  const root = $("graph");
  root.replaceChildren();
  const byId = Object.fromEntries(graph.objects.map((o) => [o.id, o]));
  const table = el("table", { id: "objects" },
    el("thead", {}, el("tr", {}, ...["id", "label", "score", "box", "attributes"].map((h) => el("th", { text: h })))));
  const body = el("tbody");
  for (const o of graph.objects) {
    const attrs = (o.attributes || []).map((a) => `${a.name} (${a.category} ${a.score.toFixed(2)})`).join(", ");
    const label = el("td", {}, el("span", { class: "swatch" }), o.label);
    label.firstChild.style.background = o.color;
    body.append(el("tr", { class: "object" }, el("td", { text: o.id }), label,
      el("td", { text: o.score.toFixed(2) }), el("td", { text: fmtBox(o.box) }),
      el("td", { text: attrs + (o.depth !== undefined ? ` depth ${o.depth.toFixed(3)}` : "") })));
  }
  table.append(body);
  root.append(el("h4", { text: `Objects (${graph.objects.length})` }), table);
  const rels = el("ul", { class: "plain", id: "relations" });
  for (const r of graph.relations) {
    rels.append(el("li", { class: "relation", text:
      `${byId[r.subject].label} (${r.subject}) —${r.predicate}→ ${byId[r.object].label} (${r.object})  ` +
      `${r.score.toFixed(2)} · ${r.source}` }));
  }
  root.append(el("h4", { text: `Relations (${graph.relations.length})` }), rels);
  const text = el("ul", { class: "plain", id: "text-regions" });
  for (const t of graph.text) {
    text.append(el("li", { class: "text-region", text: `“${t.text}” ${t.score.toFixed(2)} ${fmtBox(t.box)}` +
      (t.object ? ` on ${byId[t.object].label} (${t.object})` : "") }));
  }
  root.append(el("h4", { text: `Text (${graph.text.length})` }), text);
  root.append(el("p", { class: "muted", text: "Fields annotated: " + (graph.fields.join(", ") || "none") +
    (graph.depth ? ` · depth map ${graph.depth.width}×${graph.depth.height}` : "") }));
}

function renderRecord(rec) {
  const head = el("div", { class: "qa-head" },
    el("span", { class: "badge program", text: rec.program }),
    el("span", { class: "badge", text: rec.question_type }),
    el("span", { class: "badge", text: rec.answer_type }));
  if (rec._status) {
    const badge = el("span", { class: `badge ${rec._status} status`,
                               text: rec._status + (rec._reason ? `: ${rec._reason}` : "") });
    if (rec._detail) badge.title = rec._detail;
    head.append(badge);
  }
  head.append(el("span", { class: "badge pending verify-badge", text: "verifying…" }));
  head.append(el("span", { class: "muted", text: rec.id + (rec._source !== "qa" ? ` · ${rec._source}/` : "") }));
  const card = el("article", { class: "qa-record", "data-id": rec.id }, head);
  const turns = rec.turns && rec.turns.length ? rec.turns : [[rec.question, rec.answer]];
  turns.forEach(([q, a], i) => {
    card.append(el("div", { class: "q", text: "Q: " + q }));
    if (i === 0 && rec.options && rec.options.length) {
      const ol = el("ol", { class: "options" });
      rec.options.forEach((opt, k) => ol.append(el("li", { class: k === rec.answer_index ? "correct" : "", text: opt })));
      card.append(ol);
    }
    card.append(el("div", { class: "a", text: "A: " + a }));
  });
  if (rec.rationale) card.append(el("div", { class: "rationale", text: "Why: " + rec.rationale }));
  if (rec._detail) card.append(el("div", { class: "drop-detail problem", text: "Dropped: " + rec._detail }));
  return card;
}

async function verifyRecords(id) {
  let checks;
  try {
    checks = await api("/api/verify", { id });
  } catch (err) {
    for (const b of document.querySelectorAll(".verify-badge")) { b.textContent = "verify failed to run"; }
    return;
  }
  if (parseHash().id !== id) return;
  for (const card of document.querySelectorAll(".qa-record")) {
    const c = checks[card.dataset.id];
    const badge = card.querySelector(".verify-badge");
    if (!c) continue;
    badge.classList.remove("pending");
    if (c.ok === true) { badge.classList.add("verified"); badge.textContent = "verified"; }
    else if (c.ok === false) {
      badge.classList.add("failed"); badge.textContent = "verification failed";
      card.append(el("div", { class: "problem", text: c.message }));
    } else { badge.textContent = "not checked"; badge.title = c.message; }
  }
}

async function renderImage(id) {
  $("grid-view").hidden = true;
  $("image-view").hidden = false;
  const filters = filterParams();
  $("back").href = hashWith("/", filters);
  const data = await api("/api/image", { id, ...filters });
  const g = data.graph;
  $("image-title").textContent = g.path || g.image_id;
  $("image-meta").textContent = `${g.image_id} · ${g.width}×${g.height}` +
    (data.has_image ? "" : " · image file not found: drawn on a plain canvas");
  renderLayers(id);
  $("overlay").src = overlayUrl(id);
  renderGraph(g);
  const list = $("qa");
  list.replaceChildren(...data.records.map(renderRecord));
  $("qa-count").textContent = data.records.length === data.total_records ? `(${data.total_records})`
    : `(${data.records.length} of ${data.total_records} match the filters)`;
  verifyRecords(id);
}

// ------------------------------------------------------------------ start
async function render() {
  $("error").hidden = true;
  syncFilterControls();
  const { route, id } = parseHash();
  try {
    if (route === "image") await renderImage(id); else await renderGrid();
  } catch (err) { showError(err); }
}

async function main() {
  try {
    state.summary = await api("/api/summary");
  } catch (err) { showError(err); return; }
  const s = state.summary;
  state.layers = new Set(s.layers);
  $("summary").textContent = `${s.images} images · ${s.records} QA records · ${s.root}` +
    (s.curated ? " · curated" : "");
  initFilters(s);
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); renderGrid(); });
  $("next").addEventListener("click", () => { state.offset += PAGE_SIZE; renderGrid(); });
  window.addEventListener("hashchange", render);
  await render();
  document.body.dataset.ready = "1";
}

main();
