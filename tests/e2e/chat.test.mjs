// Browser test of the wschat chat page: starts the release daemon on ephemeral ports, drives headless
// Debian Chromium through playwright-core with three users (alice, bob, carol) and checks the page's
// behaviour against the contract: login, user list, broadcast, private messages, HTML-injection safety,
// leave notices, connection state and automatic re-login after the daemon restarts.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test`).
// Env: WSCHAT_BIN overrides the daemon binary, CHROMIUM the browser executable.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  chromium, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT, XSS, daemons, startDaemon, stopDaemon, suite, text, waitText,
  waitStatus, userNames, waitUsers,
} from './lib.mjs';

// ---- the test -------------------------------------------------------------------------------
suite('wschat chat page in Chromium', { timeout: 60000 }, () => {
  let daemon, context, userDir;
  const pages = {};
  const dialogs = [];
  const pageErrors = [];
  let failed = false;

  // Steps share state; once one fails the rest are skipped instead of piling up follow-on failures.
  const step = (name, fn) => it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try { await fn(t); } catch (e) { failed = true; throw e; }
  });

  async function open(who) {
    const page = await context.newPage();
    page.__who = who;
    page.on('dialog', (d) => { dialogs.push(`${who}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
    page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/`);
    await waitStatus(page, /^connected$/);
    pages[who] = page;
    return page;
  }

  // Interacting with a background tab is slow (its rendering is paused), so focus the tab first.
  async function login(page, name) {
    await page.bringToFront();
    assert.equal(await page.isDisabled('#message'), true, '#message must be disabled before login');
    assert.equal(await page.isDisabled('#send'), true, '#send must be disabled before login');
    await page.fill('#name', name);
    await page.click('#login');
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await page.waitForSelector('#send:not([disabled])', { timeout: WAIT });
  }

  async function say(page, content, { to = 'all', enter = false } = {}) {
    await page.bringToFront();
    if (to === 'all') await page.selectOption('#to', 'all');
    else await page.selectOption('#to', { label: to });
    await page.fill('#message', content);
    if (enter) await page.press('#message', 'Enter'); else await page.click('#send');
    await page.waitForFunction(() => document.querySelector('#message').value === '', null, { timeout: WAIT })
      .catch(() => { throw new Error(`${page.__who}: #message not cleared after sending`); });
  }

  before(async () => {
    // A closed tab is a lost connection (close 1001): its user stays for the resume grace, then leaves. A 1 s
    // grace keeps the leave step short; resume.test.mjs runs at the default.
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'daemon', ['--resume-grace-secs', '1']);
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-e2e-chromium-'));
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
        if (!page.isClosed()) await page.screenshot({ path: path.join(ARTIFACTS, `failure-${who}.png`) }).catch(() => {});
      }
    }
    await context?.close().catch(() => {});
    for (const p of [...daemons]) await stopDaemon(p);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  step('GET / serves the page with the ws port filled in', async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    assert.ok(!html.includes('__WS_PORT__'), 'placeholder __WS_PORT__ was not replaced');
    assert.ok(html.includes(`<meta name="wschat-ws-port" content="${daemon.wsPort}">`), 'ws port meta missing');
  });

  step('?ws= is honoured on this host only; another host is ignored with a note and gets no socket', async () => {
    const own = `ws://127.0.0.1:${daemon.wsPort}/`;
    const refused = [
      'ws://evil.example:7272/',
      'wss://127.0.0.1.evil.example/',
      `ws://evil.example@127.0.0.1:${daemon.wsPort}/`, // credentials: refused too
      'javascript:alert(1)',
    ];
    const honoured = `ws://127.0.0.1:${daemon.wsPort}/own-path`; // same host, any path: the daemon accepts it
    for (const target of [...refused, honoured]) {
      const page = await context.newPage();
      page.__who = `?ws=${target}`;
      page.on('dialog', (d) => { dialogs.push(`${page.__who}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
      page.on('pageerror', (e) => pageErrors.push(`${page.__who}: ${e.message}`));
      const opened = []; // every socket the browser opened, as the network sees it
      page.on('websocket', (ws) => opened.push(ws.url()));
      await page.addInitScript(() => { // and every URL given to the constructor
        window.__wsUrls = [];
        window.WebSocket = new Proxy(window.WebSocket, {
          construct(target, args) { window.__wsUrls.push(String(args[0])); return Reflect.construct(target, args); },
        });
      });
      await page.goto(`http://127.0.0.1:${daemon.httpPort}/?ws=${encodeURIComponent(target)}`);
      await waitStatus(page, /^connected$/);
      const want = target === honoured ? honoured : own;
      assert.deepEqual(await page.evaluate(() => window.__wsUrls), [want], `${page.__who}: WebSocket URLs`);
      assert.ok(opened.length > 0 && opened.every((u) => u === want), `${page.__who}: sockets opened: ${opened}`);
      if (target === honoured) {
        assert.equal(await page.isVisible('#ws-note'), false, `${page.__who}: a note for an allowed ?ws=`);
      } else {
        assert.equal(await page.isVisible('#ws-note'), true, `${page.__who}: no visible note`);
        assert.match(await text(page, '#ws-note'), /\?ws= ignored/);
      }
      await page.close();
    }
    assert.deepEqual(dialogs, [], 'a dialog was opened');
  });

  step('alice and bob log in and both see both users', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    await login(alice, 'alice');
    await login(bob, 'bob');
    await waitUsers(alice, ['alice', 'bob']);
    await waitUsers(bob, ['alice', 'bob']);
    await waitText(alice, '#messages', 'bob joined');
  });

  step('a message to all reaches both (Enter sends)', async () => {
    await say(pages.alice, 'hello everyone', { enter: true });
    await waitText(pages.alice, '#messages', 'hello everyone');
    await waitText(pages.bob, '#messages', 'hello everyone');
  });

  step('every name on the page is isolated in a <bdi>', async () => {
    const { alice } = pages;
    const tags = (sel) => alice.$$eval(sel, (es) => es.map((e) => e.tagName));
    assert.deepEqual(await tags('#users .uname'), ['BDI', 'BDI'], '#users names');
    const from = await tags('#messages .msg .from');
    assert.ok(from.length > 0 && from.every((t) => t === 'BDI'), `sender names: ${from}`);
    const joined = await alice.$$eval('#messages li.note', (lis) =>
      lis.filter((l) => l.textContent.includes('bob joined')).map((l) => l.querySelector('bdi')?.textContent));
    assert.deepEqual(joined, ['bob'], 'the join note names bob in a <bdi>');
    assert.equal(await alice.$eval('#whoami bdi', (e) => e.textContent), 'alice');
  });

  step('a refused login shows the error and lets the user try again', async () => {
    const carol = await open('carol');
    await carol.bringToFront();
    await carol.fill('#name', 'c'.repeat(33)); // over 32 characters: bad_name
    await carol.click('#login');
    await waitText(carol, '#messages', 'bad_name');
    await carol.waitForSelector('#login:not([disabled])', { timeout: WAIT });
    assert.equal(await carol.isDisabled('#message'), true, '#message enabled after a refused login');
  });

  step('a private message reaches only its recipient', async () => {
    const { carol } = pages;
    await login(carol, 'carol');
    for (const p of Object.values(pages)) await waitUsers(p, ['alice', 'bob', 'carol']);
    // #to: "all" plus one option per other user, valued by uid
    const opts = await pages.bob.$$eval('#to option', (os) => os.map((o) => [o.value, o.textContent.trim()]));
    assert.equal(opts[0][0], 'all');
    assert.deepEqual(opts.slice(1).map((o) => o[1]).sort(), ['alice', 'carol']);
    for (const [v] of opts.slice(1)) assert.match(v, /^\d+$/, `option value ${v} is not a uid`);

    await say(pages.bob, 'psst alice, secret 42', { to: 'alice' });
    await waitText(pages.alice, '#messages', 'psst alice, secret 42');
    await waitText(pages.bob, '#messages', 'psst alice, secret 42'); // echoed to the sender
    const line = await pages.alice.$$eval('#messages li', (lis) =>
      lis.map((l) => l.textContent).find((t) => t.includes('secret 42')));
    assert.match(line, /private/i, 'private message is not marked as private');
    // Per-sender order is preserved, so once carol sees bob's next public message she would already
    // have seen the private one, had it been sent to her.
    await say(pages.bob, 'back to everyone');
    await waitText(pages.carol, '#messages', 'back to everyone');
    assert.ok(!(await text(pages.carol, '#messages')).includes('secret 42'), 'carol saw a private message');
  });

  step('HTML in a message is shown as text, never executed', async () => {
    await say(pages.alice, XSS);
    await waitText(pages.bob, '#messages', XSS);
    await waitText(pages.carol, '#messages', XSS);
    await pages.bob.waitForTimeout(300); // give a (wrongly) injected <img> time to fail loading and fire onerror
    for (const p of Object.values(pages)) {
      assert.equal(await p.$$eval('#messages img', (x) => x.length), 0, `${p.__who}: <img> injected into #messages`);
    }
    const exact = await pages.bob.$$eval('#messages li', (lis, s) =>
      lis.some((l) => [...l.querySelectorAll('*')].some((e) => e.textContent === s)), XSS);
    assert.ok(exact, 'bob: no element shows the exact payload text');
    assert.deepEqual(dialogs, [], 'a dialog was opened');
  });

  step('when bob closes his page alice sees him leave once the grace ran out', async () => {
    await pages.bob.close();
    await waitText(pages.alice, '#messages', 'bob left');
    await waitUsers(pages.alice, ['alice', 'carol']);
    await waitUsers(pages.carol, ['alice', 'carol']);
    const opts = await pages.alice.$$eval('#to option', (os) => os.map((o) => o.textContent.trim()));
    assert.ok(!opts.includes('bob'), '#to still offers bob');
    assert.equal((await text(pages.alice, '#status')).trim(), 'connected');
    await pages.alice.screenshot({ path: path.join(ARTIFACTS, 'chat.png') });
    await pages.carol.setViewportSize({ width: 390, height: 760 });
    await pages.carol.screenshot({ path: path.join(ARTIFACTS, 'chat-phone.png') });
  });

  step('after a daemon restart the page reconnects and logs in again', async () => {
    const { alice } = pages;
    await stopDaemon(daemon.proc);
    await waitStatus(alice, /^disconnected\b.*retrying in [\d.]+\s*s/);
    assert.equal(await alice.isDisabled('#message'), true, '#message must be disabled while disconnected');
    daemon = await startDaemon(`127.0.0.1:${daemon.wsPort}`, '127.0.0.1:0', 'daemon-restarted');
    await waitStatus(alice, /^connected$/, 15000); // backoff: 0.5 s, 1 s, 2 s, ...
    await waitUsers(alice, ['alice', 'carol']);
    await alice.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await say(alice, 'I am back');
    await waitText(pages.carol, '#messages', 'I am back');
    assert.equal((await text(alice, '#status')).trim(), 'connected');
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
  });
});
