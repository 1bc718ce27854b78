// The dashboard page: sign in, show GET /api/dashboard, then keep it current from /dashboard events.
//
// Timings can be shortened from the query string (the browser tests do), in milliseconds:
// ?reconnectDelay=1000&reconnectDelayMax=30000&connectTimeout=20000&degradedAfter=5&pollInterval=30000
import { io } from "socket.io-client";

const params = new URLSearchParams(location.search);
const setting = (name, fallback) => (params.has(name) ? Number(params.get(name)) : fallback);
const SETTINGS = {
  reconnectDelay: setting("reconnectDelay", 1000),
  reconnectDelayMax: setting("reconnectDelayMax", 30000),
  connectTimeout: setting("connectTimeout", 20000), // Socket.IO's default: a handshake that hangs counts as failed
  degradedAfter: setting("degradedAfter", 5),
  pollInterval: setting("pollInterval", 30000),
};
const RECENT_LIMIT = 10;
const SEEN_EVENTS_KEPT = 500;
const SESSION_ENDED = "Your session has ended. Please sign in again.";
const TOO_MANY_TABS = "Too many open dashboard tabs; close some and reload.";
const SIGN_OUT_TIMEOUT = 5000; // ms the sign-out request may take before the page signs out anyway

const BUILD_LABELS = { ADDED: "Added", IN_PROGRESS: "In progress", BUILT: "Built" };
const COVERAGE_LABELS = { FULL_INVENTORY: "All parts", PARTIAL_ORDERED: "Some, rest ordered", NONE: "No parts yet" };
const CONNECTION_LABELS = {
  offline: "Offline",
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  degraded: "Offline – polling",
  refused: "Not live",
  "signed-out": "Signed out",
};

const $ = (selector) => document.querySelector(selector);

// ---- tokens (per tab) ----------------------------------------------------------------------------------

const tokens = {
  get access() { return sessionStorage.getItem("accessToken"); },
  get refresh() { return sessionStorage.getItem("refreshToken"); },
  save(values) {
    for (const [key, value] of Object.entries(values)) sessionStorage.setItem(key, value);
  },
  clear() { sessionStorage.clear(); },
};

let refreshing = null;

// Renew the access token with the refresh token: "renewed", "refused" (sign in again) or "unreachable".
// One request at a time, however many callers find the access token refused.
function refreshAccessToken() {
  refreshing ??= (async () => {
    try {
      if (!tokens.refresh) return "refused";
      const response = await fetch("/api/auth/refresh", {
        method: "POST",
        headers: { Authorization: `Bearer ${tokens.refresh}` },
      });
      if (!response.ok) return response.status >= 500 ? "unreachable" : "refused";
      tokens.save({ accessToken: (await response.json()).accessToken });
      return "renewed";
    } catch {
      return "unreachable";
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

class SignedOut extends Error {}

// fetch() with the access token; a refused token (401, or 422 for a malformed one) is renewed once.
async function api(path, { method = "GET", body } = {}) {
  const send = () => fetch(path, {
    method,
    headers: { Authorization: `Bearer ${tokens.access}`, ...(body && { "Content-Type": "application/json" }) },
    body: body && JSON.stringify(body),
  });
  const refused = (response) => response.status === 401 || response.status === 422;
  let response = await send();
  if (refused(response)) {
    const renewal = await refreshAccessToken();
    if (renewal === "unreachable") throw new Error("cannot renew the access token: the server is unreachable");
    if (renewal === "renewed") response = await send();
  }
  if (refused(response)) {
    signOut(SESSION_ENDED);
    throw new SignedOut();
  }
  return response;
}

// ---- the view ------------------------------------------------------------------------------------------

let view = null;
let loads = 0; // numbers each fetch of the whole view: only the latest one's answer is shown
let held = null; // events that arrive while a fetch is in flight, applied once the latest one has landed
const seenEventIds = new Set();

async function loadView() {
  const load = ++loads;
  held ??= [];
  let fresh = null;
  try {
    const response = await api("/api/dashboard");
    if (!response.ok) throw new Error(`GET /api/dashboard: ${response.status}`);
    fresh = await response.json();
  } catch (error) {
    if (!(error instanceof SignedOut)) console.warn("dashboard: could not load the view", error);
  }
  if (load !== loads) return; // a newer fetch (or signing out) supersedes this one
  if (fresh) {
    view = fresh;
    renderAll();
    if (!$("#add-moc select[name=theme]").options.length) loadThemes(); // once a token has proved good
  }
  const events = held;
  held = null;
  if (view) for (const [apply, payload] of events) apply(payload);
}

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
const isCount = (value) => Number.isInteger(value) && value >= 0;
const isText = (value) => typeof value === "string" && value.length > 0;
const hasCounts = (value, keys) => isObject(value) && Object.keys(keys).every((key) => isCount(value[key]));
const isMoc = (moc) => isObject(moc) && isText(moc.id) && isText(moc.title) && typeof moc.theme === "string"
  && moc.buildStatus in BUILD_LABELS;

const EVENTS = {
  "dashboard:summaryUpdated": {
    valid: (p) => isObject(p) && isCount(p.totalMocs) && isCount(p.totalWishlistItems)
      && hasCounts(p.mocsByBuildStatus, BUILD_LABELS) && hasCounts(p.mocsByCoverageStatus, COVERAGE_LABELS),
    apply: (summary) => { view.summary = summary; renderSummary(); },
  },
  "dashboard:recentMocAdded": {
    valid: (p) => isMoc(p) && isText(p.createdAt),
    apply: (moc) => {
      view.recentMocs = [moc, ...view.recentMocs.filter((other) => other.id !== moc.id)].slice(0, RECENT_LIMIT);
      renderRecent();
    },
  },
  "dashboard:partialPartsUpdated": {
    valid: (p) => Array.isArray(p) && p.every((moc) => isMoc(moc) && typeof moc.coveragePercentage === "number"),
    apply: (mocs) => { view.partialPartsMocs = mocs; renderPartial(); },
  },
  "dashboard:themeBreakdownUpdated": {
    valid: (p) => Array.isArray(p) && p.every((t) => isObject(t) && isText(t.theme) && isCount(t.mocCount) && isCount(t.setCount)),
    apply: (themes) => { view.themeBreakdown = themes; renderThemes(); },
  },
  "dashboard:error": {
    valid: (p) => isObject(p) && isText(p.code) && typeof p.message === "string",
    // TOKEN_EXPIRED is followed by a disconnect, which onDisconnect answers with a fresh token.
    // SESSION_ENDED (the user signed out elsewhere) is too, but it is final: sign out here as well.
    apply: (error) => {
      console.info("dashboard: server says", error.code, error.message);
      if (error.code === "SESSION_ENDED") signOut(error.message || SESSION_ENDED);
    },
  },
};

function onEvent(name, envelope) {
  const event = EVENTS[name];
  if (!event) {
    console.log("dashboard: ignoring event of unknown type", name);
    return;
  }
  const wellFormed = isObject(envelope) && isText(envelope.eventId) && envelope.type === name
    && isText(envelope.timestamp) && event.valid(envelope.payload);
  if (!wellFormed) {
    console.warn("dashboard: skipping malformed event", name, envelope);
    return;
  }
  if (seenEventIds.has(envelope.eventId)) return;
  seenEventIds.add(envelope.eventId);
  if (seenEventIds.size > SEEN_EVENTS_KEPT) seenEventIds.delete(seenEventIds.values().next().value);

  // An error is acted on at once: it must not wait for a fetch in flight, nor be lost without a view.
  if (name === "dashboard:error") event.apply(envelope.payload);
  else if (held) held.push([event.apply, envelope.payload]);
  else if (view) event.apply(envelope.payload);
}

// ---- the live connection -------------------------------------------------------------------------------

let socket = null;
let failedAttempts = 0;
let authRetried = false;
let pollTimer = null;

// Where the events come from: this app's Socket.IO server, or on AWS the API Gateway WebSocket API, whose
// stage is the path (e.g. wss://abc.execute-api.eu-west-1.amazonaws.com/prod). The client is the same.
function socketTarget() {
  const configured = document.querySelector('meta[name="dashboard-websocket-url"]')?.content;
  if (!configured) return { url: "/dashboard", options: {} };
  const api = new URL(configured);
  return { url: `${api.origin}/dashboard`, options: { path: api.pathname, addTrailingSlash: false } };
}

function connect() {
  const target = socketTarget();
  socket = io(target.url, {
    ...target.options,
    transports: ["websocket"],
    auth: (send) => send({ token: tokens.access }), // called on every attempt: reconnects use the newest token
    reconnectionDelay: SETTINGS.reconnectDelay,
    reconnectionDelayMax: SETTINGS.reconnectDelayMax,
    randomizationFactor: 0.5,
    timeout: SETTINGS.connectTimeout,
  });
  setConnection("connecting");
  socket.on("connect", onConnect);
  socket.on("connect_error", onConnectError);
  socket.on("disconnect", onDisconnect);
  socket.onAny(onEvent);
}

function onConnect() {
  failedAttempts = 0;
  authRetried = false;
  leaveDegradedMode();
  $("#refused-banner").hidden = true;
  setConnection("connected");
  // A recovered connection (the server's DASHBOARD_WS_RECOVERY) has been sent what it missed, in order, just
  // before this: the view is current. Otherwise the missed events are in a fresh view; the ones arriving
  // meanwhile wait for it.
  if (!socket.recovered) loadView();
}

async function onConnectError(error) {
  if (error.data?.code === "AUTH_FAILED") {
    // A refused token is never retried as it is (Socket.IO would not retry either): renew it once, else sign in.
    const renewal = authRetried ? "refused" : await refreshAccessToken();
    if (renewal === "refused") {
      signOut(SESSION_ENDED);
      return;
    }
    authRetried = renewal === "renewed"; // unreachable: try again once the server answers
    socket?.connect();
    return;
  }
  if (error.data?.code === "TOO_MANY_CONNECTIONS") {
    // The user has the most sockets the server allows: retrying would only be refused again. Show the
    // dashboard as it is now, without live updates, until the user closes tabs and reloads.
    leaveDegradedMode();
    setConnection("refused");
    $("#refused-banner").textContent = TOO_MANY_TABS;
    $("#refused-banner").hidden = false;
    loadView();
    return;
  }
  // The server is unreachable: Socket.IO keeps retrying with backoff; show what we have meanwhile.
  failedAttempts += 1;
  if (failedAttempts >= SETTINGS.degradedAfter) enterDegradedMode();
  else setConnection("reconnecting");
  if (!view) loadView();
}

async function onDisconnect(reason) {
  console.info("dashboard: disconnected:", reason);
  if (reason === "io client disconnect") return; // we closed it
  setConnection("reconnecting");
  if (reason === "io server disconnect") {
    // The server ended the connection (its token expired): Socket.IO does not reconnect by itself here.
    if ((await refreshAccessToken()) === "refused") signOut(SESSION_ENDED);
    else socket?.connect();
  }
}

function enterDegradedMode() {
  setConnection("degraded");
  $("#degraded-banner").hidden = false;
  pollTimer ??= setInterval(loadView, SETTINGS.pollInterval);
}

function leaveDegradedMode() {
  $("#degraded-banner").hidden = true;
  clearInterval(pollTimer);
  pollTimer = null;
}

function setConnection(state) {
  const indicator = $("#connection");
  indicator.dataset.state = state;
  indicator.textContent = CONNECTION_LABELS[state];
}

// ---- signing in and out --------------------------------------------------------------------------------

function start() {
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#sign-out").hidden = false;
  $("#whoami").textContent = sessionStorage.getItem("username") ?? "";
  connect();
}

function signOut(message = "") {
  socket?.disconnect();
  socket = null;
  leaveDegradedMode();
  $("#refused-banner").hidden = true;
  tokens.clear();
  loads += 1; // a fetch still in flight must not show the dashboard again
  view = null;
  held = null;
  setConnection("signed-out");
  $("#dashboard").hidden = true;
  $("#sign-out").hidden = true;
  $("#whoami").textContent = "";
  $("#login-message").textContent = message;
  $("#login").hidden = false;
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  if (!response.ok) {
    $("#login-message").textContent = "Wrong username or password.";
    return;
  }
  const { accessToken, refreshToken, user } = await response.json();
  tokens.save({ accessToken, refreshToken, username: user.username });
  event.target.reset();
  start();
});

// Signing out ends the user's live sockets everywhere (other tabs then get SESSION_ENDED and sign out too);
// the tokens stay valid until they expire, so this tab forgets its own. Best effort: if the server cannot
// be told, this tab signs out all the same.
async function endSession() {
  const send = () => fetch("/api/auth/logout", {
    method: "POST",
    headers: { Authorization: `Bearer ${tokens.access}` },
    signal: AbortSignal.timeout(SIGN_OUT_TIMEOUT),
  });
  try {
    let response = await send();
    if ((response.status === 401 || response.status === 422) && (await refreshAccessToken()) === "renewed") {
      response = await send(); // an expired access token: the user's other tabs may still be live
    }
    if (!response.ok) console.warn("dashboard: sign-out was not confirmed by the server:", response.status);
  } catch (error) {
    console.warn("dashboard: could not tell the server about the sign-out", error);
  }
}

$("#sign-out").addEventListener("click", async () => {
  const button = $("#sign-out");
  button.disabled = true;
  socket?.disconnect(); // this tab's own socket closes first: SESSION_ENDED is for the others
  socket = null;
  try {
    if (tokens.access) await endSession();
  } finally {
    button.disabled = false;
    signOut();
  }
});

// ---- writes --------------------------------------------------------------------------------------------

async function loadThemes() {
  try {
    const themes = await (await api("/api/themes")).json();
    $("#add-moc select[name=theme]").replaceChildren(...themes.map(({ name }) => new Option(name, name)));
  } catch (error) {
    if (!(error instanceof SignedOut)) console.warn("dashboard: could not load themes", error);
  }
}

// A write's response, or null when it could not be sent (signed out, or the server is unreachable).
async function write(path, method, body) {
  try {
    return await api(path, { method, body });
  } catch (error) {
    if (!(error instanceof SignedOut)) console.warn("dashboard: could not save", error);
    return null;
  }
}

// After a write the events update the page; without a live connection, fetch the view instead.
const afterWrite = () => { if (!socket?.connected) loadView(); };

$("#add-moc").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const fields = Object.fromEntries(new FormData(form));
  const body = { title: fields.title, theme: fields.theme, buildStatus: fields.buildStatus, coverageStatus: fields.coverageStatus };
  if (fields.coveragePercentage !== "") body.coveragePercentage = Number(fields.coveragePercentage);
  form.querySelectorAll("[data-error-for]").forEach((element) => { element.textContent = ""; });
  const response = await write("/api/mocs", "POST", body);
  if (!response) return;
  if (!response.ok) {
    const errors = response.status === 400 ? (await response.json()).errors : { _schema: [`Not saved (${response.status}).`] };
    for (const [field, messages] of Object.entries(errors)) {
      const slot = form.querySelector(`[data-error-for="${field}"]`) ?? form.querySelector("[data-error-for=title]");
      slot.textContent = messages.join(" ");
    }
    return;
  }
  form.reset();
  afterWrite();
});

async function changeBuildStatus(id, buildStatus) {
  const response = await write(`/api/mocs/${id}`, "PATCH", { buildStatus });
  if (!response?.ok) return;
  // No event carries a recent MOC's new status, so take it from the response.
  const updated = await response.json();
  const shown = view?.recentMocs.find((moc) => moc.id === id);
  if (shown) {
    shown.buildStatus = updated.buildStatus;
    renderRecent();
  }
  afterWrite();
}

// ---- rendering -----------------------------------------------------------------------------------------

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

function renderAll() {
  renderSummary();
  renderThemes();
  renderRecent();
  renderPartial();
}

function renderSummary() {
  const { summary } = view;
  const values = { ...summary, ...summary.mocsByBuildStatus };
  document.querySelectorAll("[data-summary]").forEach((node) => { node.textContent = values[node.dataset.summary]; });
  renderBars("#build-breakdown", summary.mocsByBuildStatus, BUILD_LABELS, summary.totalMocs);
  renderBars("#coverage-breakdown", summary.mocsByCoverageStatus, COVERAGE_LABELS, summary.totalMocs);
}

function renderBars(selector, counts, labels, total) {
  $(selector).replaceChildren(...Object.entries(labels).map(([key, label]) => {
    const bar = element("span", { className: "bar" });
    bar.style.width = `${total ? (100 * counts[key]) / total : 0}%`;
    return element("li", {}, element("span", { className: "bar-label", textContent: label }),
      element("span", { className: "track" }, bar), element("span", { className: "bar-count", textContent: counts[key] }));
  }));
}

function renderThemes() {
  $("#theme-breakdown").replaceChildren(...view.themeBreakdown.map(({ theme, mocCount, setCount }) =>
    element("tr", {}, element("td", { textContent: theme }), element("td", { textContent: mocCount }),
      element("td", { textContent: setCount }))));
}

function renderRecent() {
  $("#recent-mocs").replaceChildren(...view.recentMocs.map((moc) => {
    const cover = moc.coverImageUrl
      ? element("img", { className: "cover", src: moc.coverImageUrl, alt: "" })
      : element("span", { className: "cover placeholder", textContent: moc.theme.slice(0, 1) });
    const status = element("select", { ariaLabel: `Build status of ${moc.title}` },
      ...Object.entries(BUILD_LABELS).map(([value, label]) => new Option(label, value, false, value === moc.buildStatus)));
    status.addEventListener("change", () => changeBuildStatus(moc.id, status.value));
    const item = element("li", {}, cover,
      element("div", { className: "moc" }, element("strong", { className: "title", textContent: moc.title }),
        element("span", { className: "meta", textContent: `${moc.theme} · ${new Date(moc.createdAt).toLocaleDateString()}` })),
      status);
    item.dataset.mocId = moc.id;
    return item;
  }));
}

function renderPartial() {
  const mocs = view.partialPartsMocs;
  $("#partial-parts-empty").hidden = mocs.length > 0;
  $("#partial-parts").replaceChildren(...mocs.map((moc) => {
    const meter = element("meter", { min: 0, max: 100, value: moc.coveragePercentage });
    const item = element("li", {},
      element("span", { className: "title", textContent: moc.title }), meter,
      element("span", { className: "percentage", textContent: `${Math.round(moc.coveragePercentage)}%` }));
    item.dataset.mocId = moc.id;
    return item;
  }));
}

// ---- start ---------------------------------------------------------------------------------------------

$("#poll-seconds").textContent = Math.round(SETTINGS.pollInterval / 1000);
if (tokens.access) start();
else signOut();
