// Shared by the browser tests: the daemon's binary and its start and stop, the Chromium to drive, the skip
// rule for missing dependencies, and page helpers that wait with a readable failure.
import assert from 'node:assert/strict';
import { it, describe } from 'node:test';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// playwright-core comes from `make deps` (npm ci); without it the tests are skipped, and say so.
export const { chromium } = await import('playwright-core').catch((e) => {
  if (e.code === 'ERR_MODULE_NOT_FOUND') return {};
  throw e;
});

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.WSCHAT_BIN || path.resolve(HERE, '../../target/release/wschat');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(HERE, 'artifacts');
// A missing dependency skips the test with a `SKIP:` line (also appended to WSCHAT_SKIP_LOG, which `make test`
// lists at the end); under CI (CI=true) it fails instead.
export const MISSING = [
  !fs.existsSync(CHROMIUM) && `Chromium (${CHROMIUM})`,
  !chromium && 'the npm package playwright-core (tests/e2e/node_modules)',
].filter(Boolean);
export const SKIP = MISSING.length > 0 && `${MISSING.join(' and ')} not installed (\`make deps\` installs it)`;
if (SKIP) {
  if (process.env.CI === 'true') throw new Error(`${SKIP}; under CI a missing dependency fails the test`);
  const line = `SKIP: tests/e2e (browser tests): ${SKIP}\n`;
  process.stderr.write(line);
  if (process.env.WSCHAT_SKIP_LOG) fs.appendFileSync(process.env.WSCHAT_SKIP_LOG, line);
}
// Skipped, the browser test is reported as one skipped test (node counts a skipped suite as none).
export const suite = SKIP ? (name) => it(name, { skip: SKIP }, () => {}) : describe;
export const WAIT = 5000; // ms for any single expectation
export const XSS = '<img src=x onerror=alert(1)>';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

fs.mkdirSync(ARTIFACTS, { recursive: true });
// Failure screenshots of an earlier run are removed once per run by `make test-e2e`, not here: node --test loads
// this module once per test file, and a later file would delete an earlier file's screenshots.

// ---- daemon -----------------------------------------------------------------------------------
export const daemons = new Set();

/**
 * Starts the daemon and resolves with {proc, wsPort, httpPort, apiPort} once it printed its listening line
 * (apiPort: the server API's port, with `--api` in `extra`; else undefined).
 */
export function startDaemon(wsAddr = '127.0.0.1:0', httpAddr = '127.0.0.1:0', tag = 'daemon', extra = []) {
  assert.ok(fs.existsSync(BIN), `daemon binary not found at ${BIN} (run \`cargo build --release\` first)`);
  const proc = spawn(BIN, ['--ws', wsAddr, '--http', httpAddr, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  daemons.add(proc);
  proc.on('exit', () => daemons.delete(proc));
  const log = fs.createWriteStream(path.join(ARTIFACTS, `${tag}.log`));
  proc.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('daemon did not print its listening line within 10 s')), 10000);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`daemon exited early (${code ?? sig})`)); });
    const rl = createInterface({ input: proc.stdout });
    let first = true;
    rl.on('line', (line) => {
      log.write(`[stdout] ${line}\n`);
      if (!first) return;
      first = false;
      clearTimeout(timer);
      const m = /^wschat listening ws=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)(?: api=127\.0\.0\.1:(\d+))?$/.exec(line);
      if (!m) return reject(new Error(`unexpected first stdout line from daemon: ${JSON.stringify(line)}`));
      resolve({ proc, wsPort: Number(m[1]), httpPort: Number(m[2]), apiPort: m[3] ? Number(m[3]) : undefined });
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited after 3 s. */
export async function stopDaemon(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

// Whatever happens (assertion failure, exception, Ctrl-C), no daemon outlives the test process.
process.on('exit', () => { for (const p of daemons) p.kill('SIGKILL'); });

// ---- page helpers -----------------------------------------------------------------------------
export const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

/** Waits until the text of `sel` contains (or, with present=false, no longer contains) `needle`. */
export async function waitText(page, sel, needle, present = true, timeout = WAIT) {
  try {
    await page.waitForFunction(
      ([s, n, p]) => { const e = document.querySelector(s); return !!e && e.textContent.includes(n) === p; },
      [sel, needle, present], { timeout, polling: 50 });
  } catch (e) {
    const got = await text(page, sel).catch(() => '<missing>');
    throw new Error(`${page.__who}: ${sel} ${present ? 'never showed' : 'still shows'} ${JSON.stringify(needle)}; ` +
      `it reads ${JSON.stringify(got)}`);
  }
}

/** Waits until #status matches `re`. */
export async function waitStatus(page, re, timeout = WAIT) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('#status').textContent.trim()),
      re.source, { timeout, polling: 50 });
  } catch {
    throw new Error(`${page.__who}: #status never matched ${re}; it reads ${JSON.stringify(await text(page, '#status'))}`);
  }
}

/** Names shown in #users (each entry's text, "(you)" marker stripped). */
export const userNames = (page) => page.$$eval('#users li', (lis) =>
  lis.map((li) => (li.querySelector('.uname') ?? li).textContent.replace(/\(you\)/, '').trim()));

export async function waitUsers(page, expected) {
  const want = [...expected].sort();
  try {
    await page.waitForFunction((w) => {
      const got = [...document.querySelectorAll('#users li')]
        .map((li) => (li.querySelector('.uname') ?? li).textContent.replace(/\(you\)/, '').trim()).sort();
      return JSON.stringify(got) === JSON.stringify(w);
    }, want, { timeout: WAIT, polling: 50 });
  } catch {
    assert.deepEqual((await userNames(page)).sort(), want, `${page.__who}: #users`);
  }
}

