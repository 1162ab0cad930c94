'use strict';

// The agent console: one agent on one ticket and, optionally, one timeline,
// speaking the wire contract (docs/PROTOCOL.md §3, §3.1, §3.3, §4) through the
// stock socket.io-client bundle loaded before this file (`io`).
//
// Nothing from the server or the address bar is ever parsed as markup: every
// string reaches the page through `textContent` or an attribute.

(function main() {
  // A real editor's rhythm: `ticket:typing` when typing starts and again
  // every few seconds while it goes on (the server's typing_timeout is 10 s
  // by default), `ticket:stop_typing` after a pause or when the box loses
  // focus. A keystroke alone sends nothing more, whatever the typing speed.
  const TYPING_RENEW_MS = 3000;
  const TYPING_PAUSE_MS = 2500;
  const LOG_LIMIT = 30;
  const ITEM_LIMIT = 200;

  const $ = (id) => document.getElementById(id);
  const settings = readSettings(new URLSearchParams(window.location.search));
  if (!settings.ok) {
    showSetup(settings);
    return;
  }
  if (typeof window.io !== 'function') {
    setConnection('error', 'the socket.io-client bundle did not load');
    return;
  }

  // With a token, the agent is the token's `sub` (contract §1); read here to
  // mark "you" in the list, never trusted: the server verifies the token.
  const me = settings.agent || tokenClaim(settings.token, 'sub');
  const state = {
    viewers: [],
    serverWarning: null, // the last collision:warning, until the list changes
    typing: false,
    lastTypingSent: 0,
    pauseTimer: null,
    editing: false, // what the server was last told by ticket:draft
    activity: 'active', // what the server was last told by ticket:activity
    viewing: false,
    position: null, // { offset, epoch } of the timeline's last event, for `since`
    unsupported: new Set(), // events this server answered UNKNOWN_EVENT (before contract v2 §3.1)
  };

  $('ticket-id').textContent = settings.ticket;
  const shownName = settings.name || tokenClaim(settings.token, 'name') || me || 'the token\'s agent';
  $('me').textContent = me && me !== shownName ? `${shownName} (${me})` : shownName;
  $('timeline-key').textContent = settings.timeline ? `${settings.timeline.entityType}:${settings.timeline.entityId}` : '(none)';
  document.title = `Ticket ${settings.ticket} · Switchboard`;
  $('console').hidden = false;

  const socket = window.io({ auth: settings.token ? { token: settings.token } : undefined });
  window.switchboardConsole = { socket, state }; // for a developer's console

  // ---- connection ---------------------------------------------------------

  socket.on('connect', () => {
    setConnection('connected', `connected · ${socket.io.engine.transport.name}`);
    socket.io.engine.once('upgrade', (transport) => setConnection('connected', `connected · ${transport.name}`));
    $('viewers').classList.remove('stale');
    state.editing = false;
    state.activity = 'active';
    view();
    subscribe();
  });

  socket.on('disconnect', (reason) => {
    stopTypingTimers();
    state.typing = false;
    state.viewing = false;
    $('viewers').classList.add('stale');
    // `io server disconnect` (e.g. the token expired): socket.io does not retry by itself.
    const retrying = reason !== 'io server disconnect' && reason !== 'io client disconnect';
    setConnection('disconnected', `disconnected (${reason})${retrying ? ' · reconnecting…' : ''}`);
    log(`disconnected: ${reason}`);
  });

  socket.on('connect_error', (err) => {
    setConnection('error', `cannot connect: ${err.message}`);
  });

  function view() {
    const payload = ticketPayload();
    if (settings.name) payload.agentName = settings.name;
    if (settings.device) payload.device = settings.device;
    send('ticket:view', payload, (ack) => {
      state.viewing = true;
      renderViewers(ack.viewers);
      // What the server forgot with the old connection: the draft, a hidden tab.
      syncDraft();
      syncActivity();
    });
  }

  function subscribe() {
    if (!settings.timeline) return;
    const payload = { ...settings.timeline };
    if (state.position) payload.since = state.position;
    send('timeline:subscribe', payload, (ack) => {
      if (typeof ack.epoch === 'string' && typeof ack.offset === 'number') advance(ack);
      if (ack.recovered) log(`timeline: ${ack.missed} missed event(s) replayed`);
    });
  }

  // ---- presence -----------------------------------------------------------

  socket.on('viewers:updated', (p) => {
    if (p.ticketId !== settings.ticket) return;
    state.serverWarning = null;
    renderViewers(p.viewers);
  });

  socket.on('collision:warning', (p) => {
    if (p.ticketId !== settings.ticket) return;
    state.serverWarning = { severity: p.severity, message: p.message };
    renderWarning();
  });

  socket.on('agent:joined', (p) => ours(p) && log(`${p.agentName} opened the ticket`));
  socket.on('agent:typing', (p) => ours(p) && log(`${p.agentName} is typing`));
  socket.on('agent:stopped_typing', (p) => ours(p) && log(`${p.agentName} stopped typing`));
  socket.on('agent:left', (p) => {
    if (!ours(p)) return;
    if (me !== null && p.agentId === me) {
      // The stale sweep (or a lost node) removed this agent: view again at
      // the next sign of life (typing, showing the tab).
      state.viewing = false;
      log(`you were removed from the ticket (${p.reason})`);
      return;
    }
    log(`${p.agentName} left (${p.reason})`);
  });

  socket.on('ticket:updated', (p) => {
    if (p.ticketId !== settings.ticket) return;
    const who = p.by ? p.by.agentName || `agent ${p.by.agentId}` : 'Someone';
    $('updated-title').textContent = `${who} updated this ticket (${p.kind})`;
    $('updated-summary').textContent = p.summary || '';
    $('updated').hidden = false;
    log(`ticket updated by ${who}: ${p.kind}`);
  });
  $('updated-dismiss').addEventListener('click', () => {
    $('updated').hidden = true;
  });

  socket.on('ticket:error', (p) => log(`${p.event}: ${p.code} (${p.message})`, 'error'));
  socket.on('timeline:error', (p) => log(`${p.event}: ${p.code} (${p.message})`, 'error'));

  function ours(p) {
    return p.ticketId === settings.ticket;
  }

  function renderViewers(viewers) {
    state.viewers = Array.isArray(viewers) ? viewers : [];
    const list = $('viewers');
    list.replaceChildren(...state.viewers.map(viewerItem));
    if (state.viewers.length === 0) list.append(el('li', { className: 'empty' }, 'nobody'));
    renderWarning();
  }

  function viewerItem(v) {
    const editing = v.editing === true;
    const idle = v.idle === true;
    const li = el('li', { className: 'viewer' });
    li.dataset.agentId = v.agentId;
    li.dataset.status = v.status;
    li.classList.toggle('editing', editing);
    li.classList.toggle('idle', idle);
    li.classList.toggle('me', me !== null && v.agentId === me);
    li.append(
      el('span', { className: 'avatar', title: v.agentName }, initials(v.agentName)),
      el('span', { className: 'name' }, v.agentName),
    );
    if (me !== null && v.agentId === me) li.append(el('span', { className: 'you' }, 'you'));
    const badges = el('span', { className: 'badges' });
    badges.append(el('span', { className: `badge state-${v.status}` }, v.status));
    if (editing) badges.append(el('span', { className: 'badge state-editing' }, 'editing'));
    if (idle) badges.append(el('span', { className: 'badge state-idle' }, 'idle'));
    for (const device of Array.isArray(v.devices) ? v.devices : []) {
      badges.append(el('span', { className: 'badge device' }, device));
    }
    li.append(badges, el('span', { className: 'since' }, `since ${clock(v.since)}`));
    return li;
  }

  // The server warns once, when this agent arrives; afterwards the page keeps
  // the warning true to the list (a colleague who starts writing, or leaves),
  // in the contract's words.
  function renderWarning() {
    const box = $('warning');
    const others = state.viewers.filter((v) => me === null || v.agentId !== me);
    const warning = state.serverWarning || (others.length ? collisionOf(others) : null);
    box.hidden = !warning;
    if (!warning) return;
    box.dataset.severity = warning.severity;
    box.textContent = warning.message;
  }

  function collisionOf(others) {
    const typing = others.filter((v) => v.status === 'typing');
    const editing = others.filter((v) => v.status !== 'typing' && v.editing === true);
    if (typing.length || editing.length) {
      const parts = [];
      if (typing.length) parts.push(`${names(typing)} ${verb(typing)} typing a reply`);
      if (editing.length) parts.push(`${names(editing)} ${verb(editing)} editing a reply`);
      return { severity: 'critical', message: parts.join('; ') };
    }
    return { severity: 'warning', message: `${names(others)} ${verb(others)} viewing this ticket` };
  }

  // ---- the reply box --------------------------------------------------------

  const reply = $('reply-text');
  reply.addEventListener('input', () => {
    ensureViewing();
    if (reply.value === '') {
      // Emptied: nobody is writing a reply here any more.
      stopTyping();
      syncDraft();
      return;
    }
    const now = Date.now();
    if (!state.typing || now - state.lastTypingSent >= TYPING_RENEW_MS) {
      state.typing = true;
      state.lastTypingSent = now;
      send('ticket:typing', ticketPayload());
    }
    clearTimeout(state.pauseTimer);
    state.pauseTimer = setTimeout(stopTyping, TYPING_PAUSE_MS);
    syncDraft();
  });
  reply.addEventListener('blur', stopTyping);
  $('reply').addEventListener('submit', (event) => {
    event.preventDefault();
    if (reply.value.trim() === '') return;
    stopTyping();
    reply.value = '';
    syncDraft();
    log('reply sent (cleared: no helpdesk behind the console)');
  });

  function stopTyping() {
    stopTypingTimers();
    if (!state.typing) return;
    state.typing = false;
    send('ticket:stop_typing', ticketPayload());
  }

  function stopTypingTimers() {
    clearTimeout(state.pauseTimer);
    state.pauseTimer = null;
  }

  // `ticket:draft` on a change only: editing while the box holds text.
  function syncDraft() {
    const editing = reply.value.length > 0;
    if (!state.viewing || editing === state.editing) return;
    state.editing = editing;
    send('ticket:draft', { ...ticketPayload(), editing });
  }

  // ---- the tab --------------------------------------------------------------

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) ensureViewing();
    syncActivity();
  });

  function syncActivity() {
    const activity = document.hidden ? 'away' : 'active';
    if (!state.viewing || activity === state.activity) return;
    state.activity = activity;
    send('ticket:activity', { ...ticketPayload(), state: activity });
  }

  function ensureViewing() {
    if (!state.viewing && socket.connected) view();
  }

  // ---- the timeline ---------------------------------------------------------

  socket.on('timeline:new_item', (p) => {
    if (!onTimeline(p)) return;
    advance(p);
    showItem(p.item);
  });

  socket.on('timeline:item_updated', (p) => {
    if (!onTimeline(p)) return;
    advance(p);
    showItem(p.item, p.itemId);
  });

  socket.on('timeline:refresh', (p) => {
    if (!onTimeline(p)) return;
    advance(p);
    // A real client would now fetch the timeline from its backend; the
    // console has none, so it says so.
    const note = $('timeline-note');
    note.textContent = `Refresh asked${p.reason ? ` (${p.reason})` : ''} at ${clock(Date.now())}: reload the timeline from the helpdesk.`;
    note.hidden = false;
    log(`timeline refresh: ${p.reason === null || p.reason === undefined ? 'no reason' : p.reason}`);
  });

  function onTimeline(p) {
    const t = settings.timeline;
    return t !== null && p.entityType === t.entityType && String(p.entityId) === t.entityId;
  }

  // The position for `since` on the next reconnect (contract §4.1).
  function advance(p) {
    if (typeof p.offset !== 'number' || typeof p.epoch !== 'string') return;
    const current = state.position;
    if (!current || current.epoch !== p.epoch || p.offset > current.offset) {
      state.position = { offset: p.offset, epoch: p.epoch };
    }
  }

  function showItem(item, itemId) {
    const id = String(itemId !== undefined ? itemId : item && item.id !== undefined ? item.id : '');
    const text = item && typeof item.text === 'string' ? item.text : JSON.stringify(item);
    const li = el('li', { className: 'item' });
    li.dataset.itemId = id;
    li.append(el('span', { className: 'item-text' }, text), el('span', { className: 'item-meta' }, `#${id} · ${clock(Date.now())}`));
    const items = $('items');
    const existing = [...items.children].find((c) => c.dataset.itemId === id);
    if (existing) {
      li.classList.add('updated');
      existing.replaceWith(li);
    } else {
      items.prepend(li);
      while (items.children.length > ITEM_LIMIT) items.lastElementChild.remove();
    }
  }

  // ---- helpers ----------------------------------------------------------------

  function ticketPayload() {
    const payload = { ticketId: settings.ticket };
    if (me !== null) payload.agentId = me;
    return payload;
  }

  // Every event goes with an ack: a refusal comes back in it, once. A server
  // older than contract v2 §3.1 answers `ticket:draft` and `ticket:activity`
  // with UNKNOWN_EVENT; the console then stops sending that event.
  function send(event, payload, onOk) {
    if (!socket.connected || state.unsupported.has(event)) return;
    socket.emit(event, payload, (ack) => {
      if (ack && ack.ok) {
        if (onOk) onOk(ack);
        return;
      }
      const error = (ack && ack.error) || { code: 'NO_ANSWER', message: 'no ack' };
      if (error.code === 'UNKNOWN_EVENT') {
        state.unsupported.add(event);
        log(`${event}: not supported by this server (contract v2 §3.1)`);
        return;
      }
      if (error.code === 'NOT_VIEWING') state.viewing = false;
      log(`${event}: ${error.code} (${error.message})`, 'error');
    });
  }

  function setConnection(kind, text) {
    const pill = $('connection');
    pill.dataset.state = kind;
    pill.textContent = text;
  }

  function log(text, kind) {
    const list = $('log');
    const li = el('li', { className: kind || '' });
    li.append(el('time', {}, clock(Date.now())), document.createTextNode(` ${text}`));
    list.prepend(li);
    while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  }
})();

// ---- pure helpers (no page state) ---------------------------------------------

/**
 * The page's settings from its query: agent, name, ticket, timeline
 * (`entityType:entityId`), device, token. With a token the agent and name
 * are the token's (contract §1) and may be left out.
 */
function readSettings(query) {
  const get = (key) => {
    const value = query.get(key);
    return value === null || value.trim() === '' ? null : value.trim();
  };
  const settings = {
    agent: get('agent'),
    name: get('name'),
    ticket: get('ticket'),
    device: get('device'),
    token: get('token'),
    timeline: null,
    given: [...query.keys()].length > 0,
  };
  const problems = [];
  if (!settings.ticket) problems.push('a ticket id');
  if (!settings.token && !settings.agent) problems.push('an agent id');
  if (!settings.token && !settings.name) problems.push('an agent name');
  const timeline = get('timeline');
  if (timeline !== null) {
    const colon = timeline.indexOf(':');
    if (colon < 1 || colon === timeline.length - 1) problems.push('a timeline written entityType:entityId');
    else settings.timeline = { entityType: timeline.slice(0, colon), entityId: timeline.slice(colon + 1) };
  }
  settings.ok = problems.length === 0;
  settings.problem = problems.length ? `Needs ${problems.join(', ')}.` : null;
  return settings;
}

/** A string claim of a JWT's payload, or null (display only: not verified here). */
function tokenClaim(token, claim) {
  if (!token) return null;
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    const value = JSON.parse(new TextDecoder().decode(bytes))[claim];
    return typeof value === 'string' && value !== '' ? value : null;
  } catch {
    return null;
  }
}

function showSetup(settings) {
  const form = document.getElementById('setup-form');
  for (const key of ['agent', 'name', 'ticket', 'device', 'token']) {
    if (settings[key]) form.elements[key].value = settings[key];
  }
  if (settings.timeline) form.elements.timeline.value = `${settings.timeline.entityType}:${settings.timeline.entityId}`;
  const problem = document.getElementById('setup-problem');
  // A first visit gets the form alone; a half-filled address says what is missing.
  problem.hidden = !settings.given;
  problem.textContent = settings.problem || '';
  const pill = document.getElementById('connection');
  pill.dataset.state = 'idle';
  pill.textContent = 'not connected';
  document.getElementById('setup').hidden = false;
}

/** An element with properties (className, title) and text content. */
function el(tag, props, text) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  if (text !== undefined) node.textContent = text;
  return node;
}

function initials(name) {
  const words = String(name).trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';
}

function names(viewers) {
  const list = viewers.map((v) => v.agentName);
  return list.length === 1 ? list[0] : `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
}

function verb(viewers) {
  return viewers.length === 1 ? 'is' : 'are';
}

function clock(ms) {
  const d = new Date(typeof ms === 'number' ? ms : Date.now());
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
