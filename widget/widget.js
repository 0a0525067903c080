/*
 * Known's browser SDK, served at GET /widget.js (API.md §8). One self-contained file: it talks
 * only to the Known server it was loaded from, keeps the widget session token in localStorage,
 * queues calls until the widget loads and runs them one at a time, in order, and draws the chat
 * launcher and panel inside a shadow root.
 *
 * Plain modern JavaScript, no build step: this file is what browsers get.
 */
(() => {
  "use strict";
  const w = window;
  const d = document;
  if (w.Known && w.Known.version) return; // the script tag was included twice

  const script = d.currentScript;
  const attr = (name) => (script && script.getAttribute(name)) || "";
  // Every request goes to the server that served this file, never anywhere else.
  const base = script && script.src ? new URL(script.src, location.href).origin : location.origin;

  const settings = () => Object.assign({}, w.knownSettings);
  const compat = new Set(
    [].concat(settings().compat || attr("data-compat").split(/[\s,]+/)).filter(Boolean).map(String)
  );
  const hubspot = compat.has("hubspot");
  // Settings are read again when the widget loads: seed 004 sets the identification email and
  // token after the script tag, just before widget.load().
  const current = () => {
    const s = settings();
    const hs = hubspot ? Object.assign({}, w.hsConversationsSettings) : {};
    for (const k of ["loadImmediately", "identificationEmail", "identificationToken"]) {
      if (s[k] === undefined && hs[k] !== undefined) s[k] = hs[k];
    }
    s.appId = s.appId || attr("data-app-id");
    return s;
  };
  const appId = current().appId;
  if (!appId) {
    console.error("Known: set window.knownSettings = { appId: \"app_…\" } before the widget.js script tag");
    return;
  }

  /* ---------- errors ---------- */

  /** KnownError is how every method rejects: code and field are the server's. */
  class KnownError extends Error {
    constructor(code, message, field) {
      super(message || code);
      this.name = "KnownError";
      this.code = code;
      this.field = field || null;
    }
  }
  const invalid = (field, message) => new KnownError("INVALID", message, field);

  /* ---------- storage ---------- */

  const storeKey = "known:" + appId + ":session";
  let memoryToken = null; // when localStorage is unavailable (blocked cookies, sandboxed frames)
  const storage = {
    get() {
      try {
        return w.localStorage.getItem(storeKey);
      } catch (e) {
        return memoryToken;
      }
    },
    set(token) {
      memoryToken = token;
      try {
        if (token) w.localStorage.setItem(storeKey, token);
        else w.localStorage.removeItem(storeKey);
      } catch (e) {
        /* memory only */
      }
    },
  };

  /* ---------- events ---------- */

  const handlers = {};
  const emit = (event, value) => {
    for (const fn of (handlers[event] || []).slice()) {
      try {
        fn(value);
      } catch (e) {
        console.error(e);
      }
    }
  };

  /* ---------- GraphQL ---------- */

  const SESSION = "session { token visitorId userId anonymous verified verificationMethod expiresAt }";
  const ERRORS = "userErrors { field code message }";
  const MESSAGE = "id body author createdAt";
  const mutation = (name, input, result) =>
    "mutation($input: " + input + "!) { " + name + "(input: $input) { " + result + " " + ERRORS + " } }";
  const Q = {
    identify: mutation("identify", "IdentifyInput", SESSION),
    setUser: mutation("setUser", "SetUserInput", SESSION),
    setProperties: mutation("setProperties", "SetPropertiesInput", SESSION),
    track: mutation("track", "TrackInput", "event { id name occurredAt }"),
    setStage: mutation("setStage", "SetStageInput", "company { id externalId }"),
    setDeal: mutation("setDeal", "SetDealInput", "company { id externalId }"),
    startConversation: mutation("startConversation", "StartConversationInput", "conversation { id status createdAt }"),
    sendMessage: mutation("sendMessage", "SendMessageInput", "message { " + MESSAGE + " }"),
    resetSession: "mutation { resetSession { " + SESSION + " " + ERRORS + " } }",
    conversations:
      "query { session { conversations(first: 20) { nodes { id status createdAt updatedAt " +
      "messages(first: 100) { nodes { " + MESSAGE + " } } } } } }",
  };

  let session = null; // the public part of the current session, without its token
  const seen = new Set(); // message ids read so far, to tell an agent's new reply
  let primed = false; // messages read the first time are history, not news

  const adopt = (s) => {
    if (!s || !s.token) return;
    storage.set(s.token);
    const next = Object.assign({}, s);
    delete next.token;
    const changed = JSON.stringify(next) !== JSON.stringify(session);
    // Messages of a visitor or user seen for the first time are history, not news.
    if (!session || session.visitorId !== next.visitorId || session.userId !== next.userId) primed = false;
    session = next;
    if (changed) emit("session", next);
    if (state === "loaded") follow();
  };

  /* ---------- live events (API.md §9) ---------- */

  // One socket per session token, subscribed to sessionEvents (graphql-transport-ws): an
  // agent's reply arrives at once. Reading conversations stays the fallback: where the socket
  // cannot open, and to catch up on what came while it was down.
  let live = null; // { ws, token }
  const watchers = new Set(); // the UI's: told of every live event
  const send = (ws, m) => ws.readyState === 1 && ws.send(JSON.stringify(m));
  function follow() {
    const token = storage.get();
    if (!token || typeof WebSocket !== "function" || (live && live.token === token)) return;
    unfollow();
    let ws;
    try {
      ws = new WebSocket(base.replace(/^http/, "ws") + "/graphql", "graphql-transport-ws");
    } catch (e) {
      return; // polling only
    }
    const me = { ws, token };
    live = me;
    ws.onopen = () => send(ws, { type: "connection_init", payload: { "X-Widget-Session": token } });
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (m.type === "connection_ack") {
        send(ws, { id: "1", type: "subscribe", payload: {
          query: "subscription { sessionEvents { type conversationId message { " + MESSAGE + " } } }" } });
      } else if (m.type === "ping") {
        send(ws, { type: "pong" });
      } else if (m.type === "next" && m.payload && m.payload.data) {
        const e = m.payload.data.sessionEvents;
        const msg = e && e.message;
        if (msg && !seen.has(msg.id)) {
          seen.add(msg.id);
          if (msg.author === "AGENT") emit("message", Object.assign({ conversationId: e.conversationId }, msg));
        }
        for (const fn of watchers) fn(e);
      }
    };
    ws.onclose = (ev) => {
      if (live !== me) return;
      live = null;
      // 4403: the token is refused; the next call replaces it and follows the new one.
      if (ev.code !== 4403) setTimeout(() => live === null && state === "loaded" && follow(), 5000);
    };
  }
  function unfollow() {
    const l = live;
    live = null;
    if (l) l.ws.close(1000);
  }

  async function post(query, variables, token) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["X-Widget-Session"] = token;
    let res;
    try {
      res = await fetch(base + "/graphql", {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables }),
        credentials: "omit",
        mode: "cors",
      });
    } catch (e) {
      throw new KnownError("NETWORK_ERROR", "Known is not reachable: " + e.message);
    }
    let body;
    try {
      body = await res.json();
    } catch (e) {
      throw new KnownError("INTERNAL_SERVER_ERROR", "Known answered " + res.status + " without JSON");
    }
    return body;
  }

  // request runs one operation. needsSession: the operation acts on the session, so one is
  // started first when there is none. A token the server refuses (ended, expired, signed by
  // another server, or of another app) is dropped and the operation runs again on a fresh
  // anonymous session, silently: the visitor simply starts over, as after clearing storage.
  async function request(op, variables, needsSession) {
    for (let attempt = 0; ; attempt++) {
      if (needsSession && !storage.get()) await anonymous();
      const token = storage.get();
      const body = await post(Q[op], variables, token);
      const err = body.errors && body.errors[0];
      if (err) {
        const ext = err.extensions || {};
        // A token of another app (FORBIDDEN on appId) is as useless here as an ended one.
        const dead = ext.code === "UNAUTHENTICATED" ||
          (ext.code === "FORBIDDEN" && String(ext.field) === "input,appId");
        if (dead && token && attempt === 0) {
          storage.set(null);
          if (!needsSession && op === "conversations") return null; // a new visitor has none
          continue;
        }
        throw new KnownError(ext.code || "INTERNAL_SERVER_ERROR", err.message, ext.field);
      }
      const payload = body.data && body.data[op === "conversations" ? "session" : op];
      const ue = payload && payload.userErrors && payload.userErrors[0];
      if (ue) throw new KnownError(ue.code, ue.message, ue.field);
      if (payload && payload.session) adopt(payload.session);
      return payload;
    }
  }

  const anonymous = async () => {
    const body = await post(Q.identify, { input: { appId } }, null);
    const p = body.data && body.data.identify;
    const err = (body.errors && body.errors[0]) || (p && p.userErrors[0]);
    if (err || !p || !p.session) {
      const ext = (err && err.extensions) || err || {};
      throw new KnownError(ext.code || "INTERNAL_SERVER_ERROR", err && err.message, ext.field);
    }
    adopt(p.session);
  };

  /* ---------- the queue ---------- */

  // Every call waits for the widget to load, then for the calls made before it: one chain, so
  // that each runs with the session token the previous one left.
  let loaded;
  let gate = new Promise((resolve) => (loaded = resolve));
  let chain = gate;
  const enqueue = (fn) => {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  };
  const run = (build, op, needsSession, pick) => (...args) => {
    let variables;
    try {
      variables = build(...args); // bad arguments reject at once, naming the field
    } catch (e) {
      return Promise.reject(e);
    }
    return enqueue(() => request(op, variables, needsSession)).then(pick);
  };

  /* ---------- payloads: the seeds' names onto GraphQL's ---------- */

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const upperEnum = (v) => (typeof v === "string" ? v.toUpperCase() : v);
  const iso = (v) => (v instanceof Date ? v.toISOString() : v);

  // fields maps each accepted key (seed spelling and camelCase) to [input name, convert?];
  // null drops keys that the SDK owns. Any other key is refused, naming it, rather than
  // silently lost.
  function translate(what, value, fields) {
    if (!isObject(value)) throw invalid([what], what + " must be an object");
    const out = {};
    for (const [key, v] of Object.entries(value)) {
      if (!(key in fields)) throw invalid([what, key], what + ": unknown field " + key);
      const f = fields[key];
      if (f && v !== undefined) out[f[0]] = f[1] ? f[1](v) : v;
    }
    return out;
  }
  const both = (pairs) => {
    const m = {};
    for (const [snake, camel, conv] of pairs) {
      m[snake] = [camel, conv];
      m[camel] = [camel, conv];
    }
    return m;
  };
  const companyFields = both([["id", "id"], ["name", "name"], ["stage", "stage"], ["metadata", "metadata"]]);
  const identifyFields = Object.assign(
    both([
      ["user_id", "userId"],
      ["email", "email"],
      ["name", "name"],
      ["first_name", "firstName"],
      ["last_name", "lastName"],
      ["phone_number", "phoneNumber"],
      ["avatar_url", "avatarUrl"],
      ["metadata", "metadata"],
      ["company", "company", (c) => translate("company", c, companyFields)],
      ["company_ids", "companyIds", (ids) => (Array.isArray(ids) ? ids.map(String) : ids)],
      ["stage_mode", "stageMode", upperEnum],
      ["user_hash", "userHash"],
      ["jwt", "jwt"],
      ["identification_token", "identificationToken"],
    ]),
    // The session's app and visitor are the SDK's: a page's own values are not sent.
    { app_id: null, appId: null, visitor_id: null, visitorId: null }
  );
  const setUserFields = Object.assign(
    both([
      ["id", "id", (v) => (typeof v === "number" ? String(v) : v)],
      ["email", "email"],
      ["name", "name"],
      ["avatar_url", "avatarUrl"],
      ["attrs", "attrs"],
      ["organizations", "organizations", (orgs) =>
        Array.isArray(orgs)
          ? orgs.map((o) => (isObject(o) && typeof o.id === "number" ? Object.assign({}, o, { id: String(o.id) }) : o))
          : orgs],
      ["jwt", "jwt"],
      ["user_hash", "userHash"],
    ]),
    { app_id: null, appId: null }
  );
  const companyOpts = both([
    ["company_id", "companyId"],
    ["stage_mode", "stageMode", upperEnum],
    ["occurred_at", "occurredAt", iso],
  ]);
  const dealFields = both([
    ["company_id", "companyId"],
    ["name", "name"],
    ["amount", "amount"],
    ["currency", "currency"],
    ["stage", "stage"],
    ["status", "status", upperEnum],
  ]);
  const text = (field, v) => {
    if (typeof v !== "string" || !v.trim()) throw invalid(["input", field], field + " must be a non-empty string");
    return v;
  };

  /* ---------- the API ---------- */

  // Every mutation names the app, so that a stored token of another app is refused (and
  // dropped) rather than acted on.

  const api = {
    identify: run((p) => ({ input: Object.assign({ appId }, translate("identify", p || {}, identifyFields)) }),
      "identify", false, (r) => session),
    setUser: run((u) => ({ input: Object.assign({ appId }, translate("setUser", u || {}, setUserFields)) }),
      "setUser", false, () => session),
    setProperties: run((props) => {
      if (!isObject(props)) throw invalid(["input", "properties"], "properties must be an object");
      return { input: { appId, properties: props } };
    }, "setProperties", true, () => session),
    track: run((event, properties, opts) => {
      const input = Object.assign({ appId, event: text("event", event) }, translate("options", opts || {}, companyOpts));
      delete input.stageMode;
      if (properties !== undefined && properties !== null) input.properties = properties;
      return { input };
    }, "track", true, (r) => r.event),
    setStage: run((stage, opts) => {
      // HAL pages may pass one object: setStage({stage, company_id, stage_mode}).
      if (isObject(stage)) ({ stage, ...opts } = stage);
      const input = Object.assign({ appId, stage: text("stage", stage) }, translate("options", opts || {}, companyOpts));
      delete input.occurredAt;
      return { input };
    }, "setStage", true, (r) => r.company),
    setDeal: run((deal) => ({ input: Object.assign({ appId }, translate("deal", deal, dealFields)) }),
      "setDeal", true, (r) => r.company),
    startConversation: run((body) => ({ input: { appId, body: text("body", body) } }),
      "startConversation", true, (r) => r.conversation),
    sendMessage: run((conversationId, body) => ({
      input: { appId, conversationId: text("conversationId", conversationId), body: text("body", body) },
    }), "sendMessage", true, (r) => r.message),
    conversations: () => enqueue(conversations),
    resetSession: () => enqueue(async () => {
      const token = storage.get();
      if (token) {
        // Ends the token on the server too; a token already dead or a server out of reach
        // does not keep the visitor logged in here.
        await post(Q.resetSession, {}, token).catch(() => {});
      }
      // Logout forgets the session entirely; the next call starts a new anonymous visitor.
      storage.set(null);
      unfollow();
      session = null;
      seen.clear();
      primed = false;
      emit("session", null);
      if (ui) ui.reset();
    }),
    on(event, fn) {
      (handlers[event] = handlers[event] || []).push(fn);
      if (event === "ready" && state === "loaded") fn(api);
      return api;
    },
    off(event, fn) {
      handlers[event] = (handlers[event] || []).filter((h) => h !== fn);
      return api;
    },
    get session() {
      return session;
    },
    // Like every method, these return Promises; open() and close() wait for the widget to load.
    widget: {
      load: () => load(),
      open: () => gate.then(() => ui && ui.open()),
      close: () => gate.then(() => ui && ui.close()),
      remove: () => Promise.resolve(remove()),
      status: () => ({ loaded: state === "loaded" }),
    },
    KnownError,
    version: "1",
  };

  // conversations reads the session's conversations, newest first, each with its messages
  // oldest first. A visitor without a session has none: reading them starts no session.
  async function conversations() {
    if (!storage.get()) return [];
    const r = await request("conversations", {}, false);
    const list = (r ? r.conversations.nodes : []).map((c) =>
      Object.assign({}, c, { messages: c.messages.nodes.slice().reverse() })
    );
    for (const c of list) {
      for (const m of c.messages) {
        if (seen.has(m.id)) continue;
        seen.add(m.id);
        if (m.author === "AGENT" && primed) emit("message", Object.assign({ conversationId: c.id }, m));
      }
    }
    primed = true;
    return list;
  }

  /* ---------- loading ---------- */

  let state = "idle"; // idle → loading → loaded; remove() goes back to idle
  let ui = null;
  let loading = null;

  function load() {
    if (loading) return loading;
    state = "loading";
    loading = (async () => {
      const s = current();
      if (s.identificationEmail && s.identificationToken) {
        // Seed 004: the identification is applied as the widget loads, before queued calls.
        try {
          await request("identify", {
            input: { appId, email: s.identificationEmail, identificationToken: s.identificationToken },
          }, false);
        } catch (e) {
          console.warn("Known: the identification token was refused (" + e.code + "): " + e.message);
        }
      }
      if (s.ui !== false && !ui) ui = drawUI(s);
      state = "loaded";
      loaded();
      follow();
      emit("ready", api);
    })();
    return loading;
  }

  function remove() {
    unfollow();
    if (ui) ui.destroy();
    ui = null;
    loading = null;
    state = "idle";
    // Calls made after remove() wait for the next load().
    gate = new Promise((resolve) => (loaded = resolve));
    chain = chain.then(() => gate);
  }

  /* ---------- the chat UI ---------- */

  const CSS = `
:host{all:initial}
*{box-sizing:border-box;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0}
.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;
background:var(--known-accent,#2459d6);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);
display:flex;align-items:center;justify-content:center}
.launcher svg{width:28px;height:28px;fill:currentColor}
button:focus-visible,textarea:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.panel{position:fixed;right:20px;bottom:88px;width:360px;max-width:calc(100vw - 40px);height:520px;
max-height:calc(100vh - 120px);background:#fff;color:#1d2433;border-radius:12px;overflow:hidden;
box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column}
.panel[hidden]{display:none}
header{background:var(--known-accent,#2459d6);color:#fff;padding:14px 16px;display:flex;align-items:center;gap:8px}
header h2{flex:1;font-size:16px;font-weight:600;color:inherit}
header button{background:transparent;border:0;color:inherit;cursor:pointer;font-size:20px;line-height:1;padding:4px 8px;border-radius:6px}
header button[hidden]{display:none}
.body{flex:1;overflow-y:auto;padding:12px;background:#f5f7fb}
.list{list-style:none;padding:0;display:flex;flex-direction:column;gap:8px}
.list button{width:100%;text-align:left;border:1px solid #dde3ee;background:#fff;border-radius:8px;padding:10px 12px;cursor:pointer;color:#1d2433}
.list small{display:block;color:#5b6577;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.new{margin-top:12px;width:100%;padding:10px;border-radius:8px;border:0;background:var(--known-accent,#2459d6);color:#fff;cursor:pointer;font-weight:600}
.log{list-style:none;padding:0;display:flex;flex-direction:column;gap:8px}
.msg{max-width:80%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.msg.VISITOR{align-self:flex-end;background:var(--known-accent,#2459d6);color:#fff;border-bottom-right-radius:4px}
.msg.AGENT{align-self:flex-start;background:#fff;border:1px solid #dde3ee;border-bottom-left-radius:4px}
.msg .who{display:block;font-size:11px;opacity:.75}
.empty{color:#5b6577;text-align:center;padding:24px 8px}
form{display:flex;gap:8px;padding:10px;border-top:1px solid #dde3ee;background:#fff}
form[hidden]{display:none}
textarea{flex:1;resize:none;height:40px;padding:9px 10px;border:1px solid #c7cfdd;border-radius:8px;color:#1d2433;background:#fff}
form button{border:0;border-radius:8px;background:var(--known-accent,#2459d6);color:#fff;padding:0 14px;cursor:pointer;font-weight:600}
.status{font-size:12px;color:#b3261e;padding:0 12px 8px;background:#fff}
.status:empty{display:none}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
`;
  const ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';

  // el builds an element; text always goes in as text, never as markup.
  const el = (tag, props, ...children) => {
    const e = d.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  };

  function drawUI(s) {
    // A custom element name and an inline style keep the page's CSS off the host itself.
    const host = d.createElement("known-widget");
    host.setAttribute("style", "all:initial!important;position:fixed!important;z-index:2147483000!important;display:block!important");
    const root = host.attachShadow({ mode: "open" });
    const style = d.createElement("style");
    style.textContent = CSS;
    if (s.accentColor) host.style.setProperty("--known-accent", String(s.accentColor));

    const launcher = el("button", {
      class: "launcher", type: "button", "aria-label": "Open chat", "aria-expanded": "false",
      "aria-controls": "known-panel", "aria-haspopup": "dialog",
    });
    launcher.innerHTML = ICON; // a constant, not data
    const title = el("h2", { id: "known-title", text: "Messages" });
    const back = el("button", { type: "button", class: "back", "aria-label": "All conversations", hidden: true, text: "‹" });
    const close = el("button", { type: "button", class: "close", "aria-label": "Close chat", text: "×" });
    const body = el("div", { class: "body" });
    const input = el("textarea", { id: "known-input", rows: "1", placeholder: "Write a message…", maxlength: "10000" });
    const status = el("p", { class: "status", role: "alert" });
    const form = el("form", { "aria-label": "Send a message" },
      el("label", { for: "known-input", class: "sr", text: "Message" }), input,
      el("button", { type: "submit", text: "Send" }));
    const panel = el("section", {
      id: "known-panel", class: "panel", role: "dialog", "aria-labelledby": "known-title", hidden: true,
    }, el("header", null, back, title, close), body, status, form);
    root.append(style, panel, launcher);
    d.body.append(host);

    let open = false;
    let view = null; // "list" or "thread"; null until the first read decides
    let current = null; // the conversation in the thread view; null: a new one
    let list = [];
    let timer = null;
    const interval = Number(s.pollInterval) > 0 ? Number(s.pollInterval) : 10000;
    // The log stays in place and only grows, so that screen readers announce new messages.
    const log = el("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages" });
    let logOf; // the conversation whose messages log holds
    const drawn = new Set();

    const render = () => {
      back.hidden = view !== "thread" || list.length === 0;
      form.hidden = view !== "thread";
      if (view === null) {
        title.textContent = "Messages";
        body.replaceChildren(el("p", { class: "empty", text: "Loading…" }));
        return;
      }
      if (view === "list") {
        title.textContent = "Messages";
        const items = list.map((c) => {
          const last = c.messages[c.messages.length - 1];
          return el("li", null, el("button", { type: "button", onclick: () => show(c.id) },
            el("span", { text: "Conversation of " + new Date(c.createdAt).toLocaleDateString() }),
            el("small", { text: last ? (last.author === "AGENT" ? "Support: " : "You: ") + last.body : "" })));
        });
        body.replaceChildren(el("ul", { class: "list", "aria-label": "Your conversations" }, ...items),
          el("button", { type: "button", class: "new", text: "New conversation", onclick: () => show(null) }));
        return;
      }
      const c = current && list.find((x) => x.id === current);
      title.textContent = c ? "Conversation" : "New conversation";
      if (logOf !== current || !c) {
        log.replaceChildren();
        drawn.clear();
        logOf = current;
      }
      if (!c) log.append(el("li", { class: "empty", text: "Ask us anything: we usually answer within a few hours." }));
      for (const m of c ? c.messages : []) {
        if (drawn.has(m.id)) continue;
        drawn.add(m.id);
        log.append(el("li", { class: "msg " + m.author, "data-id": m.id },
          el("span", { class: "who", text: m.author === "AGENT" ? "Support" : "You" }), m.body));
      }
      if (body.firstChild !== log) body.replaceChildren(log);
      body.scrollTop = body.scrollHeight;
    };
    const focus = () => {
      const target = view === "thread" ? input : body.querySelector("button");
      if (target) target.focus();
    };
    const show = (id) => {
      view = "thread";
      current = id;
      render();
      focus();
    };
    const read = async () => {
      try {
        list = await api.conversations();
        status.textContent = "";
      } catch (e) {
        status.textContent = "Could not load your messages (" + e.code + ").";
        return;
      }
      if (current && !list.some((c) => c.id === current)) current = null; // another visitor now
      const first = view === null;
      if (first) {
        // Open on the latest conversation (the back button lists them all), or a new one.
        view = "thread";
        current = list.length > 0 ? list[0].id : null;
      }
      render();
      if (first && open) focus();
    };
    // One read at a time: a read asked for during another runs once after it, so that slow
    // answers never pile up behind the timer, and a read after a send sees the message.
    let reading = null;
    let again = false;
    const refresh = () => {
      if (reading) {
        again = true;
        return reading;
      }
      reading = (async () => {
        do {
          again = false;
          await read();
        } while (again);
        reading = null;
      })();
      return reading;
    };

    let sending = false;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text || sending) return;
      // The composer stays usable (and focused) while the message goes out.
      sending = true;
      form.setAttribute("aria-busy", "true");
      input.value = "";
      try {
        if (current) await api.sendMessage(current, text);
        else current = (await api.startConversation(text)).id;
        status.textContent = "";
        await refresh();
      } catch (e) {
        if (!input.value) input.value = text;
        status.textContent = "Not sent: " + e.message;
      } finally {
        sending = false;
        form.removeAttribute("aria-busy");
      }
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    panel.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.stopPropagation();
        setOpen(false);
        launcher.focus();
      }
    });
    back.addEventListener("click", () => {
      view = "list";
      current = null;
      render();
      focus();
    });
    close.addEventListener("click", () => {
      setOpen(false);
      launcher.focus();
    });
    launcher.addEventListener("click", () => setOpen(!open));
    const onSession = () => open && refresh();
    api.on("session", onSession);
    const onLive = () => open && refresh(); // a live event: read the thread now
    watchers.add(onLive);

    function setOpen(v) {
      if (v === open) return;
      open = v;
      panel.hidden = !v;
      launcher.setAttribute("aria-expanded", String(v));
      launcher.setAttribute("aria-label", v ? "Close chat" : "Open chat");
      clearInterval(timer);
      if (v) {
        // An open panel reads its conversations when opened, at each live event, and every
        // pollInterval ms (10 s) in case the socket is down.
        render();
        focus();
        refresh();
        timer = setInterval(refresh, interval);
      }
      emit(v ? "open" : "close");
    }

    return {
      open: () => setOpen(true),
      close: () => setOpen(false),
      reset() {
        list = [];
        current = null;
        view = "thread";
        render();
      },
      destroy() {
        clearInterval(timer);
        api.off("session", onSession);
        watchers.delete(onLive);
        host.remove();
      },
    };
  }

  /* ---------- start ---------- */

  w.Known = api;

  if (compat.has("hal")) {
    w.HalWidget = {
      identify: api.identify,
      setProperties: api.setProperties,
      track: api.track,
      setStage: api.setStage,
      setDeal: api.setDeal,
    };
  }
  if (compat.has("promptify")) {
    w.promptify = { setUser: api.setUser };
  }
  if (hubspot) {
    w.HubSpotConversations = {
      widget: api.widget,
      // HubSpot's logout.
      clear: () => api.resetSession(),
      on: api.on,
      off: api.off,
    };
  }

  // ready runs a page's callbacks in order, then makes later pushes run at once.
  const ready = (name, args) => {
    const queued = Array.isArray(w[name]) ? w[name] : [];
    const call = (fn) => {
      try {
        if (typeof fn === "function") fn(...args);
      } catch (e) {
        console.error(e);
      }
    };
    w[name] = { push: (...fns) => fns.forEach(call) };
    queued.forEach(call);
  };

  if (current().loadImmediately !== false) load();
  ready("knownOnReady", [api]);
  if (hubspot) ready("hsConversationsOnReady", []);
})();
