// Browser test of resume on the chat page: the page (the seed's user 猪猪) reaches the daemon through a TCP
// proxy of the test's own that can cut every connection at once (both sockets destroyed, no close frame, as a
// network drop or a proxy reload does). While it is cut, another user (a raw WebSocket client, no resume) talks;
// the page shows "reconnecting…", comes back with back-off, resumes and shows what it missed in order, once;
// the other user never sees 猪猪 leave or come back. A reload of the tab resumes as well (the session lives in
// sessionStorage); leaving ends the session at once. With a small --resume-buffer the page says "some messages
// may be missing"; once the grace ran out it joins afresh under the same name.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test resume.test.mjs`).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  chromium, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT, daemons, startDaemon, stopDaemon, suite, text, waitText,
  waitStatus, waitUsers,
} from './lib.mjs';

const NAME = '猪猪'; // the seed's user: the screenshots show it in a CJK font
const RESUME_WAIT = 15000; // ms: the page retries after 0.25 s, 0.5 s, 1 s, … (±25 %)

/**
 * A TCP proxy on a free loopback port forwarding to `targetPort`. `cut(how)` destroys every connection (both
 * sockets; 'reset' sends an RST, 'fin' a FIN; no close frame either way) and refuses new ones until `heal()`.
 */
function startProxy(targetPort) {
  const sockets = new Set(); // both sides of every connection, until closed
  let refusing = false;
  const stats = { accepted: 0, refused: 0 };
  const server = net.createServer((client) => {
    if (refusing) {
      stats.refused++;
      client.resetAndDestroy();
      return;
    }
    stats.accepted++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    // An orderly end passes through (a close frame before it arrives whole); an error takes both down.
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      sockets.add(a);
      a.on('error', () => { a.destroy(); b.destroy(); });
      a.on('close', () => { sockets.delete(a); b.end(); });
    }
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      stats,
      cut(how = 'fin') {
        refusing = true;
        for (const s of sockets) if (how === 'reset') s.resetAndDestroy(); else s.destroy();
        sockets.clear();
      },
      heal() { refusing = false; },
      close() {
        this.cut('reset');
        return new Promise((r) => server.close(() => r()));
      },
    }));
  });
}

suite('resume on the chat page in Chromium', { timeout: 120000 }, () => {
  let context, userDir;
  const proxies = [];
  const pages = {};
  const pageErrors = [];
  let failed = false;

  const step = (name, fn) => it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try { await fn(t); } catch (e) { failed = true; throw e; }
  });

  /** The chat page as `who`, its WebSocket through `proxy`. */
  async function openPage(who, daemon, proxy) {
    const page = await context.newPage();
    page.__who = who;
    page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
    page.on('dialog', (d) => { pageErrors.push(`${who}: dialog ${d.message()}`); d.dismiss().catch(() => {}); });
    const ws = encodeURIComponent(`ws://127.0.0.1:${proxy.port}/`);
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/?ws=${ws}`);
    await waitStatus(page, /^connected$/);
    pages[who] = page;
    return page;
  }

  async function login(page, name) {
    await page.bringToFront();
    await page.fill('#name', name);
    await page.click('#login');
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
  }

  async function say(page, content) {
    await page.bringToFront();
    await page.selectOption('#to', 'all');
    await page.fill('#message', content);
    await page.click('#send');
    await page.waitForFunction(() => document.querySelector('#message').value === '', null, { timeout: WAIT });
  }

  /**
   * A plain client (no resume) straight to the daemon, in a tab of its own: it logs in as `name` and keeps
   * every message it receives, in order.
   */
  async function rawClient(who, daemon, name) {
    const page = await context.newPage();
    page.__who = who;
    page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/healthz`);
    await page.evaluate(([url, n]) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      window.__ws = ws;
      window.__got = [];
      ws.onmessage = (e) => window.__got.push(JSON.parse(e.data));
      ws.onopen = () => { ws.send(JSON.stringify({ type: 'login', name: n })); resolve(); };
      ws.onerror = () => reject(new Error('raw client: WebSocket error'));
    }), [`ws://127.0.0.1:${daemon.wsPort}/`, name]);
    const client = {
      page,
      got: () => page.evaluate(() => window.__got),
      /** Says each of `contents` (to `to`) and waits for the echo of the last. */
      async say(contents, to = 'all') {
        await page.evaluate(([cs, t]) => {
          for (const c of cs) window.__ws.send(JSON.stringify({ type: 'say', to_uid: t, content: c }));
        }, [contents, to]);
        await page.waitForFunction((last) => window.__got.some((m) => m.type === 'say' && m.content === last),
          contents[contents.length - 1], { timeout: WAIT, polling: 50 });
      },
      /** The uid of the user named `n`, from what this client saw. */
      async uidOf(n) {
        await page.waitForFunction((x) => window.__got.some((m) => (m.type === 'user_list' &&
          m.user_list.some((u) => u.name === x)) || (m.type === 'login' && m.name === x)), n, { timeout: WAIT });
        const got = await client.got();
        for (const m of got.slice().reverse()) {
          if (m.type === 'login' && m.name === n) return m.uid;
          if (m.type === 'user_list') { const u = m.user_list.find((x) => x.name === n); if (u) return u.uid; }
        }
        throw new Error(`${who}: no uid for ${n}`);
      },
      /** The logins and logouts of `uid` this client saw after its own user list. */
      async presenceOf(uid) {
        return (await client.got()).filter((m) => (m.type === 'login' || m.type === 'logout') && m.uid === uid)
          .map((m) => m.type);
      },
    };
    return client;
  }

  /** The contents of the says shown, in order. */
  const contents = (page) => page.$$eval('#messages .msg .content', (es) => es.map((e) => e.textContent));
  /** The notes shown, in order. */
  const notes = (page) => page.$$eval('#messages li.note', (es) => es.map((e) => e.textContent));
  /** Every item of the list: a say as its content, a note as "note: …". */
  const items = (page) => page.$$eval('#messages li', (es) => es.map((e) =>
    (e.classList.contains('note') ? `note: ${e.textContent}` : e.querySelector('.content')?.textContent ?? '')));
  const stored = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('wschat.session')));

  async function waitReconnecting(page, shown, timeout = WAIT) {
    const sel = shown ? '#reconnecting:not([hidden])' : '#reconnecting[hidden]';
    await page.waitForSelector(sel, { state: 'attached', timeout }).catch(async () => {
      throw new Error(`${page.__who}: "reconnecting…" ${shown ? 'never shown' : 'still shown'}; status ` +
        `${JSON.stringify(await text(page, '#status'))}, list ${JSON.stringify(await items(page))}`);
    });
    if (shown) assert.equal((await text(page, '#reconnecting')).trim(), 'reconnecting…');
  }

  /** Waits until the page shows `want` as its last says, then checks the whole list holds each say once. */
  async function waitSays(page, want, timeout = RESUME_WAIT) {
    try {
      await page.waitForFunction((w) => {
        const got = [...document.querySelectorAll('#messages .msg .content')].map((e) => e.textContent);
        return got.length >= w.length && JSON.stringify(got.slice(-w.length)) === JSON.stringify(w);
      }, want, { timeout, polling: 50 });
    } catch {
      assert.deepEqual((await contents(page)).slice(-want.length), want, `${page.__who}: the last says`);
    }
    const all = await contents(page);
    assert.equal(new Set(all).size, all.length, `${page.__who}: a say shown twice: ${JSON.stringify(all)}`);
  }

  before(async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-e2e-resume-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 960, height: 640 },
    });
  });

  after(async () => {
    if (failed && context) {
      for (const [who, page] of Object.entries(pages)) {
        if (!page.isClosed()) await page.screenshot({ path: path.join(ARTIFACTS, `failure-resume-${who}.png`) }).catch(() => {});
      }
    }
    await context?.close().catch(() => {});
    for (const p of proxies) await p.close().catch(() => {});
    for (const p of [...daemons]) await stopDaemon(p);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  // ---- at the defaults (--resume-grace-secs 30, --resume-buffer 262144) ------------------------------
  let daemon, proxy, bob, zhu, zhuUid;

  step('猪猪 logs in through the proxy with resume; the page keeps the session in sessionStorage', async () => {
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'resume-daemon');
    proxy = await startProxy(daemon.wsPort);
    proxies.push(proxy);
    const page = await openPage('zhu', daemon, proxy);
    await login(page, NAME);
    bob = await rawClient('bob', daemon, 'bob');
    zhuUid = await bob.uidOf(NAME);
    await waitUsers(page, [NAME, 'bob']);
    await bob.say(['before the cut']);
    await waitSays(page, ['before the cut']);
    const s = await stored(page);
    assert.match(s?.session ?? '', /^[0-9a-f]{32}$/, 'the session in sessionStorage');
    assert.equal(s.name, NAME);
    assert.ok(typeof s.lastMid === 'string' && s.lastMid.length > 0, 'the last mid in sessionStorage'); // opaque
    zhu = page;
  });

  step('cut: the page shows "reconnecting…", retries, resumes, and shows what it missed in order, once', async () => {
    proxy.cut('fin');
    await waitReconnecting(zhu, true);
    assert.equal(await zhu.isDisabled('#message'), true, '#message must be disabled while away');
    await waitUsers(zhu, [NAME, 'bob']); // still in the room, as the server keeps it
    const missed = ['missed 1', 'missed 2', 'missed 3 <b>not bold</b>', 'missed 4', 'missed 5'];
    await bob.say(missed);
    await bob.say(['missed, private to 猪猪'], zhuUid);
    // The page tried at least twice against the cut, backing off.
    const refusedBefore = proxy.stats.refused;
    await zhu.waitForFunction(() => true); // keep the page's timers running in front
    for (let i = 0; i < 100 && proxy.stats.refused < refusedBefore + 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(proxy.stats.refused >= 2, `the page retried ${proxy.stats.refused} times during the cut`);
    await zhu.screenshot({ path: path.join(ARTIFACTS, 'resume-reconnecting.png') });
    await zhu.setViewportSize({ width: 390, height: 760 });
    await zhu.screenshot({ path: path.join(ARTIFACTS, 'resume-reconnecting-phone.png') });
    await zhu.setViewportSize({ width: 960, height: 640 });
    proxy.heal();
    await waitReconnecting(zhu, false, RESUME_WAIT);
    await waitSays(zhu, ['before the cut', ...missed, 'missed, private to 猪猪']);
    assert.equal((await text(zhu, '#status')).trim(), 'connected');
    assert.ok(!(await notes(zhu)).some((n) => n.includes('some messages may be missing')), 'a gap reported');
    const line = await zhu.$$eval('#messages li', (lis) => lis.map((l) => l.textContent).find((t) => t.includes('private to')));
    assert.match(line ?? '', /private to you/, 'the missed private say is marked private');
    // Back to chatting, under the same uid; bob never saw 猪猪 leave or come back.
    await say(zhu, 'I never left');
    await bob.say(['welcome back']);
    await waitSays(zhu, ['I never left', 'welcome back']);
    const got = await bob.got();
    assert.ok(got.some((m) => m.type === 'say' && m.from_uid === zhuUid && m.content === 'I never left'), 'same uid');
    assert.deepEqual(await bob.presenceOf(zhuUid), [], 'bob saw 猪猪 log out or in');
    await waitUsers(zhu, [NAME, 'bob']);
    await zhu.screenshot({ path: path.join(ARTIFACTS, 'resume.png') });
  });

  step('a reload of the tab resumes: the says stay, nothing twice, nobody sees a thing', async () => {
    const before = await contents(zhu);
    const { session } = await stored(zhu);
    await zhu.reload();
    await waitStatus(zhu, /^connected$/);
    await waitReconnecting(zhu, false, RESUME_WAIT);
    await zhu.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    assert.deepEqual(await contents(zhu), before, 'the says shown after the reload');
    assert.equal((await stored(zhu)).session, session, 'the same session');
    await waitUsers(zhu, [NAME, 'bob']);
    assert.equal(await zhu.$eval('#users li.me .uname', (e) => e.textContent), NAME, 'the page knows itself');
    await bob.say(['after the reload']);
    await waitSays(zhu, [...before.slice(-2), 'after the reload']);
    assert.deepEqual(await bob.presenceOf(zhuUid), [], 'bob saw 猪猪 log out or in');
  });

  step('says the server delivers again (the stored last mid is behind) are shown once', async () => {
    const before = await contents(zhu);
    // Forget the last mid: the resume then delivers every say since the session began, all already shown.
    await zhu.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('wschat.session'));
      sessionStorage.setItem('wschat.session', JSON.stringify({ ...s, lastMid: null }));
      window.addEventListener('pagehide', () => {
        sessionStorage.setItem('wschat.session', JSON.stringify({ ...s, lastMid: null }));
      });
    });
    await zhu.reload();
    await waitReconnecting(zhu, false, RESUME_WAIT);
    await zhu.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await bob.say(['after the replay']);
    await waitSays(zhu, [...before.slice(-2), 'after the replay']);
    assert.deepEqual(await contents(zhu), [...before, 'after the replay']);
    assert.deepEqual(await bob.presenceOf(zhuUid), [], 'bob saw 猪猪 log out or in');
  });

  step('a duplicated tab takes the session over; the first tab is told (4001) and does not fight back', async () => {
    const saved = await zhu.evaluate(() => ({ ...sessionStorage }));
    const twin = await context.newPage();
    twin.__who = 'twin';
    twin.on('pageerror', (e) => pageErrors.push(`twin: ${e.message}`));
    // A duplicated tab starts with a copy of its original's sessionStorage.
    await twin.addInitScript((copy) => {
      if (sessionStorage.getItem('twin-seeded')) return;
      for (const [k, v] of Object.entries(copy)) sessionStorage.setItem(k, v);
      sessionStorage.setItem('twin-seeded', '1');
    }, saved);
    await twin.goto(zhu.url());
    pages.twin = twin;
    await waitReconnecting(twin, false, RESUME_WAIT);
    await twin.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await waitText(zhu, '#messages', 'resumed elsewhere');
    await zhu.waitForSelector('#login:not([disabled])', { timeout: WAIT });
    assert.equal(await stored(zhu), null, 'the first tab forgot the session');
    await say(twin, 'from the twin');
    await waitSays(twin, ['from the twin']);
    await zhu.waitForTimeout(1500); // the first tab's reconnects (0.25 s, 0.5 s, …) must not take it back
    assert.equal(await twin.isDisabled('#message'), false, 'the twin lost the session');
    assert.equal(await zhu.isDisabled('#message'), true);
    assert.deepEqual(await bob.presenceOf(zhuUid), [], 'bob saw 猪猪 log out or in');
    await zhu.close();
    zhu = twin;
    delete pages.zhu;
  });

  step('leaving ends the session at once: bob sees the logout, a reload does not resume', async () => {
    await zhu.bringToFront();
    await zhu.click('#logout');
    await bob.page.waitForFunction((u) => window.__got.some((m) => m.type === 'logout' && m.uid === u), zhuUid,
      { timeout: WAIT });
    assert.deepEqual(await bob.presenceOf(zhuUid), ['logout'], 'exactly one logout');
    await zhu.waitForSelector('#login:not([disabled])', { timeout: WAIT });
    assert.equal(await stored(zhu), null, 'the session is forgotten');
    await zhu.reload();
    await waitStatus(zhu, /^connected$/);
    assert.equal(await zhu.isDisabled('#login'), false, 'a reload after leaving shows the login');
    assert.equal(await zhu.isDisabled('#message'), true);
    await zhu.close();
    delete pages.twin;
    await bob.page.close();
    assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
  });

  // ---- a small --resume-buffer: the oldest missed says are gone -----------------------------------------
  step('past --resume-buffer the page shows "some messages may be missing" before the newest missed says', async () => {
    const small = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'resume-small-buffer', ['--resume-buffer', '1024']);
    const p = await startProxy(small.wsPort);
    proxies.push(p);
    const page = await openPage('gap', small, p);
    await login(page, NAME);
    const carol = await rawClient('carol', small, 'carol');
    const uid = await carol.uidOf(NAME);
    await carol.say(['before the gap']);
    await waitSays(page, ['before the gap']);
    p.cut('reset');
    await waitReconnecting(page, true);
    const said = Array.from({ length: 40 }, (_, i) => `while away ${String(i + 1).padStart(2, '0')} ${'·'.repeat(40)}`);
    await carol.say(said);
    p.heal();
    await waitReconnecting(page, false, RESUME_WAIT);
    await waitText(page, '#messages', 'some messages may be missing', true, RESUME_WAIT);
    await waitSays(page, [said[said.length - 1]]);
    const all = await items(page);
    const gap = all.findIndex((t) => t.includes('some messages may be missing'));
    const after = all.slice(gap + 1).filter((t) => !t.startsWith('note:'));
    assert.ok(after.length > 0 && after.length < said.length, `${after.length} of ${said.length} missed says shown`);
    assert.deepEqual(after, said.slice(-after.length), 'the newest missed says, in order, after the gap line');
    assert.ok(all.indexOf('before the gap') < gap, 'the gap line follows what was received');
    assert.deepEqual(await carol.presenceOf(uid), [], 'carol saw 猪猪 log out or in');
    await page.screenshot({ path: path.join(ARTIFACTS, 'resume-gap.png') });
    await page.close();
    delete pages.gap;
    await carol.page.close();
  });

  // ---- the grace ran out: the page joins afresh under its name -----------------------------------------
  // A 1 s grace keeps this short; the steps above run at the default.
  step('after the grace the resume is refused and the page logs in again under the same name', async () => {
    const brief = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'resume-short-grace', ['--resume-grace-secs', '1']);
    const p = await startProxy(brief.wsPort);
    proxies.push(p);
    const page = await openPage('expired', brief, p);
    await login(page, NAME);
    const dave = await rawClient('dave', brief, 'dave');
    const uid = await dave.uidOf(NAME);
    const { session } = await stored(page);
    p.cut('fin');
    await waitReconnecting(page, true);
    await dave.page.waitForFunction((u) => window.__got.some((m) => m.type === 'logout' && m.uid === u), uid,
      { timeout: WAIT });
    p.heal();
    await waitReconnecting(page, false, RESUME_WAIT);
    await waitText(page, '#messages', 'could not resume', true);
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    const again = await dave.uidOf(NAME);
    assert.notEqual(again, uid, 'a new user');
    const s = await stored(page);
    assert.match(s?.session ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(s.session, session, 'a new session');
    await waitUsers(page, [NAME, 'dave']);
    await say(page, 'here again');
    await dave.page.waitForFunction((u) => window.__got.some((m) => m.type === 'say' && m.from_uid === u), again,
      { timeout: WAIT });
    assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
  });
});
