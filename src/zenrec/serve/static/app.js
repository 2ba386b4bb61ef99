// zenrec's web page: plain JavaScript over the server's JSON API (no build step, nothing fetched from elsewhere).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, list: null, model: null };
const FEEDBACK = [["like", "favorite", "like"], ["nope", "view", "not interested"], ["buy", "purchase", "buy"]];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function say(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = kind || "";
}

// every call: relative to the page, with the key when one is typed; errors are the API's {"error": {...}}
async function api(path, options) {
  const headers = { "accept": "application/json", ...(options && options.headers) };
  const key = $("key").value.trim();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const err = (body && body.error) || { code: String(response.status), message: response.statusText };
    const hint = response.status === 401 ? " — type the server's API key in the key field" : "";
    const error = new Error(`${response.status} ${err.code}: ${err.message}${hint}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function label(item, title) {
  return title ? `${title} (${item})` : String(item);
}

// ------------------------------------------------------------------ the user view
async function showUser(user) {
  state.user = user;
  $("user").value = user;
  if (location.hash !== `#user=${encodeURIComponent(user)}`) history.replaceState(null, "", `#user=${encodeURIComponent(user)}`);
  await Promise.all([loadRecs(), loadHistory()]);
}

async function loadRecs() {
  const user = state.user;
  const list = await api(`users/${encodeURIComponent(user)}/recommendations?k=10&reasons=true`);
  state.list = list;
  $("version").textContent = `model ${list.model_version} · list ${list.list_id.slice(0, 8)}`;
  $("fallback").textContent = list.fallback ? `(${list.fallback}: the model cannot score this user yet)` : "";
  const items = list.items.map((x) => {
    const reasons = (x.reasons || []).map((r) => label(r.item, r.title));
    const buttons = FEEDBACK.map(([cls, type, text]) => {
      const b = el("button", { class: cls, type: "button", title: `post a ${type} event` }, text);
      b.addEventListener("click", () => feedback(x, type, text));
      return b;
    });
    return el("li", { class: "rec", "data-item": String(x.item) },
      el("span", { class: "title" }, label(x.item, x.title)),
      el("span", { class: "score" }, x.score.toFixed(4)),
      el("div", { class: "reasons" }, reasons.length ? `because of ${reasons.join("; ")}` : ""),
      el("div", { class: "actions" }, ...buttons));
  });
  $("recs").replaceChildren(...items);
  $("recs").setAttribute("data-list-id", list.list_id);
}

async function loadHistory() {
  const h = await api(`users/${encodeURIComponent(state.user)}/history?limit=50`);
  const rows = (xs) => xs.map((x) => el("li", {}, label(x.item, x.title)));
  $("history-new").replaceChildren(...rows(h.new));
  $("history").replaceChildren(...rows(h.training));
  const known = h.known ? "" : " · unknown to the model";
  $("history-count").textContent = `(${h.n_training} training items, ${h.n_new} since${known})`;
}

async function feedback(item, type, text) {
  try {
    await api("events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: state.list.user ?? state.user, item: item.item, type, list_id: state.list.list_id }),
    });
    say(`stored “${text}” (${type}) for ${label(item.item, item.title)}; the list below is the next one`, "ok");
    await Promise.all([loadRecs(), loadHistory()]);
  } catch (e) {
    say(e.message, "error");
  }
}

// ------------------------------------------------------------------ the model view
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// a horizontal bar per model; the best bar is darker
function barChart(title, labels, values, lowerIsBetter, note) {
  const rowH = 24, left = 150, width = 460, top = 34;
  const height = top + rowH * labels.length + 24;
  const plot = svg("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                           "aria-label": title, "data-metric": title });
  plot.append(svg("text", { x: 8, y: 20, "font-size": 14, "font-weight": 600 }, title));
  const finite = values.filter((v) => Number.isFinite(v));
  const max = Math.max(...finite, 1e-12);
  const best = lowerIsBetter ? Math.min(...finite) : Math.max(...finite);
  labels.forEach((name, i) => {
    const y = top + i * rowH, v = values[i];
    plot.append(svg("text", { x: left - 6, y: y + 16, "text-anchor": "end", "font-size": 12 }, name.slice(0, 22)));
    if (!Number.isFinite(v)) return;
    const w = Math.max(1, (width - left - 70) * v / max);
    plot.append(svg("rect", { x: left, y: y + 4, width: w, height: rowH - 8, fill: v === best ? "#23395d" : "#8ea3c6" }));
    plot.append(svg("text", { x: left + w + 4, y: y + 16, "font-size": 12 }, v < 10 ? v.toFixed(4) : v.toFixed(1)));
  });
  if (note) plot.append(svg("text", { x: 8, y: height - 6, "font-size": 11, fill: "#777" }, note));
  return plot;
}

// the learning curves of the neural models: validation NDCG@10 per epoch (the training loss when not validated)
function curveChart(rows) {
  const runs = rows.filter((r) => Array.isArray(r.history) && r.history.length);
  if (!runs.length) return null;
  const validated = runs.every((r) => r.history.every((h) => Number.isFinite(h.valid)));
  const key = validated ? "valid" : "loss";
  const title = validated ? "validation ndcg@10 per epoch" : "training loss per epoch";
  const width = 460, height = 220, left = 50, right = 110, top = 34, bottom = 30;
  const plot = svg("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                           "aria-label": title, "data-metric": "learning curves" });
  plot.append(svg("text", { x: 8, y: 20, "font-size": 14, "font-weight": 600 }, title));
  const all = runs.flatMap((r) => r.history.map((h) => h[key])).filter((v) => Number.isFinite(v));
  const lo = Math.min(...all), hi = Math.max(...all, lo + 1e-12);
  const maxEpoch = Math.max(...runs.flatMap((r) => r.history.map((h) => h.epoch)), 2);
  const x = (e) => left + (width - left - right) * (e - 1) / (maxEpoch - 1);
  const y = (v) => top + (height - top - bottom) * (1 - (v - lo) / (hi - lo));
  plot.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, stroke: "#999" }));
  plot.append(svg("text", { x: left, y: height - 10, "font-size": 11, fill: "#777" }, "epoch 1"));
  plot.append(svg("text", { x: width - right, y: height - 10, "font-size": 11, fill: "#777", "text-anchor": "end" },
    `epoch ${maxEpoch}`));
  plot.append(svg("text", { x: left - 4, y: y(hi) + 4, "font-size": 11, "text-anchor": "end" }, hi.toFixed(3)));
  plot.append(svg("text", { x: left - 4, y: y(lo) + 4, "font-size": 11, "text-anchor": "end" }, lo.toFixed(3)));
  const colours = ["#23395d", "#c0392b", "#27ae60", "#8e44ad", "#d35400"];
  runs.forEach((r, i) => {
    const pts = r.history.filter((h) => Number.isFinite(h[key])).map((h) => `${x(h.epoch)},${y(h[key])}`);
    plot.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: colours[i % colours.length],
                                  "stroke-width": 2, "data-label": r.label }));
    plot.append(svg("text", { x: width - right + 6, y: top + 14 * (i + 1), "font-size": 12,
                              fill: colours[i % colours.length] }, r.label.slice(0, 16)));
  });
  return plot;
}

function table(node, head, rows) {
  node.replaceChildren(el("tr", {}, ...head.map((h) => el("th", {}, h))),
    ...rows.map((r) => el("tr", {}, ...r.map((c) => (c instanceof Node ? c : el("td", {}, String(c)))))));
}

function fmt(key, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return /^(avg_pop|novelty)@|_seconds$/.test(key) ? v.toFixed(2) : v.toFixed(4);
}

function leaderboard(board) {
  const part = "test";
  const rows = board.rows;
  const ks = board.ks, k0 = ks[0], kN = ks[ks.length - 1];
  const present = new Set(rows.flatMap((r) => Object.keys(r[part])));
  const keys = [...ks.flatMap((k) => [`recall@${k}`, `ndcg@${k}`]), `mrr@${k0}`, `hit@${k0}`,
                `coverage@${kN}`, `avg_pop@${kN}`].filter((k) => present.has(k));
  const lower = (k) => k.startsWith("avg_pop@");
  const best = {};
  for (const k of keys) {
    const vs = rows.map((r) => r[part][k]).filter((v) => Number.isFinite(v));
    best[k] = lower(k) ? Math.min(...vs) : Math.max(...vs);
  }
  const sampled = board.mode !== "full" ? " · SAMPLED ranking: not comparable with full ranking" : "";
  $("leaderboard-title").textContent = `${board.protocol} split · ${part} · ${board.mode}${sampled}`;
  table($("leaderboard"), ["model", ...keys, "fit s"], rows.map((r) => [r.label,
    ...keys.map((k) => el("td", { class: r[part][k] === best[k] ? "best" : "" }, fmt(k, r[part][k]))),
    fmt("fit_seconds", r.fit_seconds)]));
  const labels = rows.map((r) => r.label);
  const values = (k) => rows.map((r) => (r[part][k] === null || r[part][k] === undefined ? NaN : r[part][k]));
  const headline = board.headline && present.has(board.headline) ? board.headline : keys[0];
  const plots = [];
  for (const k of [headline, `recall@${k0}`]) {
    if (k && present.has(k) && !plots.some((p) => p.getAttribute("data-metric") === k)) {
      plots.push(barChart(k, labels, values(k), false, "higher is better"));
    }
  }
  if (present.has(`coverage@${kN}`)) {
    plots.push(barChart(`coverage@${kN}`, labels, values(`coverage@${kN}`), false,
      "share of the catalogue recommended to someone"));
  }
  if (present.has(`avg_pop@${kN}`)) {
    plots.push(barChart(`avg_pop@${kN}`, labels, values(`avg_pop@${kN}`), true,
      "popularity bias: mean popularity of recommended items (lower: less biased)"));
  }
  const curves = curveChart(rows);
  if (curves) plots.push(curves);
  $("plots").replaceChildren(...plots);
}

async function showModel() {
  const m = await api("model");
  state.model = m;
  table($("versions"), ["version", "model", "items", "traffic share"], m.served.map((v) => [
    v.version + (v.version === m.model_version ? " (promoted)" : ""), v.model, v.n_items,
    v.share === null ? "all" : `${(100 * v.share).toFixed(0)} %`]));
  $("registry-none").hidden = m.registry !== null;
  table($("registry"), m.registry ? ["version", "model", "created", "metrics", "note"] : [], (m.registry || []).map(
    (v) => [v.version, v.model || "", new Date(v.created * 1000).toISOString().slice(0, 16).replace("T", " "),
            Object.entries(v.metrics).map(([k, x]) => `${k} ${fmt(k, x)}`).join(", "), v.note]));
  if (!m.registry) $("registry").replaceChildren();
  $("leaderboard-none").hidden = m.leaderboard !== null;
  if (m.leaderboard) leaderboard(m.leaderboard);
  return m;
}

// ------------------------------------------------------------------ navigation
function route() {
  const model = location.hash === "#model";
  $("user-view").hidden = model;
  $("model-view").hidden = !model;
  $("tab-user").classList.toggle("active", !model);
  $("tab-model").classList.toggle("active", model);
  const run = model ? showModel() : (() => {
    const m = /^#user=(.+)$/.exec(location.hash);
    const user = m ? decodeURIComponent(m[1]) : state.user;
    return user ? showUser(user) : Promise.resolve();
  })();
  run.then(() => { if ($("status").className === "error") say(""); }).catch((e) => say(e.message, "error"));
}

async function start() {
  $("key").value = sessionStorage.getItem("zenrec-key") || "";
  $("key").addEventListener("change", () => sessionStorage.setItem("zenrec-key", $("key").value.trim()));
  $("pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("user").value.trim();
    if (user) showUser(user).then(() => say("")).catch((err) => say(err.message, "error"));
  });
  window.addEventListener("hashchange", route);
  try {
    const m = await api("model");
    $("users").replaceChildren(...m.sample_users.map((u) => el("option", { value: String(u) })));
  } catch (e) {
    say(e.message, "error");
  }
  route();
}

start();
