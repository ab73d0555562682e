// Layerwatch web console: plain JS, no build step. Talks to the appliance's own /api (see /api/docs).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { camera: null, status: null, alert: null, deadline: null, zones: [], drawing: null, tab: "live" };

function token() { return localStorage.getItem("layerwatchToken") || ""; }
function setToken(value) {
  localStorage.setItem("layerwatchToken", value);
  // <img>, the MJPEG stream and EventSource cannot send a header: reads may use this cookie
  document.cookie = "layerwatch_token=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
}
function toast(text) { const t = $("toast"); t.textContent = text; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 2500); }

async function api(method, path, body, type) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  let payload;
  if (body !== undefined) {
    if (type) { headers["Content-Type"] = type; payload = body; }
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401) {
    const value = prompt("API token (on the appliance: /var/lib/layerwatch/api_token)");
    if (value) { setToken(value.trim()); return api(method, path, body, type); }
    throw new Error("a token is needed");
  }
  if (!response.ok) throw new Error((await response.text()) || response.statusText);
  const kind = response.headers.get("content-type") || "";
  return kind.includes("json") ? response.json() : response.text();
}
const post = (path, body) => api("POST", path, body === undefined ? {} : body);
async function act(label, fn) { try { await fn(); toast(label); } catch (e) { toast(label + " failed: " + e.message); } }

// -- status and the active alert -------------------------------------------------------------
function current() { return state.status ? state.status.cameras.find((c) => c.name === state.camera) : null; }

function render() {
  const cam = current();
  if (!cam) return;
  const decision = cam.decision || cam.state || "-";
  const badge = $("decision");
  badge.textContent = cam.state === "watching" ? decision : cam.state + " / " + decision;
  badge.className = "badge " + (cam.state === "watching" ? decision : cam.state);
  $("score").textContent = "score " + (cam.score === undefined ? "-" : Number(cam.score).toFixed(2));
  const facts = { State: cam.state, Camera: cam.camera_status, "Frames/s": cam.fps, Analysed: cam.analysed,
    Calibration: cam.calibration || "not calibrated", Backend: cam.backend,
    Printer: cam.printer ? cam.printer.state + (cam.printer.progress != null ? " " + cam.printer.progress + " %" : "") : "-" };
  $("facts").innerHTML = Object.entries(facts).map(([k, v]) => `<dt>${k}</dt><dd>${v ?? "-"}</dd>`).join("");
  $("cal-result").textContent = JSON.stringify({ calibrated: cam.calibrated, calibration: cam.calibration,
    learner: cam.learner, ignore_zones: (cam.ignore_zones || []).length }, null, 1);
  const active = state.status.active_alerts.find((a) => a.camera === state.camera) || state.status.active_alerts[0];
  if (active) {
    if (!state.alert || state.alert.alert !== active.alert) {
      $("alert-image").src = "/api/alerts/" + active.alert + ".jpg";
    }
    state.alert = active;
    state.deadline = Date.now() + active.remaining_s * 1000;
    $("alert-camera").textContent = active.camera;
    $("alert-score").textContent = Number(active.score).toFixed(2);
    $("alert").hidden = false;
    $("pause-print").hidden = $("cancel-print").hidden = !state.status.printer_action;
  } else {
    state.alert = null; state.deadline = null; $("alert").hidden = true;
  }
}

function tick() {
  if (state.deadline !== null) $("countdown").textContent = Math.max(0, Math.ceil((state.deadline - Date.now()) / 1000));
}

async function refresh() {
  try {
    state.status = await api("GET", "/api/status");
    const select = $("camera");
    if (!select.options.length) {
      for (const cam of state.status.cameras) select.add(new Option(cam.name, cam.name));
      state.camera = state.status.cameras.length ? state.status.cameras[0].name : null;
      setLive();
    }
    render();
  } catch (e) { /* offline for a moment: the next poll tries again */ }
}

// -- live view ---------------------------------------------------------------------------------
let overlayTimer = null;
function setLive() {
  if (!state.camera) return;
  clearInterval(overlayTimer);
  const base = "/api/cameras/" + encodeURIComponent(state.camera);
  if ($("overlay").checked) {
    const load = () => { $("live").src = base + "/frame.jpg?overlay=1&t=" + Date.now(); };
    load(); overlayTimer = setInterval(load, 1000);
  } else {
    $("live").src = base + "/stream";
  }
}

// -- alert history -----------------------------------------------------------------------------
async function loadHistory() {
  const alerts = await api("GET", "/api/alerts?limit=50");
  $("history").innerHTML = alerts.length ? alerts.map((a) => `<li><img loading="lazy" src="/api/alerts/${a.id}.jpg" alt="evidence ${a.id}">
    <div><strong>${a.camera}</strong> ${new Date(a.created * 1000).toLocaleString()}<br>score ${a.score}
    ${a.repeats ? "(" + a.repeats + " reminders)" : ""}<br>${a.acknowledged ? "acknowledged" : "not acknowledged"}
    ${a.answer ? " &middot; " + a.answer.replace("_", " ") : ""}</div></li>`).join("") : "<li>No alerts yet.</li>";
}

// -- ignore zones ------------------------------------------------------------------------------
function drawZones() {
  const canvas = $("zone-canvas"), img = $("zone-frame");
  canvas.width = img.clientWidth; canvas.height = img.clientHeight;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const all = state.drawing ? state.zones.concat([state.drawing]) : state.zones;
  for (const z of all) {
    g.fillStyle = "rgba(255, 200, 0, 0.35)"; g.strokeStyle = "#ffc800"; g.lineWidth = 2;
    const x = Math.min(z.x0, z.x1) * canvas.width, y = Math.min(z.y0, z.y1) * canvas.height;
    const w = Math.abs(z.x1 - z.x0) * canvas.width, h = Math.abs(z.y1 - z.y0) * canvas.height;
    g.fillRect(x, y, w, h); g.strokeRect(x, y, w, h);
  }
}
function point(event) {
  const r = $("zone-canvas").getBoundingClientRect();
  return { x: Math.min(1, Math.max(0, (event.clientX - r.left) / r.width)), y: Math.min(1, Math.max(0, (event.clientY - r.top) / r.height)) };
}
async function loadZones() {
  $("zone-frame").src = "/api/cameras/" + encodeURIComponent(state.camera) + "/frame.jpg?t=" + Date.now();
  await refresh();
  state.zones = (current() || {}).ignore_zones || []; drawZones();
  $("zones-status").textContent = state.zones.length + " zone(s) saved";
}

// -- wiring ------------------------------------------------------------------------------------
function showTab(name) {
  state.tab = name;
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== "tab-" + name; });
  if (name === "history") loadHistory().catch((e) => toast(e.message));
  if (name === "zones") loadZones().catch((e) => toast(e.message));
  if (name === "settings") api("GET", "/api/config").then((c) => { $("settings").textContent = JSON.stringify(c, null, 2); });
}

function wire() {
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("camera").addEventListener("change", (e) => { state.camera = e.target.value; setLive(); render(); });
  $("overlay").addEventListener("change", setLive);
  $("signin").addEventListener("click", () => { const v = prompt("API token"); if (v) setToken(v.trim()); });
  const target = () => ({ camera: state.alert ? state.alert.camera : state.camera });
  $("ack").addEventListener("click", () => act("Acknowledged", () => post("/api/control/acknowledge", target())));
  $("false-alarm").addEventListener("click", () => act("Answered: false alarm", () =>
    post("/api/cameras/" + target().camera + "/commands/false_alarm", { payload: state.alert ? state.alert.alert : "" })));
  $("pause-print").addEventListener("click", () => act("Print pause sent", () => post("/api/control/pause_print", target())));
  $("cancel-print").addEventListener("click", () => {
    if (confirm("Cancel the print?")) act("Print cancel sent", () => post("/api/control/cancel_print", target()));
  });
  $("pause").addEventListener("click", () => act("Monitoring paused", () => post("/api/control/pause", { camera: state.camera })));
  $("resume").addEventListener("click", () => act("Monitoring resumed", () => post("/api/control/resume", { camera: state.camera })));
  $("test-alarm").addEventListener("click", () => act("Test alarm sent", () => post("/api/control/test_alarm", { camera: state.camera })));
  $("calibrate").addEventListener("click", () => act("Calibration started", () =>
    post("/api/cameras/" + state.camera + "/calibrate", { frames: Number($("cal-frames").value) })));
  $("upload").addEventListener("click", () => act("Examples uploaded", async () => {
    for (const file of $("examples").files) await api("POST", "/api/cameras/" + state.camera + "/examples?label=failure", file, file.type || "image/jpeg");
  }));
  const canvas = $("zone-canvas");
  canvas.addEventListener("pointerdown", (e) => { const p = point(e); state.drawing = { x0: p.x, y0: p.y, x1: p.x, y1: p.y }; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointermove", (e) => { if (!state.drawing) return; const p = point(e); state.drawing.x1 = p.x; state.drawing.y1 = p.y; drawZones(); });
  canvas.addEventListener("pointerup", () => {
    const z = state.drawing; state.drawing = null;
    if (z && Math.abs(z.x1 - z.x0) > 0.01 && Math.abs(z.y1 - z.y0) > 0.01) {
      state.zones.push({ x0: Math.min(z.x0, z.x1), y0: Math.min(z.y0, z.y1), x1: Math.max(z.x0, z.x1), y1: Math.max(z.y0, z.y1) });
    }
    drawZones();
  });
  $("zone-frame").addEventListener("load", drawZones);
  $("zones-save").addEventListener("click", () => act("Zones saved", async () => {
    await api("PUT", "/api/cameras/" + state.camera + "/ignore_zones", { zones: state.zones });
    $("zones-status").textContent = state.zones.length + " zone(s) saved";
  }));
  $("zones-clear").addEventListener("click", () => { state.zones = []; drawZones(); });
}

function listen() {
  const events = new EventSource("/api/events");
  for (const kind of ["alert", "alert_update", "state", "calibration"]) {
    events.addEventListener(kind, () => { refresh(); if (state.tab === "history") loadHistory().catch(() => {}); });
  }
  events.addEventListener("camera", (e) => {
    const data = JSON.parse(e.data);
    const cam = current();
    if (cam && data.camera === cam.name) { Object.assign(cam, data); render(); }
  });
}

wire();
refresh();
listen();
setInterval(refresh, 2000);
setInterval(tick, 250);
