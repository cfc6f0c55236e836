// meshroom-gw dashboard: reads /status, room history and /events from the gateway serving it.
// Everything is built with DOM calls and textContent: names and posts are never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const canPost = document.body.dataset.canPost === "true";
const psks = new Map();      // room -> PSK the operator typed (memory only)
const cards = new Map();     // room -> {el, parts…}
const streams = new Map();   // key -> EventSource
const seen = new Set();      // post ids shown
let lastStatus = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function ago(unix) {
  if (!unix) return "-";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function clock(unix) {
  const d = new Date(unix * 1000);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// A small bar chart: values oldest first.
function bars(values, title, unit) {
  const w = 240, h = 60, n = Math.max(values.length, 1), top = Math.max(0, ...values), max = Math.max(1, top);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const total = values.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label", `${title}: ${total} ${unit}`);
  values.forEach((v, i) => {
    const bh = v === 0 ? 0 : Math.max(1, (v / max) * (h - 4));
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", (i * w) / n + 0.5);
    r.setAttribute("y", h - bh);
    r.setAttribute("width", Math.max(1, w / n - 1));
    r.setAttribute("height", bh);
    r.setAttribute("fill", "#1769aa");
    const t = document.createElementNS(SVG, "title");
    t.textContent = `${v} ${unit}`;
    r.append(t);
    svg.append(r);
  });
  return el("div", { class: "chart" }, el("div", { class: "title" }, `${title} (max ${top}, total ${total} ${unit})`), svg);
}

function socatLine(tun, room) {
  if (!tun || tun.state !== "up" || !Array.isArray(tun.rooms)) return null;
  const r = tun.rooms.find((x) => x.room === room);
  if (!r) return null;
  return `socat -u UDP4-RECV:${r.port},bind=${r.group},ip-add-membership=${r.group}:${tun.device},reuseaddr STDOUT`;
}

function postItem(p, fresh) {
  const who = (p.author && (p.author.name || p.author.id)) || "?";
  const li = el("li", { class: fresh ? "new" : "", "data-id": p.id },
    el("span", { class: "when" }, clock(p.room_ts)),
    el("span", { class: "who" }, who),
    el("span", { class: "text" }, p.text));
  li.title = `${p.author ? p.author.kind : ""} via ${p.origin}${p.hops ? `, ${p.hops} hop(s)` : ""}`;
  return li;
}

function addPost(p, fresh) {
  const c = cards.get(p.room);
  if (!c || seen.has(p.id)) return;
  seen.add(p.id);
  c.locked.hidden = true;
  c.posts.append(postItem(p, fresh));
  while (c.posts.children.length > 200) c.posts.firstChild.remove();
  c.posts.scrollTop = c.posts.scrollHeight;
  if (fresh) soon();
}

// A live post changes the room's figures: refresh them shortly (one read for a burst).
let soonTimer = null;
function soon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; loadStatus(); }, 700);
}

async function loadHistory(room) {
  const headers = psks.has(room) ? { "X-Room-Psk": psks.get(room) } : {};
  const r = await fetch(`/rooms/${encodeURIComponent(room)}/posts?limit=30`, { headers, cache: "no-store" });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `HTTP ${r.status}`);
  for (const p of await r.json()) addPost(p, false);
}

function openStream(key, url) {
  if (streams.has(key)) return;
  const es = new EventSource(url);
  streams.set(key, es);
  es.addEventListener("ready", () => { es.ready = true; updateLive(); });
  es.addEventListener("post", (ev) => { try { addPost(JSON.parse(ev.data), true); } catch (e) { /* ignore */ } });
  es.addEventListener("status", () => loadStatus());
  es.onerror = () => { es.ready = false; updateLive(); };
}

function updateLive() {
  const all = [...streams.values()];
  const on = all.length > 0 && all.every((s) => s.ready);
  const b = document.getElementById("live");
  b.textContent = on ? "live" : "offline";
  b.className = "badge " + (on ? "on" : "off");
  document.body.dataset.live = on ? "true" : "false";
}

async function unlock(room, psk, c) {
  c.error.textContent = "";
  psks.set(room, psk);
  try {
    await loadHistory(room);
    c.lockForm.hidden = true;
    c.locked.textContent = "No posts yet.";
    openStream("room:" + room, `/events?room=${encodeURIComponent(room)}&psk=${encodeURIComponent(psk)}`);
    if (c.postForm) c.postForm.hidden = false;
  } catch (e) {
    psks.delete(room);
    c.error.textContent = `Not unlocked: ${e.message}`;
  }
}

async function send(room, c) {
  const text = c.text.value.trim();
  if (!text) return;
  c.error.textContent = "";
  const headers = { "content-type": "application/json" };
  if (psks.has(room)) headers["X-Room-Psk"] = psks.get(room);
  const body = JSON.stringify({ text, author: c.author.value.trim() || undefined });
  const r = await fetch(`/rooms/${encodeURIComponent(room)}/posts`, { method: "POST", headers, body });
  if (r.ok) c.text.value = "";
  else c.error.textContent = (await r.json().catch(() => ({}))).error || `HTTP ${r.status}`;
}

function roomCard(room) {
  const c = {};
  c.title = el("h3", {}, room.name, " ", el("span", { class: "badge " + (room.private ? "private" : "public") }, room.private ? "private" : "public"));
  c.desc = el("p", { class: "desc" });
  c.facts = el("div", { class: "facts" });
  c.people = el("div", { class: "people" });
  c.socat = el("div", { class: "socat" });
  c.chart = el("div");
  c.posts = el("ul", { class: "posts", "aria-live": "polite" });
  c.locked = el("p", { class: "locked" }, room.private ? "Private room: enter its PSK to read its posts." : "No posts yet.");
  c.error = el("div", { class: "error" });
  const kids = [c.title, c.desc, c.facts, c.people, c.socat, c.chart, c.locked, c.posts];
  if (room.private) {
    const input = el("input", { type: "password", placeholder: "room PSK", autocomplete: "off", name: "psk-" + room.name });
    c.lockForm = el("form", { class: "row unlock" }, input, el("button", { type: "submit" }, "Unlock"));
    c.lockForm.addEventListener("submit", (e) => { e.preventDefault(); unlock(room.name, input.value, c); });
    kids.push(c.lockForm);
  }
  if (canPost) {
    c.author = el("input", { type: "text", placeholder: "name (optional)", size: "10" });
    c.text = el("input", { type: "text", placeholder: `post to ${room.name}`, maxlength: "4096" });
    c.postForm = el("form", { class: "row post" }, c.author, c.text, el("button", { type: "submit" }, "Post"));
    c.postForm.addEventListener("submit", (e) => { e.preventDefault(); send(room.name, c); });
    c.postForm.hidden = room.private;
    kids.push(c.postForm);
  }
  kids.push(c.error);
  c.el = el("div", { class: "card room", "data-room": room.name }, ...kids);
  return c;
}

function renderPeople(c, room) {
  const clients = room.clients || {};
  const list = room.participants || [];
  const sides = [["radio", "Radio clients"], ["ip", "IP listeners"], ["local", "Local"]];
  const box = [];
  for (const [kind, label] of sides) {
    const ps = list.filter((p) => p.kind === kind);
    if (!ps.length) continue;
    box.push(el("div", { class: "side" }, `${label} (${ps.length})`));
    box.push(el("ul", {}, ...ps.map((p) => el("li", {},
      p.name || (kind === "radio" ? p.id.slice(0, 8) : p.id),
      p.role ? ` · ${p.role}` : "",
      kind === "radio" ? ` · heard ${ago(p.last_heard)}` : ""))));
  }
  const remote = clients.remote || {};
  for (const [server, p] of Object.entries(remote)) {
    const names = (p.names || []).map((n) => n.name);
    box.push(el("div", { class: "side remote", "data-server": server },
      `At ${server}: ${p.total} (radio ${p.radio}, ip ${p.ip}, local ${p.local})`, names.length ? `: ${names.join(", ")}` : ""));
  }
  if (!box.length) box.push(el("div", { class: "side" }, "Nobody here right now."));
  c.people.replaceChildren(...box);
}

function renderRooms(s) {
  const root = document.getElementById("rooms");
  for (const room of s.rooms || []) {
    let c = cards.get(room.name);
    if (!c) {
      c = roomCard(room);
      cards.set(room.name, c);
      root.append(c.el);
      if (!room.private) loadHistory(room.name).catch((e) => { c.error.textContent = e.message; });
    }
    c.desc.textContent = room.description || "";
    c.desc.hidden = !room.description;
    const cl = room.clients || {};
    c.facts.replaceChildren(
      el("span", {}, "here ", el("b", { class: "here" }, cl.total - (cl.peer || 0))),
      el("span", {}, "federation-wide ", el("b", { class: "fed-total" }, cl.federation_total ?? cl.total)),
      el("span", {}, "history ", el("b", {}, `${room.history.count}/${room.history.max}`)),
      el("span", {}, "last post ", el("b", {}, room.last_post_at ? ago(room.last_post_at) : "-")));
    renderPeople(c, room);
    const line = socatLine(s.tun, room.name);
    if (line) {
      const code = el("code", {}, line);
      c.socat.replaceChildren(code, el("button", { class: "plain", type: "button", onclick: () => {
        if (navigator.clipboard) navigator.clipboard.writeText(line).catch(() => {});
        const r = document.createRange(); r.selectNodeContents(code);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
      } }, "Copy"));
      const tr = s.tun.rooms.find((x) => x.room === room.name);
      c.socat.title = `multicast group ${tr.group}:${tr.port}`;
    } else {
      c.socat.replaceChildren(el("span", { class: "side" }, "Multicast: TUN not running"));
    }
    c.chart.replaceChildren(bars(room.posts_per_hour || [], "Posts per hour, last 24 h", "posts"));
  }
}

function renderPeers(s) {
  const peers = Array.isArray(s.peers) ? s.peers : [];
  const root = document.getElementById("peers");
  if (!peers.length) { root.replaceChildren(el("div", { class: "card" }, "No peers configured.")); return; }
  const rows = peers.map((p) => el("tr", {},
    el("td", {}, p.server || `${p.host}:${p.port}`, el("br"), el("small", {}, `${p.host}:${p.port}`)),
    el("td", { class: "state-" + p.state }, p.state, p.since ? el("small", {}, ` since ${ago(p.since)}`) : ""),
    el("td", {}, p.rtt_ms != null ? `${p.rtt_ms.toFixed(1)} ms` : "-"),
    el("td", {}, (p.shared_rooms || []).join(", ") || "-"),
    el("td", {}, `${p.posts_in ?? "-"} / ${p.posts_out ?? "-"}`),
    el("td", { class: "error" }, p.last_error || "")));
  root.replaceChildren(el("div", { class: "card" }, el("table", {},
    el("thead", {}, el("tr", {}, ...["Peer", "State", "RTT", "Shared rooms", "Posts in/out", "Last error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows))));
}

function renderRadio(s) {
  const r = s.radio || {};
  const root = document.getElementById("radio");
  const card = el("div", { class: "card" });
  const head = el("div", { class: "facts" },
    el("span", {}, "backend ", el("b", {}, r.backend || "-")),
    el("span", {}, "state ", el("b", {}, r.state || "-")));
  card.append(head);
  if (r.frequency_mhz === undefined) {
    if (r.reason) card.append(el("p", { class: "side" }, r.reason));
  } else {
    card.append(el("div", { class: "facts" },
      el("span", {}, "region ", el("b", {}, r.region)),
      el("span", {}, el("b", {}, `${r.frequency_mhz} MHz`)),
      el("span", {}, el("b", {}, `SF${r.spreading_factor}`)),
      el("span", {}, el("b", {}, `${r.bandwidth_khz} kHz`)),
      el("span", {}, "CR ", el("b", {}, r.coding_rate)),
      el("span", {}, el("b", {}, `${r.power_dbm} dBm`)),
      el("span", {}, "rx/tx ", el("b", {}, `${r.packets.rx}/${r.packets.tx}`))));
    const a = r.airtime;
    const pct = a.allowed_ms > 0 ? (100 * a.used_ms) / a.allowed_ms : 0;
    const fill = el("div", { class: "fill" + (pct > 90 ? " bad" : pct > 60 ? " warn" : "") });
    fill.style.width = Math.min(100, pct).toFixed(1) + "%";
    card.append(el("div", { class: "gauge", id: "airtime-gauge", "data-percent": pct.toFixed(1) },
      el("div", {}, "Airtime ", el("b", { class: "figure" }, `${(a.used_ms / 1000).toFixed(1)} s of ${(a.allowed_ms / 1000).toFixed(0)} s`),
        ` (${pct.toFixed(1)}% of the ${a.duty_cycle_percent}% duty-cycle budget over ${a.window_s} s)`),
      el("div", { class: "bar", role: "meter", "aria-valuenow": pct.toFixed(1), "aria-valuemin": "0", "aria-valuemax": "100" }, fill)));
    const h = r.last_hour;
    if (h) {
      card.append(bars(h.airtime_ms, "Airtime per minute, last hour", "ms"));
      card.append(bars(h.tx.map((t, i) => t + h.rx[i]), "Frames per minute (rx+tx), last hour", "frames"));
    }
  }
  root.replaceChildren(card);
}

let loading = false;
async function loadStatus() {
  if (loading) return;
  loading = true;
  try {
    const r = await fetch("/status", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    lastStatus = s;
    document.getElementById("server").textContent = s.server.name;
    document.getElementById("meta").textContent = `meshroom-gw ${s.server.version}, up ${s.server.uptime_s}s`;
    document.title = `${s.server.name} · meshroom-gw`;
    renderRooms(s);
    renderPeers(s);
    renderRadio(s);
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("meta").textContent = `cannot read /status: ${e.message}`;
  } finally {
    loading = false;
  }
}

loadStatus().then(() => openStream("public", "/events"));
setInterval(loadStatus, 5000);
