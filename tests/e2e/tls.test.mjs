// Browser tests of the chat over TLS, with the real programs and a browser that genuinely trusts the test's CA
// (tls.mjs: root → intermediate → leaf for 127.0.0.1, the root in Chromium's NSS database; no verification is
// switched off anywhere):
//   a. nginx with dist/nginx/wschat-tls.conf (ports and certificate paths replaced by free loopback ones and
//      the test's files) terminating TLS in front of a plain wschat started with --trust-proxy 127.0.0.1/32;
//   b. wschat's native TLS (--tls-cert/--tls-key): both of its ports speak TLS, no proxy.
// In each, two Chromium pages load the page over https://, connect with wss:// (asserted), log in, see each
// other, exchange a message to all and a private message, and wschat's /metrics counts both connections.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test`).
// Env: WSCHAT_BIN overrides the daemon binary, CHROMIUM the browser executable.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS, HERE, WAIT, startDaemon, stopDaemon, waitStatus, waitText, waitUsers,
} from './lib.mjs';
import {
  CERTUTIL, NGINX, OPENSSL, freePort, handshake, httpsGet, launchTrusting, makeCerts, replaceAll, startNginx,
  suiteNeeding, tempDir,
} from './tls.mjs';

const FILE = 'tests/e2e/tls.test.mjs';
const TLS_NEEDS = [
  !OPENSSL && 'openssl (Debian package openssl)',
  !CERTUTIL && 'certutil (Debian package libnss3-tools)',
];
const nginxSuite = suiteNeeding(`${FILE} (nginx)`, [...TLS_NEEDS, !NGINX && 'nginx (Debian package nginx)']);
const nativeSuite = suiteNeeding(`${FILE} (native TLS)`, TLS_NEEDS);

/** A metric's value in a /metrics text (NaN when absent). */
const metric = (body, name) => Number((new RegExp(`^${name} (\\d+)$`, 'm').exec(body) ?? [])[1]);

/**
 * The chat steps both set-ups share. `env()` gives, once `before` has run: context (a trusting Chromium),
 * pageUrl (https://…/), wsUrl (the wss:// URL the page must use), bobUrl (where bob's page is opened: pageUrl,
 * or an http:// URL redirecting to it) and metrics() (wschat's /metrics text). Steps share state; once one fails
 * the rest are skipped, and after() takes screenshots of the pages.
 */
function chatSteps(tag, env) {
  const pages = {};
  const pageErrors = [];
  const state = { failed: false, pages };
  const step = (name, fn) => it(name, async (t) => {
    if (state.failed) return t.skip('an earlier step failed');
    try { await fn(t); } catch (e) { state.failed = true; throw e; }
  });

  async function open(who, url) {
    const { context, pageUrl, wsUrl } = env();
    const page = await context.newPage();
    page.__who = who;
    page.__sockets = [];
    page.on('websocket', (ws) => page.__sockets.push(ws.url()));
    page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
    pages[who] = page;
    const res = await page.goto(url);
    assert.equal(page.url(), pageUrl, `${who}: the page's address`);
    assert.equal(res.status(), 200, `${who}: the page's status`);
    await waitStatus(page, /^connected$/);
    // The browser checked the certificate itself: a page that loaded at all was trusted.
    assert.deepEqual([...new Set(page.__sockets)], [wsUrl], `${who}: the page's WebSocket URLs`);
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    return page;
  }

  async function login(page, name) {
    await page.bringToFront(); // a background tab renders slowly
    await page.fill('#name', name);
    await page.click('#login');
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
  }

  async function say(page, content, to = 'all') {
    await page.bringToFront();
    if (to === 'all') await page.selectOption('#to', 'all');
    else await page.selectOption('#to', { label: to });
    await page.fill('#message', content);
    await page.click('#send');
    await page.waitForFunction(() => document.querySelector('#message').value === '', null, { timeout: WAIT });
  }

  // The chat steps, registered where the suite wants them.
  const chat = () => {
    step('alice and bob load the page over https and connect with wss://', async () => {
      const { pageUrl, bobUrl } = env();
      await open('alice', pageUrl);
      await open('bob', bobUrl);
    });

    step('both log in and see both users', async () => {
      await login(pages.alice, 'alice');
      await login(pages.bob, 'bob');
      await waitUsers(pages.alice, ['alice', 'bob']);
      await waitUsers(pages.bob, ['alice', 'bob']);
      await waitText(pages.alice, '#messages', 'bob joined');
    });

    step('a message to all and a private message cross the TLS connections', async () => {
      await say(pages.alice, 'hello over TLS');
      await waitText(pages.bob, '#messages', 'hello over TLS');
      await say(pages.bob, 'psst alice, only you', 'alice');
      await waitText(pages.alice, '#messages', 'psst alice, only you');
      const cls = await pages.alice.$$eval('#messages li', (lis) =>
        lis.find((l) => l.textContent.includes('only you'))?.className);
      assert.match(cls ?? '', /\bprivate\b/, 'the private message is not marked private');
      await pages.alice.bringToFront();
      await pages.alice.screenshot({ path: path.join(ARTIFACTS, `${tag}.png`) });
    });

    step("wschat's /metrics counts both connections and users", async () => {
      const body = await env().metrics();
      assert.equal(metric(body, 'wschat_connections'), 2, body);
      assert.equal(metric(body, 'wschat_users'), 2, body);
      assert.ok(metric(body, 'wschat_messages_in_total') >= 4, body); // 2 logins, 2 says
      assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    });
  };

  state.screenshots = async () => {
    if (!state.failed) return;
    for (const [who, page] of Object.entries(pages)) {
      const file = path.join(ARTIFACTS, `failure-${tag}-${who}.png`);
      if (!page.isClosed()) await page.screenshot({ path: file }).catch(() => {});
    }
  };
  return { state, step, chat };
}

/**
 * What a TLS port of either set-up must do, checked from node with the test CA as the only trusted one:
 * TLS 1.3 and TLS 1.2 handshakes verify (the server sends the chain up to that CA), ALPN picks http/1.1 when h2 is
 * offered too (WebSockets are not carried over HTTP/2 here), and TLS 1.1 is refused.
 */
async function tlsPorts(ports, ca) {
  for (const port of ports) {
    const tls13 = await handshake(port, ca, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.deepEqual(tls13, { protocol: 'TLSv1.3', alpn: 'http/1.1', authorized: true }, `port ${port}`);
    const tls12 = await handshake(port, ca, { maxVersion: 'TLSv1.2' });
    assert.deepEqual([tls12.protocol, tls12.authorized], ['TLSv1.2', true], `port ${port}`);
    // TLS 1.1 from a client that can speak it (SECLEVEL=0: it then connects to a server allowing 1.1): an alert
    // from the server (nginx/OpenSSL sends protocol_version, rustls handshake_failure), not a refusal on the
    // client's side.
    const tls11 = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };
    const serverAlert = ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'];
    await assert.rejects(handshake(port, ca, tls11), (e) => serverAlert.includes(e.code) || assert.fail(
      `port ${port}: TLS 1.1 refused by ${e.code} (${e.message.trim()}), not by the server's alert`));
  }
}

// ---- a. nginx terminating TLS --------------------------------------------------------------------
const NGINX_TITLE = 'nginx terminating TLS (dist/nginx/wschat-tls.conf) in front of wschat, in Chromium';
nginxSuite(NGINX_TITLE, { timeout: 60000 }, () => {
  let daemon, nginx, browser, dir, certs, ws, web, redirect;
  const env = () => ({
    context: browser.context,
    pageUrl: `https://127.0.0.1:${web}/`,
    wsUrl: `wss://127.0.0.1:${ws}/`,
    bobUrl: `http://127.0.0.1:${redirect}/`, // bob comes through the http→https redirect
    metrics: async () => (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text(),
  });
  const { state, step, chat } = chatSteps('tls-nginx', env);

  before(async () => {
    dir = tempDir('tls-nginx');
    certs = makeCerts(dir);
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'tls-nginx-daemon', ['--trust-proxy', '127.0.0.1/32']);
    [ws, web, redirect] = [await freePort(), await freePort(), await freePort()];
    const site = replaceAll(fs.readFileSync(path.join(HERE, '../../dist/nginx/wschat-tls.conf'), 'utf8'), [
      ['server 127.0.0.1:17272;', `server 127.0.0.1:${daemon.wsPort};`],
      ['content="17272"', `content="${daemon.wsPort}"`],
      ['server 127.0.0.1:15151;', `server 127.0.0.1:${daemon.httpPort};`],
      ['listen 7272 ssl;', `listen 127.0.0.1:${ws} ssl;`],
      ['content="7272"', `content="${ws}"`],
      ['listen 443 ssl;', `listen 127.0.0.1:${web} ssl;`],
      ['listen 80;', `listen 127.0.0.1:${redirect};`],
      ['return 301 https://$host$request_uri;', `return 301 https://$host:${web}$request_uri;`],
      ['/etc/ssl/wschat/fullchain.pem', certs.chain],
      ['/etc/ssl/wschat/privkey.pem', certs.key],
    ]);
    nginx = await startNginx(site, dir, [ws, web, redirect]);
    browser = await launchTrusting(certs.ca, 'tls-nginx');
  });

  after(async () => {
    await state.screenshots();
    await browser?.close();
    await nginx?.stop();
    await stopDaemon(daemon?.proc);
    if (state.failed && nginx) fs.copyFileSync(nginx.log, path.join(ARTIFACTS, 'tls-nginx-error.log'));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  step('both public ports: TLS 1.3 and 1.2 with the chain up to the test CA, nothing older, no HTTP/2', async () => {
    await tlsPorts([ws, web], certs.ca);
  });

  step('a browser without the test CA refuses the page (so trust, not a switch, lets the others in)', async () => {
    const untrusting = await launchTrusting(null, 'tls-untrusting');
    try {
      const page = await untrusting.context.newPage();
      await assert.rejects(page.goto(`https://127.0.0.1:${web}/`), /ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await untrusting.close();
    }
  });

  step('http:// on the redirect port answers 301 to the https page', async () => {
    const res = await fetch(`http://127.0.0.1:${redirect}/some/path?x=1`, { redirect: 'manual' });
    assert.equal(res.status, 301);
    assert.equal(res.headers.get('location'), `https://127.0.0.1:${web}/some/path?x=1`);
  });

  step('the page through nginx names the public WebSocket port; /metrics there is for the host only', async () => {
    const page = await httpsGet(`https://127.0.0.1:${web}/`, certs.ca);
    assert.equal(page.status, 200);
    const meta = `<meta name="wschat-ws-port" content="${ws}">`;
    assert.ok(page.body.includes(meta), 'the ws port meta is not the public port');
    // Allowed from 127.0.0.1, the host itself (the file's `allow 127.0.0.1`).
    const metrics = await httpsGet(`https://127.0.0.1:${web}/metrics`, certs.ca);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^wschat_connections \d+$/m);
    // Denied to anyone else: here a client from 127.0.0.2.
    assert.equal((await httpsGet(`https://127.0.0.1:${web}/metrics`, certs.ca, '127.0.0.2')).status, 403);
  });

  chat();
});

// ---- b. native TLS -----------------------------------------------------------------------------
const NATIVE_TITLE = 'native TLS (wschat --tls-cert/--tls-key): https:// and wss:// straight to wschat, in Chromium';
nativeSuite(NATIVE_TITLE, { timeout: 60000 }, () => {
  let daemon, browser, dir, certs;
  const env = () => ({
    context: browser.context,
    pageUrl: `https://127.0.0.1:${daemon.httpPort}/`,
    wsUrl: `wss://127.0.0.1:${daemon.wsPort}/`,
    bobUrl: `https://127.0.0.1:${daemon.httpPort}/`,
    metrics: async () => (await httpsGet(`https://127.0.0.1:${daemon.httpPort}/metrics`, certs.ca)).body,
  });
  const { state, step, chat } = chatSteps('tls-native', env);

  before(async () => {
    dir = tempDir('tls-native');
    certs = makeCerts(dir);
    daemon = await startDaemon('127.0.0.1:0', '127.0.0.1:0', 'tls-native-daemon',
      ['--tls-cert', certs.chain, '--tls-key', certs.key]);
    browser = await launchTrusting(certs.ca, 'tls-native');
  });

  after(async () => {
    await state.screenshots();
    await browser?.close();
    await stopDaemon(daemon?.proc);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  step('both ports: TLS 1.3 and 1.2 with the chain up to the test CA, nothing older, no HTTP/2', async () => {
    await tlsPorts([daemon.wsPort, daemon.httpPort], certs.ca);
  });

  chat();
});
