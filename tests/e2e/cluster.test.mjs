// Browser test of a cluster: a redis-server of the test's own (free loopback port, persistence off, stopped
// by its PID) and two wschat nodes joined through it; alice's browser loads the page from node A and chats
// over node A's WebSocket, bob's from node B. They see each other in the user list, a message to all and
// a private message cross the cluster, and a leave on one node shows on the other.
//
// Run: `make test-e2e` (or `cd tests/e2e && npm ci && node --test`).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  chromium, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, SKIP, WAIT, startDaemon, stopDaemon, suite, waitStatus, waitText,
  waitUsers,
} from './lib.mjs';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
const MISSING = !HAVE_REDIS && 'redis-server not installed (`make deps` installs it)';
if (MISSING && !SKIP) {
  if (process.env.CI === 'true') throw new Error(`${MISSING}; under CI a missing dependency fails the test`);
  const line = `SKIP: tests/e2e/cluster.test.mjs: ${MISSING}\n`;
  process.stderr.write(line);
  if (process.env.WSCHAT_SKIP_LOG) fs.appendFileSync(process.env.WSCHAT_SKIP_LOG, line);
}
const clusterSuite = MISSING && !SKIP ? (name) => it(name, { skip: MISSING }, () => {}) : suite;

/** A free loopback TCP port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** Resolves once `check` resolves true, polling for up to `ms`. */
async function until(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const connectable = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

clusterSuite('two nodes of a cluster in Chromium', { timeout: 60000 }, () => {
  let redis, context, userDir;
  const nodes = [];
  const pages = {};
  const dialogs = [];

  before(async () => {
    const port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' });
    await until('redis-server listening', () => connectable(port));
    // A closed tab is a lost connection: a 1 s resume grace keeps the leave step short.
    const args = ['--cluster', `redis://127.0.0.1:${port}`, '--cluster-heartbeat-ms', '200', '--resume-grace-secs', '1'];
    for (const tag of ['node-a', 'node-b']) {
      const node = await startDaemon('127.0.0.1:0', '127.0.0.1:0', tag, args);
      await until(`${tag} joined the cluster`, async () => (await fetch(`http://127.0.0.1:${node.httpPort}/healthz`)).ok);
      nodes.push(node);
    }
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-e2e-cluster-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 960, height: 640 },
    });
  });

  after(async () => {
    await context?.close().catch(() => {});
    for (const n of nodes) await stopDaemon(n.proc);
    redis?.kill('SIGKILL');
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function open(who, node) {
    const page = await context.newPage();
    page.__who = who;
    page.on('dialog', (d) => { dialogs.push(`${who}: ${d.message()}`); d.dismiss().catch(() => {}); });
    await page.goto(`http://127.0.0.1:${node.httpPort}/`);
    await waitStatus(page, /^connected$/);
    await page.fill('#name', who);
    await page.click('#login');
    await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
    pages[who] = page;
    return page;
  }

  async function say(page, content, to = 'all') {
    await page.bringToFront();
    if (to === 'all') await page.selectOption('#to', 'all'); else await page.selectOption('#to', { label: to });
    await page.fill('#message', content);
    await page.click('#send');
  }

  it('alice on node A and bob on node B chat as on one daemon', async () => {
    const ids = await Promise.all(nodes.map(async (n) => {
      const m = await (await fetch(`http://127.0.0.1:${n.httpPort}/metrics`)).text();
      return /wschat_cluster_node\{id="([0-9a-f]{16})"\} 1/.exec(m)?.[1];
    }));
    assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], `two different nodes answer: ${ids}`);
    const alice = await open('alice', nodes[0]);
    const bob = await open('bob', nodes[1]);
    await waitUsers(alice, ['alice', 'bob']);
    await waitUsers(bob, ['alice', 'bob']);
    await say(alice, 'hello from node A');
    await waitText(bob, '#messages', 'hello from node A');
    await say(bob, 'psst from node B', 'alice');
    await waitText(alice, '#messages', 'psst from node B');
    await waitText(bob, '#messages', 'psst from node B');
    await alice.screenshot({ path: path.join(ARTIFACTS, 'cluster.png') });
    await bob.close();
    await waitText(alice, '#messages', 'bob left');
    await waitUsers(alice, ['alice']);
    assert.deepEqual(dialogs, []);
  });
});
