// Browser test of signed logins and the server API with the chat page: the test is the application's backend
// too. It mints HS256 JWTs (node:crypto, no JWT package) with a secret it writes to a temp file, starts the
// daemon with `--auth-key` and `--api`, and opens the page as two accounts with `?token=`: they chat, then a
// POST /api/say reaches both pages as a server notice (uid 0: no user's message, no user in the list). A token
// with a wrong signature, and one for other rooms, are refused with the error shown. The workerman-style
// fixture page shows the server's say as a notice in both dialects too.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test`).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  chromium, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, HERE, WAIT, XSS, startDaemon, stopDaemon, suite, text, waitText,
  waitStatus, waitUsers,
} from './lib.mjs';

// ---- the backend: keys and tokens -----------------------------------------------------------------
const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT of `claims`, signed with `secret`. */
function mintHs256(claims, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

const hour = () => Math.floor(Date.now() / 1000) + 3600;

/** A temp folder with the token secret and the API key in files; `rm()` removes it. */
function keys(tag) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `wschat-e2e-${tag}-`));
  const secret = crypto.randomBytes(32);
  const apiKey = crypto.randomBytes(24).toString('hex');
  const secretFile = path.join(dir, 'jwt.secret');
  const keyFile = path.join(dir, 'api.key');
  fs.writeFileSync(secretFile, secret, { mode: 0o600 });
  fs.writeFileSync(keyFile, apiKey, { mode: 0o600 });
  return { dir, secret, apiKey, secretFile, keyFile, rm: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A request to the daemon's server API: {status, body} (body: the parsed JSON answer, or null). */
async function api(daemon, key, method, p, body) {
  const res = await fetch(`http://127.0.0.1:${daemon.apiPort}${p}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, body: json, raw };
}

/** A fresh Chromium profile; `close()` ends it. */
async function browser(tag, viewport = { width: 960, height: 640 }) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), `wschat-e2e-${tag}-chromium-`));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport,
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  return { context, close };
}

// The notices on a page: each one's classes, label, tag and content, and whether it names a sender.
const notices = (page) => page.$$eval('#messages li.notice', (lis) => lis.map((li) => ({
  cls: li.className,
  label: li.querySelector('.server')?.textContent,
  tag: li.querySelector('.tag')?.textContent ?? null,
  content: li.querySelector('.content')?.textContent,
  from: li.querySelector('.from') !== null,
  elements: li.querySelectorAll('.content *').length,
})));

suite('signed logins and the server API on the chat page', { timeout: 60000 }, () => {
  let daemon, k, context, close;
  const pages = {};
  const dialogs = [];
  const pageErrors = [];
  let failed = false;
  const NOTICE = `${XSS} maintenance at 5 & "back" soon`;

  const step = (name, fn) => it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try { await fn(t); } catch (e) { failed = true; throw e; }
  });

  async function open(who, token) {
    const page = await context.newPage();
    page.__who = who;
    page.on('dialog', (d) => { dialogs.push(`${who}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
    page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/?token=${encodeURIComponent(token)}`);
    await waitStatus(page, /^connected$/);
    pages[who] = page;
    return page;
  }

  async function join(page, name) {
    await page.bringToFront();
    await page.fill('#name', name);
    await page.click('#login');
  }

  async function say(page, content) {
    await page.bringToFront();
    await page.fill('#message', content);
    await page.click('#send');
    await page.waitForFunction(() => document.querySelector('#message').value === '', null, { timeout: WAIT });
  }

  const token = (claims, secret = k.secret) => mintHs256({ exp: hour(), ...claims }, secret);

  before(async () => {
    k = keys('api');
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'api-daemon',
      ['--auth-key', k.secretFile, '--api', '127.0.0.1:0', '--api-key-file', k.keyFile]);
    assert.ok(daemon.apiPort > 0, 'the listening line names the API address');
    ({ context, close } = await browser('api'));
  });

  after(async () => {
    if (failed) {
      for (const [who, page] of Object.entries(pages)) {
        if (!page.isClosed()) await page.screenshot({ path: path.join(ARTIFACTS, `failure-api-${who}.png`) }).catch(() => {});
      }
    }
    await close?.();
    await stopDaemon(daemon?.proc);
    k?.rm();
  });

  step('two accounts log in with their tokens; the token\'s name wins over the one typed', async () => {
    // alice's token names her; bob's gives only the account, so the name typed is his.
    const alice = await open('alice', token({ sub: 'acct-alice', name: 'Alice' }));
    assert.equal(await alice.inputValue('#name'), 'Alice', 'the nickname field shows the token\'s name');
    await join(alice, 'someone else');
    await alice.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    const bob = await open('bob', token({ sub: 'acct-bob' }));
    await join(bob, 'bob');
    await bob.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await waitUsers(alice, ['Alice', 'bob']);
    await waitUsers(bob, ['Alice', 'bob']);
    assert.match(await text(alice, '#whoami'), /as Alice/);
    assert.equal(await alice.$eval('#users li.me .uname', (e) => e.textContent), 'Alice', 'alice knows her entry');
    assert.equal(await bob.$eval('#users li.me .uname', (e) => e.textContent), 'bob', 'bob knows his entry');
  });

  step('they chat: each sees the other\'s message under the sender\'s name', async () => {
    await say(pages.alice, 'hi bob');
    await waitText(pages.bob, '#messages', 'hi bob');
    await say(pages.bob, 'hi Alice');
    await waitText(pages.alice, '#messages', 'hi Alice');
    const froms = await pages.bob.$$eval('#messages li.msg', (lis) =>
      lis.map((li) => [li.querySelector('.from').textContent, li.querySelector('.content').textContent]));
    assert.deepEqual(froms, [['Alice', 'hi bob'], ['bob', 'hi Alice']]);
  });

  step('the API refuses a wrong key', async () => {
    const res = await api(daemon, 'not-the-key-at-all', 'POST', '/api/say', { room: '1', content: 'x' });
    assert.equal(res.status, 401, res.raw);
  });

  step('POST /api/say reaches both pages as a server notice, not a user\'s message', async () => {
    const res = await api(daemon, k.apiKey, 'POST', '/api/say', { room: '1', content: NOTICE });
    assert.equal(res.status, 200, res.raw);
    assert.deepEqual(res.body, { ok: true, room: '1', users: 2 });
    for (const page of [pages.alice, pages.bob]) {
      await page.waitForSelector('#messages li.notice', { timeout: WAIT });
      await page.waitForTimeout(300); // a wrongly injected <img> would have failed to load and fired by now
      assert.deepEqual(await notices(page), [{
        cls: 'notice', label: 'server notice', tag: null, content: NOTICE, from: false, elements: 0,
      }], `${page.__who}: the notice`);
      // Styled apart from a user's message, and last in the list.
      const look = await page.evaluate(() => {
        const n = document.querySelector('#messages li.notice');
        const m = document.querySelector('#messages li.msg:not(.mine)');
        const s = (e) => getComputedStyle(e);
        return {
          last: document.querySelector('#messages').lastElementChild === n,
          noticeBg: s(n).backgroundColor, msgBg: s(m).backgroundColor,
          noticeBorder: s(n).borderLeftColor, msgBorder: s(m).borderLeftColor,
        };
      });
      assert.ok(look.last, `${page.__who}: the notice comes last`);
      assert.notEqual(look.noticeBg, look.msgBg, `${page.__who}: a notice's background is a message's`);
      assert.notEqual(look.noticeBorder, look.msgBorder, `${page.__who}: a notice's border is a message's`);
      // uid 0 is no user: the list holds the two accounts only, and no recipient 0 is offered.
      await waitUsers(page, ['Alice', 'bob']);
      assert.equal(await page.$$eval('#users li[data-uid="0"], #to option[value="0"]', (x) => x.length), 0);
    }
  });

  step('POST /api/say with to_uid: a notice for that user alone', async () => {
    const bobUid = Number(await pages.bob.$eval('#users li.me', (li) => li.getAttribute('data-uid')));
    const res = await api(daemon, k.apiKey, 'POST', '/api/say', { room: '1', content: 'just for bob', to_uid: bobUid });
    assert.equal(res.status, 200, res.raw);
    await waitText(pages.bob, '#messages li.notice:last-child', 'just for bob');
    const last = (await notices(pages.bob)).at(-1);
    assert.equal(last.tag, '(private to you)');
    assert.match(last.cls, /\bnotice\b/);
    await say(pages.alice, 'after the private notice'); // ordered after it: alice has seen it by now, if at all
    await waitText(pages.bob, '#messages', 'after the private notice');
    assert.equal((await notices(pages.alice)).length, 1, 'alice got only the notice to all');
    await pages.bob.bringToFront();
    await pages.bob.screenshot({ path: path.join(ARTIFACTS, 'api-notice.png') });
    await pages.bob.emulateMedia({ colorScheme: 'dark' });
    await pages.bob.screenshot({ path: path.join(ARTIFACTS, 'api-notice-dark.png') });
    await pages.bob.emulateMedia({ colorScheme: null });
  });

  step('a token with a wrong signature is refused with the unauthorized error shown', async () => {
    const page = await open('mallory', token({ sub: 'acct-mallory', name: 'mallory' }, 'not the secret'));
    await join(page, 'mallory');
    await waitText(page, '#messages', 'Error unauthorized');
    const err = await page.$eval('#messages li.note.error', (li) => ({
      text: li.textContent, visible: li.offsetHeight > 0 && getComputedStyle(li).visibility === 'visible',
    }));
    assert.match(err.text, /^Error unauthorized: .*signature/, 'the server\'s message');
    assert.ok(err.visible, 'the error is visible');
    assert.equal(await page.isVisible('#login-form'), true, 'the login form is back');
    assert.equal(await page.isDisabled('#message'), true, 'no chatting');
    await waitUsers(pages.alice, ['Alice', 'bob']);
    await page.screenshot({ path: path.join(ARTIFACTS, 'api-unauthorized.png') });
  });

  step('a token for other rooms is refused with the forbidden error shown', async () => {
    const page = await open('elsewhere', token({ sub: 'acct-elsewhere', rooms: ['other'] }));
    await join(page, 'elsewhere');
    await waitText(page, '#messages', 'Error forbidden');
    assert.equal(await page.isVisible('#messages li.note.error'), true);
    assert.equal(await page.isDisabled('#message'), true, 'no chatting');
  });

  step('no dialog and no page error', async () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
  });
});

suite('the server\'s say on workerman-chat style pages (innerHTML), both dialects', { timeout: 60000 }, () => {
  let daemon, k, context, close;
  const dialogs = [];

  before(async () => {
    k = keys('api-dropin');
    const root = path.join(HERE, 'fixtures', 'innerhtml');
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'api-dropin',
      ['--web-root', root, '--escape-html', '--api', '127.0.0.1:0', '--api-key-file', k.keyFile]);
    ({ context, close } = await browser('api-dropin', { width: 800, height: 500 }));
  });

  after(async () => {
    await close?.();
    await stopDaemon(daemon?.proc);
    k?.rm();
  });

  it('shows it as a notice, as text, without a user of uid 0', async () => {
    const open = async (dialect) => {
      const page = await context.newPage();
      page.__who = dialect;
      page.on('dialog', (d) => { dialogs.push(`${dialect}: ${d.message()}`); d.dismiss().catch(() => {}); });
      await page.goto(`http://127.0.0.1:${daemon.httpPort}/?dialect=${dialect}&port=${daemon.wsPort}&name=${dialect}-user`);
      await waitText(page, '#log', 'joined');
      return page;
    };
    const seed = await open('seed');
    const wm = await open('workerman');
    await waitText(seed, '#users', 'workerman-user');
    const content = `${XSS} & back`;
    const res = await api(daemon, k.apiKey, 'POST', '/api/say', { room: '1', content });
    assert.equal(res.status, 200, res.raw);
    for (const page of [seed, wm]) {
      await page.waitForSelector('#log .notice', { timeout: WAIT });
      await page.waitForTimeout(300);
      const got = await page.$$eval('#log .notice', (ps) => ps.map((p) => p.textContent));
      assert.deepEqual(got, [`server: ${content}`], `${page.__who}: the notice`);
      assert.equal(await page.$$eval('#log .from', (x) => x.length), 0, `${page.__who}: no user's message`);
      assert.equal(await page.$$eval('#log img', (x) => x.length), 0, `${page.__who}: <img> injected`);
      const users = await page.$$eval('#users li', (lis) => lis.map((li) => li.textContent).sort());
      assert.deepEqual(users, ['seed-user', 'workerman-user'], `${page.__who}: users`);
    }
    assert.deepEqual(dialogs, [], 'no dialog fired');
  });
});
