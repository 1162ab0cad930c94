'use strict';

// The agent console (contract §6, `demo = true`) in a real browser: Debian's
// Chromium, headless, driven by playwright-core (which is told where the
// browser is and never downloads one). Each agent is its own browser context,
// as two colleagues on two machines would be.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const h = require('../helpers');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '../artifacts');
const TOKEN = 's3cret';
// Generous: the machine running the suite may be busy, and each wait ends as
// soon as its condition holds.
const WAIT = { timeout: 10_000 };
// The page's typing rhythm (demo/page/console.js): renewal interval.
const TYPING_RENEW_MS = 3000;

// The Node peer has no console.
const skipPeer = h.isPeer ? 'the Node peer has no agent console' : false;

describe('agent console (section 6, demo)', { skip: skipPeer }, () => {
  let browser;
  const contexts = new Set();

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  after(async () => {
    if (browser) await browser.close();
  });
  afterEach(async () => {
    await Promise.all([...contexts].map((c) => c.close()));
    contexts.clear();
  });

  /** A page in its own browser context (its own cookies, its own connection). */
  async function newPage() {
    const context = await browser.newContext({ viewport: { width: 1000, height: 660 } });
    contexts.add(context);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.problems = problems;
    return page;
  }

  /** Opens the console with these query parameters; resolves once it views the ticket. */
  async function openConsole(server, params) {
    const page = await newPage();
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined));
    await page.goto(`${server.url}/demo/?${query}`);
    if (params.agent) await viewerOf(page, params.agent).waitFor(WAIT);
    // Every event the page sends from here on, for the tests that count them.
    await page.evaluate(() => {
      window.sent = [];
      window.switchboardConsole.socket.onAnyOutgoing((event, payload) => window.sent.push({ event, payload }));
    });
    return page;
  }

  const viewerOf = (page, agentId) => page.locator(`#viewers li[data-agent-id="${agentId}"]`);
  const itemOf = (page, itemId) => page.locator(`#items li[data-item-id="${itemId}"]`);
  const sentBy = (page, event) => page.evaluate((name) => window.sent.filter((s) => s.event === name), event);

  function ada(ticket, timeline, extra = {}) {
    return { agent: '7', name: 'Ada', ticket, timeline, ...extra };
  }
  function bob(ticket, timeline, extra = {}) {
    return { agent: '8', name: 'Bob', ticket, timeline, ...extra };
  }

  it('is not found when demo is off', async () => {
    const server = await h.startServer({});
    try {
      const page = await newPage();
      const res = await page.goto(`${server.url}/demo/?agent=7&name=Ada&ticket=42`);
      assert.equal(res.status(), 404);
      assert.equal((await h.http('GET', `${server.url}/demo/socket.io.min.js`)).status, 404);
    } finally {
      await server.stop();
    }
  });

  describe('with demo = true', () => {
    const server = h.serverForDescribe({ demo: true, internal_token: TOKEN });
    const api = (method, p, body) => h.http(method, `${server.internalUrl}${p}`, { token: TOKEN, body });
    const publish = async (type, id, item) => {
      const res = await api('POST', `/v1/timeline/${type}/${id}/items`, item);
      assert.equal(res.status, 202, res.text);
    };

    it('without parameters it asks for them in a form, which opens the console', async () => {
      const page = await newPage();
      await page.goto(`${server.url}/demo/`);
      await page.locator('#setup').waitFor(WAIT);
      assert.equal(await page.locator('#console').isVisible(), false);
      assert.equal(await page.locator('#setup-problem').isVisible(), false, 'a first visit is not told off');
      for (const name of ['agent', 'name', 'ticket', 'timeline']) {
        assert.equal(await page.locator(`#setup-form input[name="${name}"]`).count(), 1, name);
      }
      const ticket = h.uid('t');
      await page.fill('input[name="agent"]', '7');
      await page.fill('input[name="name"]', 'Ada');
      await page.fill('input[name="ticket"]', ticket);
      await page.fill('input[name="timeline"]', 'contact:9');
      await Promise.all([page.waitForURL(/ticket=/), page.click('#setup-form button[type="submit"]')]);
      await viewerOf(page, '7').waitFor(WAIT);
      assert.equal(new URL(page.url()).searchParams.get('ticket'), ticket);
      assert.equal(await page.locator('#ticket-id').textContent(), ticket);
      assert.deepEqual(page.problems, []);
    });

    it('a half-filled address shows the form with what is missing', async () => {
      const page = await newPage();
      await page.goto(`${server.url}/demo/?agent=7&timeline=contact`);
      await page.locator('#setup-problem').waitFor(WAIT);
      const problem = await page.locator('#setup-problem').textContent();
      assert.match(problem, /ticket id/);
      assert.match(problem, /agent name/);
      assert.match(problem, /entityType:entityId/);
      assert.equal(await page.inputValue('input[name="agent"]'), '7');
    });

    it('two agents on one ticket see each other, with the collision warning', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await viewerOf(pageA, '8').waitFor(WAIT);
      await viewerOf(pageB, '7').waitFor(WAIT);
      assert.match(await viewerOf(pageA, '8').textContent(), /Bob.*viewing/);
      assert.match(await viewerOf(pageA, '7').textContent(), /you/);
      const warningB = pageB.locator('#warning');
      await warningB.waitFor(WAIT);
      assert.equal(await warningB.textContent(), 'Ada is viewing this ticket');
      assert.equal(await warningB.getAttribute('data-severity'), 'warning');
      // The page is the same list the backend sees.
      const res = await api('GET', `/v1/tickets/${ticket}/viewers`);
      assert.deepEqual(res.json.viewers.map((v) => v.agentId), ['7', '8']);
      assert.deepEqual([...pageA.problems, ...pageB.problems], []);
    });

    it('typing in one shows typing in the other, with as few events as a real editor sends', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await viewerOf(pageA, '8').waitFor(WAIT);
      // The reply box is the page's first textarea (contract §6).
      const box = pageB.locator('textarea').first();
      const started = Date.now();
      await box.pressSequentially('Hello, I am looking into it', { delay: 15 });
      const typedFor = Date.now() - started;
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="typing"]').waitFor(WAIT);
      assert.match(await viewerOf(pageA, '8').textContent(), /typing/);
      assert.equal(await pageA.locator('#warning').getAttribute('data-severity'), 'critical');
      assert.equal(await pageA.locator('#warning').textContent(), 'Bob is typing a reply');
      // 27 keystrokes: one ticket:typing, and one more per renewal interval
      // only if the typing took that long (a busy machine).
      const typing = (await sentBy(pageB, 'ticket:typing')).length;
      assert.ok(typing >= 1 && typing <= 1 + Math.floor(typedFor / TYPING_RENEW_MS), `${typing} ticket:typing in ${typedFor} ms`);
      assert.deepEqual((await sentBy(pageB, 'ticket:draft')).map((s) => s.payload.editing), [true]);
      // Leaving the box stops typing at once.
      await pageB.locator('#ticket-title').click();
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="viewing"]').waitFor(WAIT);
      const last = await pageB.evaluate(() => window.sent.filter((s) => s.event.startsWith('ticket:')).at(-1).event);
      assert.equal(last, 'ticket:stop_typing');
      // The reply is still in the box: Bob has a draft, still a critical colleague.
      await pageA.locator('#viewers li[data-agent-id="8"].editing').waitFor(WAIT);
      assert.equal(await pageA.locator('#warning').getAttribute('data-severity'), 'critical');
      assert.equal(await pageA.locator('#warning').textContent(), 'Bob is editing a reply');
    });

    it('stops typing by itself after a pause', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await pageB.locator('textarea').first().pressSequentially('One moment');
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="typing"]').waitFor(WAIT);
      // Focus stays in the box; the page's pause (2.5 s) ends the typing.
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="viewing"]').waitFor(WAIT);
      assert.equal(await pageB.evaluate(() => document.activeElement.tagName), 'TEXTAREA');
      assert.equal((await sentBy(pageB, 'ticket:stop_typing')).length, 1);
    });

    it('emptying the box stops typing at once', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      const box = pageB.locator('textarea').first();
      await box.pressSequentially('Oops');
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="typing"]').waitFor(WAIT);
      await box.fill('');
      // Sent by the input itself, not by the 2.5 s pause timer.
      const events = await pageB.evaluate(() => window.sent.map((e) => e.event));
      assert.equal(events.at(-1) === 'ticket:stop_typing' || events.at(-2) === 'ticket:stop_typing', true, JSON.stringify(events));
      assert.equal(events.filter((e) => e === 'ticket:typing').length, 1, JSON.stringify(events));
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="viewing"]').waitFor(WAIT);
    });

    it('a published item appears in both, as text, and is updated in place', async () => {
      const ticket = h.uid('t');
      const entity = h.uid('c');
      const timeline = `contact:${entity}`;
      const pageA = await openConsole(server, ada(ticket, timeline));
      const pageB = await openConsole(server, bob(ticket, timeline));
      // Markup in an item is shown as text, never parsed.
      await publish('contact', entity, { id: 1, text: 'Customer wrote: <b>where is my order?</b>' });
      await publish('contact', entity, { id: 2, kind: 'call', minutes: 4 });
      for (const page of [pageA, pageB]) {
        await itemOf(page, '1').waitFor(WAIT);
        await itemOf(page, '2').waitFor(WAIT);
        assert.equal(await itemOf(page, '1').locator('.item-text').textContent(), 'Customer wrote: <b>where is my order?</b>');
        assert.equal(await page.locator('#items b').count(), 0);
        assert.equal(await itemOf(page, '2').locator('.item-text').textContent(), '{"id":2,"kind":"call","minutes":4}');
      }
      const res = await api('PUT', `/v1/timeline/contact/${entity}/items/1`, { id: 1, text: 'Customer wrote: never mind, it arrived' });
      assert.equal(res.status, 202, res.text);
      for (const page of [pageA, pageB]) {
        await page.locator('#items li[data-item-id="1"].updated').waitFor(WAIT);
        assert.equal(await itemOf(page, '1').count(), 1);
        assert.equal(await itemOf(page, '1').locator('.item-text').textContent(), 'Customer wrote: never mind, it arrived');
      }
      await api('POST', `/v1/timeline/contact/${entity}/refresh`, { reason: 'merged' });
      await pageA.locator('#timeline-note').waitFor(WAIT);
      assert.match(await pageA.locator('#timeline-note').textContent(), /merged/);
      await fs.promises.mkdir(ARTIFACTS, { recursive: true });
      await pageA.screenshot({ path: path.join(ARTIFACTS, 'console-timeline.png') });
    });

    it('closing one page removes that agent from the other\'s list', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await viewerOf(pageA, '8').waitFor(WAIT);
      assert.equal(await pageA.locator('#warning').isVisible(), true);
      await pageB.context().close();
      contexts.delete(pageB.context());
      await viewerOf(pageA, '8').waitFor({ ...WAIT, state: 'detached' });
      assert.equal(await pageA.locator('#warning').isVisible(), false);
      await pageA.locator('#log li', { hasText: 'Bob left (disconnected)' }).waitFor(WAIT);
    });

    it('after a reconnect it views and subscribes again, and gets the items it missed', async () => {
      const ticket = h.uid('t');
      const entity = h.uid('c');
      const timeline = `contact:${entity}`;
      const pageA = await openConsole(server, ada(ticket, timeline));
      const pageB = await openConsole(server, bob(ticket, timeline));
      await publish('contact', entity, { id: 1, text: 'before' });
      await itemOf(pageB, '1').waitFor(WAIT);
      await pageB.evaluate(() => window.switchboardConsole.socket.disconnect());
      await viewerOf(pageA, '8').waitFor({ ...WAIT, state: 'detached' });
      await publish('contact', entity, { id: 2, text: 'while Bob was away' });
      await itemOf(pageA, '2').waitFor(WAIT);
      await pageB.evaluate(() => window.switchboardConsole.socket.connect());
      await viewerOf(pageA, '8').waitFor(WAIT);
      await itemOf(pageB, '2').waitFor(WAIT);
      const [subscribe] = (await sentBy(pageB, 'timeline:subscribe')).slice(-1);
      assert.equal(subscribe.payload.since.offset, 1, JSON.stringify(subscribe));
      await publish('contact', entity, { id: 3, text: 'after' });
      await itemOf(pageB, '3').waitFor(WAIT);
      assert.equal(await pageB.locator('#items li').count(), 3);
    });

    it('a hidden tab tells the server it is away, a shown one that it is active', async () => {
      const ticket = h.uid('t');
      const page = await openConsole(server, ada(ticket));
      await setHidden(page, true);
      await setHidden(page, false);
      await h.eventually(async () => (await sentBy(page, 'ticket:activity')).length >= 1);
      const states = (await sentBy(page, 'ticket:activity')).map((s) => s.payload.state);
      // Before the server side of §3.1 the first one is answered UNKNOWN_EVENT
      // and the page stops sending it; after, both go out.
      assert.equal(states[0], 'away');
      assert.ok(states.length <= 2 && (states.length === 1 || states[1] === 'active'), JSON.stringify(states));
    });

    it('writes a screenshot of two agents on one ticket', async () => {
      const ticket = h.uid('t');
      const entity = h.uid('c');
      const timeline = `contact:${entity}`;
      const pageA = await openConsole(server, ada(ticket, timeline));
      const pageB = await openConsole(server, bob(ticket, timeline));
      await publish('contact', entity, { id: 'm-101', text: 'Customer: my order #5512 has not arrived yet.' });
      await publish('contact', entity, { id: 'n-7', text: 'Internal note (Cy): carrier says it is in the depot.' });
      await itemOf(pageA, 'n-7').waitFor(WAIT);
      await pageB.locator('textarea').first().pressSequentially('Hi! I checked with the carrier and');
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="typing"]').waitFor(WAIT);
      await pageB.locator('#ticket-title').click(); // Bob pauses: typing ends, his draft stays
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="viewing"]').waitFor(WAIT);
      await pageA.locator('textarea').first().pressSequentially('Hello, thanks for your patience');
      await pageB.locator('#viewers li[data-agent-id="7"][data-status="typing"]').waitFor(WAIT);
      await fs.promises.mkdir(ARTIFACTS, { recursive: true });
      // Side by side in one picture: Ada's screen, then Bob's.
      const shots = await Promise.all([pageA, pageB].map((p) => p.screenshot()));
      const board = await newPage();
      await board.setViewportSize({ width: 2 * 1000 + 24, height: 660 });
      await board.setContent(`<body style="margin:0;background:#d0d5dd;display:flex;gap:24px">
        ${shots.map((png) => `<img width="1000" src="data:image/png;base64,${png.toString('base64')}">`).join('')}</body>`);
      await board.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
      const file = path.join(ARTIFACTS, 'console-two-agents.png');
      await board.screenshot({ path: file });
      assert.ok((await fs.promises.stat(file)).size > 20_000, 'a screenshot with something on it');
    });

    it('renders the v2 viewer fields and ticket:updated as the contract shapes them', async () => {
      // The server side of §3.1/§3.3 is not here yet: the page's own handlers
      // are fed contract-shaped payloads, as its socket would deliver them.
      const ticket = h.uid('t');
      const page = await openConsole(server, ada(ticket, undefined, { device: 'web' }));
      const deliver = (event, payload) =>
        page.evaluate(([e, p]) => window.switchboardConsole.socket.listeners(e).forEach((fn) => fn(p)), [event, payload]);
      const since = Date.now();
      const viewer = (agentId, agentName, more) => ({ agentId, agentName, status: 'viewing', since, typingStartedAt: null, editing: false, idle: false, devices: ['web'], ...more });
      await deliver('viewers:updated', {
        ticketId: ticket,
        viewers: [viewer('7', 'Ada'), viewer('8', 'Bob <img src=x>', { editing: true, idle: true, devices: ['mobile', 'web'] })],
      });
      const bob = viewerOf(page, '8');
      await page.locator('#viewers li[data-agent-id="8"].editing.idle').waitFor(WAIT);
      assert.deepEqual(await bob.locator('.badge').allTextContents(), ['viewing', 'editing', 'idle', 'mobile', 'web']);
      assert.equal(await bob.locator('.name').textContent(), 'Bob <img src=x>');
      assert.equal(await page.locator('#viewers img').count(), 0);
      assert.equal(await page.locator('#warning').getAttribute('data-severity'), 'critical');
      assert.equal(await page.locator('#warning').textContent(), 'Bob <img src=x> is editing a reply');

      await deliver('ticket:updated', {
        ticketId: ticket, kind: 'reply', by: { agentId: '8', agentName: 'Bob' }, summary: 'Sent: <i>refund approved</i>', version: '12', at: since,
      });
      await page.locator('#updated').waitFor(WAIT);
      assert.equal(await page.locator('#updated-title').textContent(), 'Bob updated this ticket (reply)');
      assert.equal(await page.locator('#updated-summary').textContent(), 'Sent: <i>refund approved</i>');
      assert.equal(await page.locator('#updated i').count(), 0);
      await deliver('ticket:updated', { ticketId: ticket, kind: 'status', by: null, summary: null, version: null, at: since });
      await page.locator('#updated-title', { hasText: 'Someone updated this ticket (status)' }).waitFor(WAIT);
      await page.click('#updated-dismiss');
      assert.equal(await page.locator('#updated').isVisible(), false);
      // Another ticket's update is not this page's.
      await deliver('ticket:updated', { ticketId: `${ticket}-other`, kind: 'reply', by: null, summary: null, version: null, at: since });
      assert.equal(await page.locator('#updated').isVisible(), false);
      // The `device` parameter in the view was taken without complaint.
      assert.equal(await page.locator('#log li.error').count(), 0);
      assert.deepEqual(page.problems, []);
    });

    // ---- contract v2 §3.1 and §3.3: editing, idle, devices, ticket:updated ----

    it('a colleague with a draft shows as editing, and the warning says so', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await pageB.locator('textarea').first().pressSequentially('Draft');
      await pageB.locator('#ticket-title').click(); // typing stops, the draft stays
      await pageA.locator('#viewers li[data-agent-id="8"][data-status="viewing"].editing').waitFor(WAIT);
      assert.match(await viewerOf(pageA, '8').textContent(), /editing/);
      assert.equal(await pageA.locator('#warning').getAttribute('data-severity'), 'critical');
      assert.equal(await pageA.locator('#warning').textContent(), 'Bob is editing a reply');
      // Emptied: the draft is gone.
      await pageB.locator('textarea').first().fill('');
      await pageA.locator('#viewers li[data-agent-id="8"]:not(.editing)').waitFor(WAIT);
      assert.deepEqual((await sentBy(pageB, 'ticket:draft')).map((s) => s.payload.editing), [true, false]);
      // Sent: the draft is gone too.
      await pageB.locator('textarea').first().pressSequentially('Done');
      await pageA.locator('#viewers li[data-agent-id="8"].editing').waitFor(WAIT);
      await pageB.click('#reply button[type="submit"]');
      await pageA.locator('#viewers li[data-agent-id="8"]:not(.editing)').waitFor(WAIT);
      assert.equal(await pageB.inputValue('textarea'), '');
    });

    it('a hidden tab shows as idle to colleagues', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      await setHidden(pageB, true);
      await pageA.locator('#viewers li[data-agent-id="8"].idle').waitFor(WAIT);
      assert.match(await viewerOf(pageA, '8').textContent(), /idle/);
      await setHidden(pageB, false);
      await pageA.locator('#viewers li[data-agent-id="8"]:not(.idle)').waitFor(WAIT);
    });

    it('shows each viewer\'s devices', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      await openConsole(server, bob(ticket, undefined, { device: 'mobile' }));
      await viewerOf(pageA, '8').locator('.badge.device', { hasText: 'mobile' }).waitFor(WAIT);
      assert.equal(await viewerOf(pageA, '7').locator('.badge.device').textContent(), 'web');
    });

    it('shows the "ticket updated" banner to everyone but the agent who updated it', async () => {
      const ticket = h.uid('t');
      const pageA = await openConsole(server, ada(ticket));
      const pageB = await openConsole(server, bob(ticket));
      const res = await api('POST', `/v1/tickets/${ticket}/events`, {
        kind: 'reply',
        by: { agentId: '8', agentName: 'Bob' },
        summary: 'Sent: <i>refund approved</i>',
      });
      assert.equal(res.status, 202, res.text);
      await pageA.locator('#updated').waitFor(WAIT);
      assert.equal(await pageA.locator('#updated-title').textContent(), 'Bob updated this ticket (reply)');
      assert.equal(await pageA.locator('#updated-summary').textContent(), 'Sent: <i>refund approved</i>');
      assert.equal(await pageA.locator('#updated i').count(), 0);
      await h.quietPeriod(300);
      assert.equal(await pageB.locator('#updated').isVisible(), false);
    });
  });

  describe('with auth_mode = jwt', () => {
    const SECRET = 'jwt-s3cret';
    const server = h.serverForDescribe({ demo: true, auth_mode: 'jwt', jwt_secret: SECRET });
    const b64u = (data) => Buffer.from(data).toString('base64url');
    const sign = (claims, key = SECRET) => {
      const data = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
      return `${data}.${b64u(crypto.createHmac('sha256', key).update(data).digest())}`;
    };
    const exp = () => Math.floor(Date.now() / 1000) + 600;

    it('the token parameter is the handshake\'s auth, and names the agent', async () => {
      const ticket = h.uid('t');
      const page = await newPage();
      await page.goto(`${server.url}/demo/?${new URLSearchParams({ ticket, token: sign({ sub: '7', name: 'Ada', exp: exp() }) })}`);
      await page.locator('#viewers li.me[data-agent-id="7"]', { hasText: 'Ada' }).waitFor(WAIT);
      assert.equal(await page.locator('#me').textContent(), 'Ada (7)');
      assert.deepEqual(page.problems, []);
    });

    it('a bad token is refused at connect and the page says so', async () => {
      const page = await newPage();
      await page.goto(`${server.url}/demo/?${new URLSearchParams({ ticket: '1', token: sign({ sub: '7', exp: exp() }, 'wrong') })}`);
      await page.locator('#connection[data-state="error"]', { hasText: 'unauthorized' }).waitFor(WAIT);
      assert.equal(await page.locator('#viewers li.viewer').count(), 0);
    });
  });
});

/** What a browser does when the tab is hidden or shown again. */
function setHidden(page, hidden) {
  return page.evaluate((value) => {
    Object.defineProperty(document, 'hidden', { value, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: value ? 'hidden' : 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}
