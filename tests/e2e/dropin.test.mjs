// Browser test of wschat as a drop-in for workerman-chat: a page of the project's own that inserts names and
// messages with innerHTML, as workerman-chat's pages do, served by `wschat --web-root --escape-html`. A user
// of the seed protocol and one of workerman-chat's current protocol, both named and talking
// `<img src=x onerror=alert(1)>`: each sees the other's name and message as text, no element is injected and
// no dialog fires.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test`).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  chromium, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, HERE, WAIT, XSS, startDaemon, stopDaemon, suite, waitText,
} from './lib.mjs';

/** A daemon started with `args` and a fresh Chromium profile; `close()` stops both. */
async function setUp(tag, args) {
  const daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', tag, args);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), `wschat-e2e-${tag}-`));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 800, height: 500 },
  });
  const close = async () => {
    await context.close().catch(() => {});
    await stopDaemon(daemon.proc);
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  return { daemon, context, close };
}

suite('workerman-chat style pages (innerHTML) against --escape-html', { timeout: 60000 }, () => {
  let daemon, context, close;
  const dialogs = [];

  before(async () => {
    const root = path.join(HERE, 'fixtures', 'innerhtml');
    ({ daemon, context, close } = await setUp('dropin', ['--web-root', root, '--escape-html']));
  });

  after(async () => { await close?.(); });

  async function open(dialect) {
    const page = await context.newPage();
    page.__who = dialect;
    page.on('dialog', (d) => { dialogs.push(`${dialect}: ${d.message()}`); d.dismiss().catch(() => {}); });
    const name = encodeURIComponent(XSS);
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/?dialect=${dialect}&port=${daemon.wsPort}&name=${name}`);
    return page;
  }

  it('names and messages with HTML stay text in both dialects', async () => {
    const seed = await open('seed');
    await waitText(seed, '#log', 'joined');
    const wm = await open('workerman');
    await waitText(wm, '#log', 'joined');
    await waitText(seed, '#users', XSS);
    await seed.evaluate((x) => window.send({ type: 'say', to_uid: 'all', content: x + '\nline two' }), XSS);
    await wm.evaluate((x) => window.send({ type: 'say', to_client_id: 'all', content: x }), XSS);
    for (const page of [seed, wm]) {
      await page.waitForFunction(() => document.querySelectorAll('#log .content').length >= 2, null, { timeout: WAIT });
      await page.waitForTimeout(300); // a wrongly injected <img> would have failed to load and fired by now
      const contents = await page.$$eval('#log .content', (es) => es.map((e) => e.textContent));
      assert.ok(contents.every((c) => c.startsWith(XSS)), `${page.__who}: ${JSON.stringify(contents)}`);
      assert.deepEqual(await page.$$eval('#log img, #users img', (x) => x.length), 0, `${page.__who}: <img> injected`);
      const users = await page.$$eval('#users li', (lis) => lis.map((li) => li.textContent));
      assert.deepEqual(users, [XSS, XSS], `${page.__who}: the names as text`);
    }
    // The seed content's newline became a line break, as workerman-chat's nl2br did.
    assert.equal(await seed.$$eval('#log .content br', (x) => x.length), 1);
    await wm.screenshot({ path: path.join(ARTIFACTS, 'dropin.png') });
    assert.deepEqual(dialogs, [], 'no dialog fired');
  });
});

suite("wschat's own page shows the same text with --escape-html", { timeout: 60000 }, () => {
  let daemon, context, close;
  const NAME = `<b>x</b> & 'q'`;
  const TEXT = `<i>a</i> & "b" &amp; line 2`;

  before(async () => {
    ({ daemon, context, close } = await setUp('escaped-page', ['--escape-html']));
  });

  after(async () => { await close?.(); });

  it('names and messages read as typed', async () => {
    const page = await context.newPage();
    page.__who = 'escaped';
    await page.goto(`http://127.0.0.1:${daemon.httpPort}/`);
    await page.fill('#name', NAME);
    await page.click('#login');
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    await waitText(page, '#users', NAME);
    await page.fill('#message', TEXT);
    await page.click('#send');
    await waitText(page, '#messages', TEXT);
    const contents = await page.$$eval('#messages .content', (es) => es.map((e) => e.textContent));
    assert.deepEqual(contents, [TEXT]);
  });
});
