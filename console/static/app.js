// Seat-agent console: login, the live alert board, the case view. Talks to the server's
// public API with the session cookie (HttpOnly, SameSite=Strict) that login sets.
"use strict";

const state = {
  lang: "en",
  user: null,
  alerts: new Map(), // id → alert (open or acknowledged)
  seen: new Set(), // alert ids already shown, to spot new ones
  loaded: false, // the first load marks nothing as new
  selected: 0,
  source: null,
  refreshTimer: null,
};

const $ = (id) => document.getElementById(id);
const t = (key) => (window.I18N[state.lang] && window.I18N[state.lang][key]) || key;

function chooseLanguage() {
  const saved = localStorage.getItem("rescue.lang");
  if (saved === "en" || saved === "zh") return saved;
  const preferred = (navigator.languages || [navigator.language || "en"])[0] || "en";
  return preferred.toLowerCase().startsWith("zh") ? "zh" : "en";
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  $("lang").textContent = t("lang");
  renderBoard();
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

const VIEWS = ["login-view", "board-view", "map-view", "intake-view", "expert-view", "case-view"];

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  // Maps are made when first shown (Leaflet needs a visible size) and the fleet map polls
  // only while it is on screen.
  if (view === "map-view") showFleetMap();
  else if (state.fleet) state.fleet.stop();
  if (view === "intake-view") showIntakeMap();
}

// ---- maps ------------------------------------------------------------------------

function showFleetMap() {
  if (!state.fleetMap) {
    state.fleetMap = RescueMap.base($("fleet-map"));
    RescueMap.addServiceAreas(state.fleetMap).catch(() => {});
    state.cases = RescueMap.casesLayer(state.fleetMap, openCase);
    state.fleet = RescueMap.fleetLayer(state.fleetMap, { onUpdate: renderMapStats });
  }
  state.fleetMap.invalidateSize();
  state.fleet.start();
  state.cases.refresh().catch(() => {});
}

function renderMapStats(update) {
  const stats = $("map-stats");
  if (update.error) {
    stats.dataset.state = "error";
    stats.textContent = t("map_error");
    return;
  }
  stats.dataset.state = "ok";
  stats.dataset.total = String(update.total);
  stats.replaceChildren();
  for (const [name, colour] of Object.entries(RescueMap.STATE_COLOURS)) {
    const item = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = colour;
    item.dataset.state = name;
    item.append(dot, `${t(`v_${name}`)} ${update.counts[name] || 0}`);
    stats.append(item, " ");
  }
  const total = document.createElement("strong");
  total.textContent = `${t("trucks")}: ${update.total}${update.truncated ? "+" : ""}`;
  stats.append(total);
}

function showIntakeMap() {
  if (!state.intakeMap) {
    state.intakeMap = RescueMap.base($("intake-map"));
    RescueMap.addServiceAreas(state.intakeMap).catch(() => {});
    state.intakePicker = RescueMap.picker(state.intakeMap, (lat, lon) => {
      $("in-coords").value = `${lat}, ${lon}`;
      $("intake-error").textContent = "";
    });
  }
  state.intakeMap.invalidateSize();
}

async function start() {
  try {
    state.user = await api("GET", "/v1/auth/me");
  } catch (error) {
    state.user = null;
  }
  if (!state.user) {
    $("logout").hidden = true;
    $("who").textContent = "";
    show("login-view");
    $("username").focus();
    return;
  }
  $("who").textContent = `${state.user.username} (${state.user.role})`;
  $("logout").hidden = false;
  $("nav").hidden = state.user.role !== "agent";
  if (state.user.role === "expert") {
    show("expert-view");
    await loadQueue();
    state.queueTimer = setInterval(loadQueue, 5000);
    return;
  }
  show("board-view");
  if (state.user.role === "agent") {
    await loadAlerts();
    connect();
  }
}

// ---- live feed -------------------------------------------------------------------

function setConnection(mode) {
  const badge = $("conn");
  badge.className = `conn conn-${mode}`;
  badge.dataset.i18n = `conn_${mode}`;
  badge.dataset.state = mode;
  badge.textContent = t(`conn_${mode}`);
}

function connect() {
  if (state.source) state.source.close();
  // EventSource sends the cookie and reconnects by itself with Last-Event-ID.
  const source = new EventSource("/v1/stream");
  state.source = source;
  source.onopen = () => {
    setConnection("on");
    scheduleRefresh(); // catch up with whatever changed while disconnected
  };
  source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "off" : "retry");
  for (const kind of ["alert_raised", "alert_escalated", "alert_acknowledged", "alert_resolved"]) {
    source.addEventListener(kind, scheduleRefresh);
  }
  for (const kind of [
    "status_changed", "note_added", "vehicle_assigned", "vehicle_released", "offer_sent", "offer_accepted",
    "offer_declined", "offer_expired", "offer_withdrawn", "triaged", "customer_notified", "call_bridged",
  ]) {
    source.addEventListener(kind, (message) => {
      const event = JSON.parse(message.data);
      if (state.intakeCase === event.case_id && !$("intake-view").hidden) showIntakeProgress(event.case_id);
      if (!$("case-view").hidden && $("case-id").textContent === event.case_id) openCase(event.case_id);
    });
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(loadAlerts, 100);
}

async function loadAlerts() {
  const [open, acknowledged] = await Promise.all([
    api("GET", "/v1/alerts?state=open&limit=1000"),
    api("GET", "/v1/alerts?state=acknowledged&limit=1000"),
  ]);
  const fresh = [];
  state.alerts = new Map();
  for (const alert of [...open.alerts, ...acknowledged.alerts]) {
    state.alerts.set(alert.id, alert);
    if (state.loaded && !state.seen.has(alert.id)) fresh.push(alert);
    state.seen.add(alert.id);
  }
  state.loaded = true;
  renderBoard(new Set(fresh.map((alert) => alert.id)));
  if (fresh.some((alert) => alert.severity === "critical")) cue();
}

function cue() {
  if (!$("sound").checked) return;
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch (error) {
    // No audio device: the row still flashes.
  }
}

const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };

function sortedAlerts() {
  const breach = (alert) => (alert.predicted_breach ? Date.parse(alert.predicted_breach) : Infinity);
  return [...state.alerts.values()].sort(
    (a, b) =>
      (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) ||
      breach(a) - breach(b) ||
      (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3) ||
      Date.parse(a.raised_at) - Date.parse(b.raised_at),
  );
}

function countdown(alert) {
  if (!alert.predicted_breach) return { text: "—", overdue: false };
  const seconds = Math.round((Date.parse(alert.predicted_breach) - Date.now()) / 1000);
  if (seconds <= 0) return { text: `${t("overdue")} ${formatDuration(-seconds)}`, overdue: true };
  return { text: formatDuration(seconds), overdue: false };
}

function formatDuration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    td.append(span);
  } else {
    td.textContent = text;
  }
  row.append(td);
  return td;
}

function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

function renderBoard(fresh = new Set()) {
  const body = $("board-rows");
  if (!body) return;
  const alerts = sortedAlerts();
  state.selected = Math.min(state.selected, Math.max(alerts.length - 1, 0));
  body.replaceChildren();
  alerts.forEach((alert, index) => {
    const row = document.createElement("tr");
    row.dataset.alertId = alert.id;
    row.dataset.caseId = alert.case_id;
    if (index === state.selected) row.classList.add("selected");
    if (fresh.has(alert.id)) row.classList.add("new");
    const due = countdown(alert);
    cell(row, due.text, due.overdue ? "overdue" : "").classList.add("countdown");
    cell(row, alert.severity, `sev-${alert.severity}`);
    cell(row, alert.kind);
    const caseCell = cell(row, alert.case_id.slice(0, 8));
    caseCell.title = alert.case_id;
    cell(row, alert.message);
    cell(row, t(`${alert.state}_state`));
    const actions = cell(row, "");
    if (alert.state === "open") actions.append(button(t("ack"), () => act(alert, "ack")));
    actions.append(button(t("resolve"), () => act(alert, "resolve")));
    actions.append(button(t("open"), () => openCase(alert.case_id)));
    row.addEventListener("click", () => {
      state.selected = index;
      for (const other of body.children) other.classList.toggle("selected", other === row);
    });
    body.append(row);
  });
  $("board-empty").hidden = alerts.length > 0;
}

async function act(alert, action) {
  try {
    await api("POST", `/v1/alerts/${alert.id}/${action}`);
  } catch (error) {
    window.alert(`${t("action_failed")}: ${error.message}`);
  }
  await loadAlerts();
}

// ---- case view -------------------------------------------------------------------

const CLOSED = new Set(["completed", "cancelled", "resolved_remotely"]);
const ON_THE_WAY = new Set(["assigned", "en_route", "on_scene", "in_service", "completed"]);

async function openCase(caseId) {
  const [found, timeline] = await Promise.all([
    api("GET", `/v1/cases/${caseId}`),
    api("GET", `/v1/cases/${caseId}/timeline`),
  ]);
  const trajectory = ON_THE_WAY.has(found.status)
    ? await api("GET", `/v1/cases/${caseId}/trajectory`).catch(() => null)
    : null;
  if ($("case-id").textContent !== found.id) $("case-message").textContent = "";
  state.openCase = found;
  $("case-id").textContent = found.id;
  $("case-view").dataset.status = found.status;
  if (!["dispatching", "escalated"].includes(found.status)) $("candidates-box").hidden = true;
  const details = $("case-details");
  details.replaceChildren();
  const rows = [
    ["status", found.status],
    ["service", found.service],
    ["promised", when(found.promised_arrival)],
    ["predicted", when(found.predicted_arrival)],
    ["created", when(found.created_at)],
  ];
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = key;
    details.append(dt, dd);
  }
  const list = $("timeline");
  list.replaceChildren();
  for (const event of timeline.events) list.append(timelineItem(event));
  $("case-redispatch").hidden = found.status !== "escalated";
  $("case-cancel").hidden = CLOSED.has(found.status);
  $("notify-send").disabled = CLOSED.has(found.status);
  $("call-customer").disabled = $("call-driver").disabled = CLOSED.has(found.status);
  show("case-view");
  if (!state.caseMap) {
    state.caseMap = RescueMap.base($("case-map"));
    state.caseLayer = RescueMap.caseLayer(state.caseMap);
  }
  await state.caseLayer.show(found, trajectory);
  await loadCandidates(found);
}

// A time as the agent reads it: local clock time, and how far from now.
function when(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const minutes = Math.round((at - Date.now()) / 60000);
  const relative = minutes === 0 ? t("now") : minutes > 0 ? `${t("in")} ${minutes} min` : `${-minutes} min ${t("ago")}`;
  return `${at.toLocaleTimeString()} (${relative})`;
}

const short = (id) => String(id || "").slice(0, 8);

// A one-line summary of an event's data for the kinds an agent reads most.
function summary(event) {
  const data = event.data || {};
  switch (event.kind) {
    case "status_changed":
      return `${data.from} → ${data.to}${data.reason ? ` (${data.reason})` : ""}`;
    case "triaged":
      return `${data.outcome}: ${data.summary || ""}`;
    case "offer_sent":
      return `${t("truck")} ${short(data.vehicle_id)} · ${Math.round(data.distance_m)} m · ${t("eta")} ${formatDuration(data.eta_s)} · ${t("until")} ${new Date(data.expires_at).toLocaleTimeString()}`;
    case "offer_accepted":
      return `${t("truck")} ${short(data.vehicle_id)} · ${t("eta")} ${formatDuration(data.provider_eta_s || data.quoted_eta_s || 0)}`;
    case "offer_declined":
    case "offer_expired":
    case "offer_withdrawn":
      return `${t("truck")} ${short(data.vehicle_id)}${data.reason ? ` · ${data.reason}` : ""}`;
    case "vehicle_assigned":
      return `${t("truck")} ${short(data.vehicle_id)} · ${t("eta")} ${formatDuration(data.eta_s || 0)}${data.manual ? ` · ${t("by_hand")}` : ""}`;
    case "alert_raised":
    case "alert_escalated":
      return data.alert ? `${data.alert.severity} ${data.alert.kind}: ${data.alert.message}` : JSON.stringify(data);
    case "call_bridged":
      return data.virtual_number || "";
    default:
      return JSON.stringify(data);
  }
}

function timelineItem(event) {
  const item = document.createElement("li");
  item.dataset.kind = event.kind;
  item.className = `kind-${event.kind}`;
  const code = document.createElement("code");
  code.textContent = `${new Date(event.at).toLocaleString()} ${event.actor} `;
  const kind = document.createElement("strong");
  kind.textContent = t(`k_${event.kind}`) === `k_${event.kind}` ? event.kind : t(`k_${event.kind}`);
  item.append(code, kind);
  const data = event.data || {};
  if (event.kind === "note_added" || event.kind === "customer_notified") {
    const text = document.createElement("q");
    text.textContent = data.text || data.message || "";
    item.append(" ", text);
  } else if (event.kind === "candidates_ranked" && Array.isArray(data.candidates)) {
    // Why this truck: the ranking the matcher saw.
    const ranking = document.createElement("ol");
    for (const candidate of data.candidates) {
      const line = document.createElement("li");
      line.textContent = `${String(candidate.vehicle_id).slice(0, 8)} · ${Math.round(candidate.distance_m)} m · ` +
        `${t("eta")} ${formatDuration(candidate.eta_s)} · ${t("acceptance")} ${Math.round(candidate.acceptance_rate * 100)}%` +
        `${candidate.near_tie ? ` · ${t("near_tie")}` : ""}${candidate.chosen ? " ✓" : ""}`;
      ranking.append(line);
    }
    item.append(ranking);
  } else {
    const rest = document.createElement("span");
    rest.textContent = ` ${summary(event)}`;
    item.append(rest);
  }
  return item;
}

async function loadCandidates(found) {
  const box = $("candidates-box");
  if (!["dispatching", "escalated"].includes(found.status)) {
    box.hidden = true;
    return;
  }
  let listed;
  try {
    listed = await api("GET", `/v1/cases/${found.id}/candidates`);
  } catch (error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const body = $("candidate-rows");
  body.replaceChildren();
  for (const candidate of listed.candidates) {
    const row = document.createElement("tr");
    row.dataset.vehicleId = candidate.vehicle_id;
    row.dataset.vehicleRef = candidate.vehicle_ref;
    cell(row, `${candidate.vehicle_ref}${candidate.plate ? ` (${candidate.plate})` : ""}`);
    cell(row, candidate.provider_name);
    cell(row, `${(candidate.distance_m / 1000).toFixed(1)} km`);
    cell(row, formatDuration(candidate.eta_s));
    cell(row, "").append(button(t("assign"), () => caseAction("assign", { vehicle_id: candidate.vehicle_id })));
    body.append(row);
  }
  $("candidates-empty").hidden = listed.candidates.length > 0;
}

// One action on the open case; the result (or the error) shows under the actions.
async function caseAction(action, body) {
  const found = state.openCase;
  if (!found) return;
  const message = $("case-message");
  message.dataset.result = "";
  try {
    const result = await api("POST", `/v1/cases/${found.id}/${action}`, body);
    message.dataset.result = "ok";
    message.dataset.action = action;
    message.textContent = action === "call"
      ? `${t("dial")} ${result.virtual_number}`
      : t(`done_${action}`);
    if (action === "notes") $("note-text").value = "";
    if (action === "notify") $("notify-text").value = "";
  } catch (error) {
    message.dataset.result = "error";
    message.textContent = `${t("action_failed")}: ${error.message}`;
  }
  await openCase(found.id);
}

// The open case's map follows the truck between timeline events.
async function refreshCaseMap() {
  const found = state.openCase;
  if (!found || $("case-view").hidden || !state.caseLayer) return;
  if (!ON_THE_WAY.has(found.status) || found.status === "completed") return;
  const trajectory = await api("GET", `/v1/cases/${found.id}/trajectory`).catch(() => null);
  if (trajectory && state.openCase && state.openCase.id === found.id) await state.caseLayer.show(found, trajectory);
}

function call(party) {
  const phone = $("agent-phone").value.trim();
  localStorage.setItem("rescue.agentPhone", phone);
  return caseAction("call", { party, agent_phone: phone });
}

// ---- hotline intake -------------------------------------------------------------

function parseCoordinates(text) {
  const parts = text.split(/[,\s]+/).filter(Boolean).map(Number);
  if (parts.length !== 2 || parts.some((part) => !Number.isFinite(part))) return null;
  const [lat, lon] = parts;
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return { lat, lon };
}

async function submitIntake(submit) {
  submit.preventDefault();
  $("intake-error").textContent = "";
  const position = parseCoordinates($("in-coords").value);
  if (!position) {
    $("intake-error").textContent = t("bad_coords");
    return;
  }
  if (state.intakePicker) state.intakePicker.place(position.lat, position.lon);
  const body = {
    channel: "hotline",
    customer: { name: $("in-name").value, phone: $("in-phone").value },
    location: { ...position, crs: "wgs84", road_kind: $("in-road").value },
    fault: { category: $("in-fault").value, symptoms: [] },
    service: $("in-service").value,
    safety: {
      accident: $("in-accident").checked,
      injury: $("in-injury").checked,
      smoke_or_fire: $("in-smoke").checked,
      vulnerable_customer: $("in-vulnerable").checked,
      requests_vehicle: $("in-truck").checked,
    },
  };
  if ($("in-plate").value) body.customer.plate = $("in-plate").value;
  if ($("in-address").value) body.location.address = $("in-address").value;
  if ($("in-description").value) body.fault.description = $("in-description").value;
  try {
    const created = await api("POST", "/v1/cases", body);
    state.intakeCase = created.case.id;
    // The live feed drives the updates; a slow poll covers a feed that is reconnecting.
    clearInterval(state.intakeTimer);
    state.intakeTimer = setInterval(() => {
      if (!state.intakeCase || $("intake-view").hidden) return;
      showIntakeProgress(state.intakeCase).catch(() => {});
    }, 2000);
    $("intake-case").textContent = created.case.id;
    $("intake-result").hidden = false;
    await showIntakeProgress(created.case.id);
  } catch (error) {
    $("intake-error").textContent = error.message;
  }
}

async function showIntakeProgress(caseId) {
  const [found, timeline] = await Promise.all([
    api("GET", `/v1/cases/${caseId}`),
    api("GET", `/v1/cases/${caseId}/timeline`),
  ]);
  $("intake-status").textContent = found.status;
  $("intake-status").dataset.status = found.status;
  if (CLOSED.has(found.status)) clearInterval(state.intakeTimer);
  const triaged = timeline.events.find((event) => event.kind === "triaged");
  if (triaged) {
    const reasons = (triaged.data.reasons || []).map((reason) => reason.code).join(", ");
    $("intake-triage").textContent = `${t("triage")}: ${triaged.data.outcome}${reasons ? ` (${reasons})` : ""}`;
    $("intake-triage").dataset.outcome = triaged.data.outcome;
  }
}

// ---- expert view -----------------------------------------------------------------

async function loadQueue() {
  if (!state.user || state.user.role !== "expert") return;
  const queue = await api("GET", "/v1/diagnosis/queue");
  $("queue-waiting").textContent = String(queue.waiting);
  const body = $("queue-rows");
  body.replaceChildren();
  for (const ticket of queue.tickets) {
    const row = document.createElement("tr");
    row.dataset.ticketId = ticket.id;
    cell(row, ticket.category);
    cell(row, ticket.skill);
    cell(row, ticket.queued_at);
    cell(row, ticket.claimed_by ? "✓" : "");
    body.append(row);
  }
}

async function claimNext() {
  $("claim-empty").hidden = true;
  const response = await fetch("/v1/diagnosis/claim", { method: "POST", credentials: "same-origin" });
  if (response.status === 204) {
    $("claim-empty").hidden = false;
    return;
  }
  if (!response.ok) {
    window.alert(`${t("action_failed")}: ${response.status}`);
    return;
  }
  const { ticket, case: claimed } = await response.json();
  state.ticket = ticket;
  $("ticket-id").textContent = ticket.id;
  const details = $("ticket-details");
  details.replaceChildren();
  for (const [key, value] of [
    ["customer", claimed.customer.name],
    ["phone", claimed.customer.phone],
    ["fault", `${claimed.fault.category}${claimed.fault.description ? ` — ${claimed.fault.description}` : ""}`],
    ["service", claimed.service],
    ["location", claimed.location.address || `${claimed.location.lat}, ${claimed.location.lon}`],
  ]) {
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value;
    details.append(dt, dd);
  }
  $("ticket-notes").value = "";
  $("ticket-outcome").textContent = "";
  $("solve").disabled = $("escalate").disabled = false;
  $("ticket").hidden = false;
  await loadQueue();
}

async function report(outcome) {
  if (!state.ticket) return;
  const notes = $("ticket-notes").value.trim();
  try {
    await api("POST", `/v1/diagnosis/${state.ticket.id}/${outcome}`, notes ? { notes } : undefined);
    $("ticket-outcome").textContent = t(outcome === "solve" ? "outcome_solved" : "outcome_escalated");
    $("ticket-outcome").dataset.outcome = outcome;
    $("solve").disabled = $("escalate").disabled = true;
    state.ticket = null;
  } catch (error) {
    $("ticket-outcome").textContent = `${t("action_failed")}: ${error.message}`;
  }
  await loadQueue();
}

// ---- wiring ----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  state.lang = chooseLanguage();
  $("sound").checked = localStorage.getItem("rescue.sound") !== "off";
  applyLanguage();
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("rescue.lang", state.lang);
    applyLanguage();
  });
  $("sound").addEventListener("change", () =>
    localStorage.setItem("rescue.sound", $("sound").checked ? "on" : "off"),
  );
  $("login-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("POST", "/v1/auth/login", { username: $("username").value, password: $("password").value });
      $("password").value = "";
      await start();
    } catch (error) {
      $("login-error").textContent = error.status === 401 ? t("login_failed") : error.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/v1/auth/logout");
    } finally {
      if (state.source) state.source.close();
      clearInterval(state.queueTimer);
      setConnection("off");
      await start();
    }
  });
  $("back").addEventListener("click", () => show("board-view"));
  $("agent-phone").value = localStorage.getItem("rescue.agentPhone") || "";
  $("note-add").addEventListener("click", () => caseAction("notes", { text: $("note-text").value }));
  $("notify-send").addEventListener("click", () => caseAction("notify", { message: $("notify-text").value }));
  $("call-customer").addEventListener("click", () => call("customer"));
  $("call-driver").addEventListener("click", () => call("driver"));
  $("case-redispatch").addEventListener("click", () => caseAction("dispatch"));
  $("case-cancel").addEventListener("click", () => {
    const reason = window.prompt(t("cancel_reason"), "");
    if (reason === null) return;
    caseAction("cancel", reason.trim() ? { reason: reason.trim() } : undefined);
  });
  for (const button of document.querySelectorAll("#nav button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  $("intake-form").addEventListener("submit", submitIntake);
  $("in-coords").addEventListener("change", () => {
    const position = parseCoordinates($("in-coords").value);
    if (position && state.intakePicker) state.intakePicker.place(position.lat, position.lon);
  });
  $("intake-open").addEventListener("click", () => openCase(state.intakeCase));
  $("claim").addEventListener("click", claimNext);
  $("solve").addEventListener("click", () => report("solve"));
  $("escalate").addEventListener("click", () => report("escalate"));
  document.addEventListener("keydown", (key) => {
    if ($("board-view").hidden || key.target.closest("input, textarea, select")) return;
    const alerts = sortedAlerts();
    const current = alerts[state.selected];
    if (key.key === "j") state.selected = Math.min(state.selected + 1, alerts.length - 1);
    else if (key.key === "k") state.selected = Math.max(state.selected - 1, 0);
    else if (key.key === "a" && current && current.state === "open") return act(current, "ack");
    else if (key.key === "r" && current) return act(current, "resolve");
    else if (key.key === "Enter" && current) return openCase(current.case_id);
    else return;
    renderBoard();
  });
  setInterval(() => refreshCaseMap().catch(() => {}), 3000);
  // The countdowns tick without a reload.
  setInterval(() => {
    for (const row of document.querySelectorAll("#board-rows tr")) {
      const alert = state.alerts.get(row.dataset.alertId);
      if (!alert) continue;
      const due = countdown(alert);
      const span = row.querySelector(".countdown span") || row.querySelector(".countdown");
      span.textContent = due.text;
    }
  }, 1000);
  start();
});
