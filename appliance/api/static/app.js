// Layerwatch web console: plain JS, no build step. Talks to the appliance's own /api (see /api/docs).
// Every string from the server goes into the page as text (textContent, DOM nodes), never as HTML, and
// the Content-Security-Policy forbids inline script. The token is never kept by the page: signing in sets
// an HttpOnly, SameSite=Strict cookie (POST /api/login); control requests add X-Layerwatch-Console.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { camera: null, status: null, alert: null, zones: [], drawing: null, tab: "live", events: null, started: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}
function toast(text) { const t = $("toast"); t.textContent = text; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 2500); }
const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString();

class SignInNeeded extends Error {}

async function api(method, path, body, type) {
  const headers = { "X-Layerwatch-Console": "1" };
  let payload;
  if (body !== undefined) {
    if (type) { headers["Content-Type"] = type; payload = body; }
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) { showLogin(); throw new SignInNeeded("sign in first"); }
  if (!response.ok) {
    let detail = await response.text();
    try { detail = JSON.parse(detail).detail || detail; } catch (e) { /* plain text */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  const kind = response.headers.get("content-type") || "";
  if (response.status === 204) return null;
  return kind.includes("json") ? response.json() : response.text();
}
const post = (path, body) => api("POST", path, body === undefined ? {} : body);
async function act(label, fn) { try { await fn(); toast(label); } catch (e) { toast(label + " failed: " + e.message); } }
const command = (camera, word, payload) =>
  post("/api/cameras/" + encodeURIComponent(camera) + "/commands/" + word, { payload: payload || "" });

// -- sign in -----------------------------------------------------------------------------------
function showLogin() {
  $("login").hidden = false; $("app").hidden = true; $("signout").hidden = true;
  $("login-token").focus();
}
async function checkSession() {
  const info = await fetch("/api/session", { credentials: "same-origin" }).then((r) => r.json());
  $("where-command").textContent = info.token_at.command;
  $("where-credential").textContent = info.token_at.credential;
  $("where-credential-2").textContent = info.token_at.credential;
  $("where-sd").textContent = info.token_at.sd_card;
  $("where-boot").textContent = info.token_at.boot_partition || "";
  $("where-boot-item").hidden = !info.token_at.boot_partition;
  if (info.protect_reads && !info.signed_in) { showLogin(); return; }
  $("signout").hidden = !info.signed_in;
  start();
}
async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/api/login", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("login-token").value.trim() }) });
  if (!response.ok) { $("login-error").textContent = "That token is not right."; return; }
  $("login-token").value = "";
  $("login").hidden = true; $("signout").hidden = false;
  if (state.started) { refresh(); setLive(); listen(); } else start();
}
async function signOut() {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  if (state.events) state.events.close();
  $("live").removeAttribute("src");
  checkSession();
}

// -- status and the open alert ---------------------------------------------------------------
function current() { return state.status ? state.status.cameras.find((c) => c.name === state.camera) : null; }

function renderFacts(cam) {
  const printer = cam.printer ? cam.printer.state + (cam.printer.progress != null ? " " + cam.printer.progress + " %" : "") : "-";
  const learner = cam.learner ? (cam.learner.failure + " failure / " + cam.learner.ok + " ok examples") : "-";
  const watching = cam.skipping_print ? "not this print (again when it ends)" : cam.state === "paused" ? "paused" : "yes";
  const facts = [["State", cam.state], ["Watching", watching], ["Camera", cam.camera_status], ["Frames/s", cam.fps], ["Analysed", cam.analysed],
    ["Calibration", cam.calibration || "not calibrated"], ["Learned", learner], ["Backend", cam.backend], ["Printer", printer]];
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v ?? "-" })]));
}

function planText(alert) {
  const plan = alert.plan || { kind: "none", phase: "none" };
  const what = plan.action === "cancel" ? "cancelled" : "paused";
  const at = plan.at ? " at " + clock(plan.at) : "";
  if (plan.kind === "relay") {
    const deed = plan.action === "pulse_pause" ? "pulse the printer's pause input" : "cut the printer's power";
    if (plan.phase === "counting") return "The relay will " + deed + " in " + Math.ceil(remaining(plan)) + " s unless you acknowledge.";
    if (plan.phase === "done") return "The relay acted" + at + " (" + (plan.action === "pulse_pause" ? "pause input pulsed" : "printer power cut") + ").";
  }
  if (plan.kind === "printer") {
    if (plan.phase === "counting") {
      const left = Math.ceil(remaining(plan));
      return left > 0 ? "The print will be " + what + " in " + left + " s unless you answer." : "Sending the " + plan.action + " to the printer now...";
    }
    if (plan.phase === "cancelled") return "Countdown stopped by an acknowledge: the print goes on.";
    if (plan.phase === "done") return "Print " + what + at + " (" + (plan.reason || "") + ").";
    if (plan.phase === "refused") return "The printer refused the " + plan.action + at + ": " + (plan.error || "") + ". Check the printer.";
    if (plan.phase === "failed") return "The " + plan.action + " could not be sent" + at + ": " + (plan.error || "") + ". Pause the print by hand.";
  }
  const configured = state.status && state.status.printer_action;
  if (alert.cause && (configured === "pause" || configured === "cancel")) return "Printer alarms do not stop the print here (telemetry.pause_printer is off); nothing happens by itself.";
  if (configured === "none") return "Nothing happens to the print by itself (printer.action is none).";
  return "Nothing happens to the print by itself: no printer or relay is set up to act. The alarm stays until you answer.";
}
function remaining(plan) { return plan.deadline ? Math.max(0, plan.deadline - Date.now() / 1000) : 0; }
function answerText(entry) {
  if (!entry.answer) return "";
  const ids = (entry.answer_ids || []).join(", ");
  const learner = entry.learner ? "; the camera now has " + entry.learner.failure + " failure and " + entry.learner.ok + " ok examples" : "";
  return "Answered: " + entry.answer.replace("_", " ") + (ids ? " (answer id " + ids + ")" : "") + learner + ".";
}

function renderAlert() {
  const active = state.status.active_alerts.find((a) => a.camera === state.camera) || state.status.active_alerts[0];
  if (!active) { state.alert = null; $("alert").hidden = true; return; }
  if (!state.alert || state.alert.alert !== active.alert) {
    const image = $("alert-image");
    image.hidden = !!active.cause;
    if (!active.cause) image.src = "/api/alerts/" + encodeURIComponent(active.alert) + ".jpg";
  }
  state.alert = active;
  $("alert-title").textContent = active.cause ? "Printer alarm on " + active.camera : "Print failure on " + active.camera;
  $("alert-what").textContent = active.cause ? active.cause : "Score " + Number(active.score).toFixed(2) + " at " + clock(active.created) + " (alert " + active.alert + ").";
  const facts = $("alert-telemetry");
  facts.hidden = !active.telemetry;
  if (active.telemetry) facts.replaceChildren(...telemetryFacts(active.telemetry).childNodes);
  $("alert-reason").textContent = reasonText(active.reason);
  $("alert-plan").textContent = planText(active);
  $("alert-answer").textContent = answerText(active);
  $("withdraw").hidden = !active.answer;
  const printer = !!state.status.printer_action && state.status.printer_action !== "none";
  $("pause-print").hidden = $("cancel-print").hidden = !printer;
  $("alert").hidden = false;
}

function render() {
  const cam = current();
  if (!cam) return;
  const decision = cam.decision || cam.state || "-";
  const badge = $("decision");
  badge.textContent = cam.state === "watching" ? decision : cam.state + " / " + decision;
  badge.className = "badge " + (cam.state === "watching" ? decision : cam.state);
  $("score").textContent = "score " + (cam.score === undefined ? "-" : Number(cam.score).toFixed(2));
  renderFacts(cam);
  $("cal-result").textContent = JSON.stringify({ calibrated: cam.calibrated, calibration: cam.calibration,
    learner: cam.learner, ignore_zones: (cam.ignore_zones || []).length }, null, 1);
  renderAlert();
}

function tick() { if (state.alert && state.alert.plan && state.alert.plan.phase === "counting") $("alert-plan").textContent = planText(state.alert); }

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
  } catch (e) { /* offline for a moment, or signed out: the next poll tries again */ }
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
    $("live").src = base + "/stream?t=" + Date.now();
  }
}

// -- the strip of recent frames: one tap teaches the camera -------------------------------------
let stripTouched = 0;
function frameCard(camera, f) {
  const marks = (f.question ? "?" : "") + (f.unsure ? "~" : "");
  const base = "/api/cameras/" + encodeURIComponent(camera) + "/frames/" + encodeURIComponent(f.frame_id);
  const card = el("div", { class: "card " + f.verdict + (f.question ? " question" : "") + (f.answer ? " answered" : ""), dataset: { frame: f.frame_id } },
    el("img", { src: base + ".jpg", alt: "frame " + f.frame_id, loading: "lazy" }),
    el("div", { class: "caption" }, el("span", { class: "mark", text: marks }), Number(f.score).toFixed(2) + " " + f.verdict),
    el("div", { class: "answer", text: f.answer ? "you: " + f.answer : "" }),
    el("div", { class: "buttons tiny" },
      el("button", { dataset: { label: "ok" }, class: f.answer === "ok" ? "chosen" : "ghost", text: "OK" }),
      el("button", { dataset: { label: "failure" }, class: f.answer === "failure" ? "chosen danger" : "danger", text: "Failure" }),
      f.answer ? el("button", { dataset: { label: "withdraw" }, class: "ghost", text: "Undo" }) : null));
  card.addEventListener("click", (event) => {
    const label = event.target.dataset ? event.target.dataset.label : null;
    if (!label) return;
    stripTouched = Date.now();
    const done = () => setTimeout(() => loadFrames(true), 300);
    if (label === "withdraw") act("Answer taken back", () => command(camera, "withdraw", f.frame_id).then(done));
    else act("Frame answered " + label, () => command(camera, "label", f.frame_id + " " + label).then(done));
  });
  return card;
}
async function loadFrames(force) {
  if (!state.camera || state.tab !== "live" || $("app").hidden) return;
  if (!force && Date.now() - stripTouched < 6000) return; // the user is answering: keep the cards still
  const camera = state.camera;
  const frames = await api("GET", "/api/cameras/" + encodeURIComponent(camera) + "/frames");
  $("strip").replaceChildren(...(frames.length ? frames.map((f) => frameCard(camera, f)) : [el("p", { class: "hint", text: "No frame analysed yet." })]));
}

// -- answering alerts (the panel and the Alerts tab) ---------------------------------------------
function answer(camera, alertId, word, label) {
  return act(label, () => command(camera, word, alertId).then(() => setTimeout(() => { refresh(); if (state.tab === "history") loadHistory(); }, 400)));
}
function withdraw(camera, entry) {
  // the alert id takes back every answer given for its frames; the answer ids also after a restart
  const keys = [entry.id || entry.alert, ...(entry.answer_ids || [])];
  return act("Answer withdrawn", async () => { for (const key of keys) await command(camera, "withdraw", key); setTimeout(() => { refresh(); loadHistory(); }, 400); });
}

function telemetryFacts(t) {
  const rows = [["Signal", t.signal], ["Value", t.value], ["Limit", t.limit || "-"], ["Rule", t.kind]];
  if (t.target != null) rows.push(["Target", t.target]);
  return el("dl", { class: "telemetry" }, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v ?? "-" })]));
}

// why the camera scored the alert's frame so: the labelled frames it resembles (the learner's reason)
function reasonText(reason) {
  if (!reason) return "";
  const near = (n) => "the " + (n.source === "calibration" ? "calibration frame" : n.source + "'s answer") +
    (n.source === "calibration" ? "" : " of " + clock(n.time)) + " (similarity " + Number(n.similarity).toFixed(2) + ")";
  const parts = [];
  if (reason.nearest_failure) parts.push("It looks most like " + near(reason.nearest_failure) + " labelled failure");
  if (reason.nearest_ok) parts.push((parts.length ? "; its closest normal frame is " : "Its closest normal frame is ") + near(reason.nearest_ok));
  if (!parts.length) parts.push("The camera has no labelled frames yet");
  return parts.join("") + ". The generic model's own logit: " + Number(reason.prior_logit).toFixed(2) + ".";
}

function closedText(entry) {
  const words = { acknowledged: "acknowledged", false_alarm: "answered false alarm", print_ended_unanswered: "print ended unanswered",
    print_ended: "print ended", replaced: "a newer alert followed" };
  if (entry.closed) return words[entry.closed] || entry.closed;
  return entry.acknowledged ? "acknowledged" : "open";
}

function historyItem(a) {
  const picture = a.image ? el("img", { loading: "lazy", src: "/api/alerts/" + encodeURIComponent(a.id) + ".jpg", alt: "evidence " + a.id })
    : a.telemetry ? telemetryFacts(a.telemetry) : el("div", { class: "noimage", text: a.cause || "no picture" });
  const what = a.cause ? a.cause : "score " + (a.score == null ? "-" : Number(a.score).toFixed(2));
  const info = el("div", {},
    el("strong", { text: a.camera }), " " + new Date(a.created * 1000).toLocaleString(), el("br"),
    what + (a.repeats ? " (" + a.repeats + " reminders)" : ""), el("br"),
    el("span", { class: "closed", text: closedText(a) }),
    a.answer ? el("span", { class: "answered", text: " · " + answerText(a) }) : null);
  const buttons = el("div", { class: "buttons small" },
    el("button", { class: "danger", dataset: { act: "real_failure" }, text: "Real failure" }),
    el("button", { class: "ghost", dataset: { act: "false_alarm" }, text: "False alarm" }),
    a.answer ? el("button", { class: "ghost", dataset: { act: "withdraw" }, text: "Withdraw" }) : null);
  buttons.addEventListener("click", (event) => {
    const word = event.target.dataset ? event.target.dataset.act : null;
    if (word === "withdraw") withdraw(a.camera, a);
    else if (word) answer(a.camera, a.id, word, word === "false_alarm" ? "Answered: false alarm" : "Answered: real failure");
  });
  if (a.cause) buttons.hidden = true; // a printer telemetry alarm has no camera frames to learn from
  return el("li", { dataset: { alert: a.id } }, picture, el("div", { class: "entry" }, info, buttons));
}

async function loadHistory() {
  const alerts = await api("GET", "/api/alerts?limit=50");
  $("history").replaceChildren(...(alerts.length ? alerts.map(historyItem) : [el("li", { text: "No alerts yet." })]));
}

// -- print review --------------------------------------------------------------------------------
function duration(job) {
  if (!job.ended) return "printing";
  const s = Math.round(job.ended - job.started);
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
function labelJob(job, camera, failedFrom) {
  const what = failedFrom == null ? "It was fine" : "Failed from here";
  return act(what, async () => {
    const r = await post("/api/jobs/" + encodeURIComponent(job.id) + "/label", { camera, failed_from: failedFrom });
    toast(what + ": the camera learns " + r.ok + " normal and " + r.failure + " failure frame(s)");
  });
}
async function reviewJob(job, item) {
  const camera = (job.cameras || [])[0];
  const base = "/api/jobs/" + encodeURIComponent(job.id);
  const query = "?camera=" + encodeURIComponent(camera || "");
  const frames = await api("GET", base + "/frames" + query);
  const parts = [];
  if ((job.timelapse_cameras || []).includes(camera)) {
    parts.push(el("video", { class: "timelapse", controls: "", preload: "metadata", src: base + "/timelapse.mp4" + query }));
  }
  const step = Math.max(1, Math.ceil(frames.length / 24));
  const shown = frames.filter((f, i) => i % step === 0);
  const strip = el("div", { class: "strip" }, ...shown.map((f) => {
    const card = el("div", { class: "card", dataset: { time: f.time } },
      el("img", { src: base + "/frames/" + encodeURIComponent(f.name) + query, alt: "frame at " + clock(f.time), loading: "lazy" }),
      el("div", { class: "caption", text: clock(f.time) }),
      el("div", { class: "buttons tiny" }, el("button", { class: "danger", dataset: { from: f.time }, text: "Failed from here" })));
    return card;
  }));
  strip.addEventListener("click", (event) => {
    const from = event.target.dataset ? event.target.dataset.from : undefined;
    if (from !== undefined && confirm("The print failed from " + clock(Number(from)) + " on?")) labelJob(job, camera, Number(from));
  });
  const fine = el("button", { class: "ghost", text: "It was fine" });
  fine.addEventListener("click", () => labelJob(job, camera, null));
  parts.push(frames.length ? strip : el("p", { class: "hint", text: "No frames were saved for this print." }), el("div", { class: "buttons" }, fine));
  item.querySelector(".review").replaceChildren(...parts);
}
function jobItem(job) {
  const open = el("button", { class: "ghost", text: "Review" });
  const item = el("li", { dataset: { job: job.id } },
    el("div", {}, el("strong", { text: job.name }), " ", el("span", { class: "badge " + (job.outcome || "printing"), text: job.outcome || "printing" }), el("br"),
      new Date(job.started * 1000).toLocaleString() + " · " + duration(job) + " · " + (job.alerts || []).length + " alert(s)" +
      (job.progress != null ? " · " + job.progress + " %" : "")),
    open, el("div", { class: "review" }));
  open.addEventListener("click", () => reviewJob(job, item).catch((e) => toast(e.message)));
  return item;
}
async function loadJobs() {
  const jobs = await api("GET", "/api/jobs?limit=30");
  $("jobs").replaceChildren(...(jobs.length ? jobs.map(jobItem) : [el("li", { text: "No prints recorded yet ([history] enabled = true records them)." })]));
}

// -- settings a user changes often ---------------------------------------------------------------
let loadedSettings = null;
async function loadSettings() {
  const s = await api("GET", "/api/settings");
  loadedSettings = s;
  const cam = s.cameras[state.camera] || { sensitivity: 0, threshold: null };
  $("set-camera").textContent = state.camera;
  $("set-sensitivity").value = cam.sensitivity;
  $("set-sensitivity-out").textContent = (cam.sensitivity > 0 ? "+" : "") + Number(cam.sensitivity).toFixed(2);
  $("set-threshold").textContent = cam.threshold == null ? "-" : Number(cam.threshold).toFixed(3);
  $("set-countdown").value = s.countdown_s;
  const printer = s.printer;
  $("set-action").disabled = $("set-watch-only").disabled = !printer;
  $("set-no-printer").hidden = !!printer;
  if (printer) { $("set-action").value = printer.action; $("set-watch-only").checked = printer.watch_only_while_printing; }
  $("settings-file").textContent = s.file;
}
async function saveSettings(event) {
  event.preventDefault();
  const s = loadedSettings;
  if (!s) return;
  const body = { camera: state.camera };
  const cam = s.cameras[state.camera] || { sensitivity: 0 };
  const sensitivity = Number($("set-sensitivity").value), countdown = Number($("set-countdown").value);
  if (sensitivity !== Number(cam.sensitivity)) body.sensitivity = sensitivity;
  if (countdown !== Number(s.countdown_s)) body.countdown_s = countdown;
  if (s.printer && $("set-action").value !== s.printer.action) body.action = $("set-action").value;
  if (s.printer && $("set-watch-only").checked !== s.printer.watch_only_while_printing) body.watch_only_while_printing = $("set-watch-only").checked;
  if (Object.keys(body).length === 1) { $("settings-status").textContent = "Nothing changed."; return; }
  try {
    await post("/api/settings/change", body);
    $("settings-status").textContent = "Saved and applied.";
    setTimeout(() => loadSettings().catch(() => {}), 600);
  } catch (e) { $("settings-status").textContent = "Not saved: " + e.message; }
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
  if (name === "live") loadFrames(true).catch(() => {});
  if (name === "prints") loadJobs().catch((e) => toast(e.message));
  if (name === "zones") loadZones().catch((e) => toast(e.message));
  if (name === "settings") loadSettings().catch((e) => toast(e.message));
  if (name === "settings") api("GET", "/api/config").then((c) => { $("settings").textContent = JSON.stringify(c, null, 2); }).catch((e) => toast(e.message));
}

function wire() {
  $("login-form").addEventListener("submit", (e) => { signIn(e).catch((err) => { $("login-error").textContent = err.message; }); });
  $("signout").addEventListener("click", () => { signOut().catch(() => {}); });
  $("settings-form").addEventListener("submit", (e) => { saveSettings(e); });
  $("set-sensitivity").addEventListener("input", (e) => { const v = Number(e.target.value); $("set-sensitivity-out").textContent = (v > 0 ? "+" : "") + v.toFixed(2); });
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("camera").addEventListener("change", (e) => { state.camera = e.target.value; setLive(); render(); loadFrames(true).catch(() => {}); });
  $("overlay").addEventListener("change", setLive);
  const target = () => ({ camera: state.alert ? state.alert.camera : state.camera });
  $("ack").addEventListener("click", () => act("Acknowledged", () => post("/api/control/acknowledge", target()).then(() => setTimeout(refresh, 400))));
  $("false-alarm").addEventListener("click", () => state.alert && answer(state.alert.camera, state.alert.alert, "false_alarm", "Answered: false alarm"));
  $("real-failure").addEventListener("click", () => state.alert && answer(state.alert.camera, state.alert.alert, "real_failure", "Answered: real failure"));
  $("withdraw").addEventListener("click", () => state.alert && withdraw(state.alert.camera, state.alert));
  $("pause-print").addEventListener("click", () => act("Print pause sent", () => post("/api/control/pause_print", target())));
  $("cancel-print").addEventListener("click", () => {
    if (confirm("Cancel the print?")) act("Print cancel sent", () => post("/api/control/cancel_print", target()));
  });
  $("pause").addEventListener("click", () => act("Monitoring paused", () => post("/api/control/pause", { camera: state.camera })));
  $("resume").addEventListener("click", () => act("Monitoring resumed", () => post("/api/control/resume", { camera: state.camera })));
  $("skip-print").addEventListener("click", () => act("Not watching this print", () => command(state.camera, "skip_print", "")));
  $("test-alarm").addEventListener("click", () => act("Test alarm sent", () => post("/api/control/test_alarm", { camera: state.camera })));
  $("calibrate").addEventListener("click", () => act("Calibration started", () =>
    post("/api/cameras/" + encodeURIComponent(state.camera) + "/calibrate", { frames: Number($("cal-frames").value) })));
  $("upload").addEventListener("click", () => act("Examples uploaded", async () => {
    for (const file of $("examples").files) await api("POST", "/api/cameras/" + encodeURIComponent(state.camera) + "/examples?label=failure", file, file.type || "image/jpeg");
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
    await api("PUT", "/api/cameras/" + encodeURIComponent(state.camera) + "/ignore_zones", { zones: state.zones });
    $("zones-status").textContent = state.zones.length + " zone(s) saved";
  }));
  $("zones-clear").addEventListener("click", () => { state.zones = []; drawZones(); });
}

function listen() {
  if (state.events) state.events.close();
  const events = new EventSource("/api/events");
  state.events = events;
  events.addEventListener("frames", () => loadFrames(true).catch(() => {}));
  for (const kind of ["alert", "alert_update", "state", "calibration", "device"]) {
    events.addEventListener(kind, () => { refresh(); if (state.tab === "history") loadHistory().catch(() => {}); });
  }
  events.addEventListener("camera", (e) => {
    const data = JSON.parse(e.data);
    const cam = current();
    if (cam && data.camera === cam.name) { Object.assign(cam, data); render(); }
  });
  events.addEventListener("error", () => {
    // a 401 or a restart closes the stream for good: try again shortly (after signing in, if needed)
    if (events.readyState === EventSource.CLOSED && state.events === events) setTimeout(() => { if (state.events === events) listen(); }, 3000);
  });
}

function start() {
  $("app").hidden = false;
  if (state.started) return;
  state.started = true;
  refresh();
  listen();
  setInterval(refresh, 2000);
  setInterval(tick, 250);
  loadFrames(true).catch(() => {});
  setInterval(() => loadFrames(false).catch(() => {}), 4000);
  $("strip").addEventListener("pointerdown", () => { stripTouched = Date.now(); });
}

localStorage.removeItem("layerwatchToken"); // older consoles kept the token here
wire();
checkSession().catch(() => showLogin());
