// TLS helpers for the browser tests: a test CA and a certificate for 127.0.0.1 made with the `openssl`
// command, a headless Chromium that trusts that CA the way a user's browser trusts a CA (an NSS database in a
// HOME of its own, made with `certutil`), and nginx run from a prefix folder of the test's own, stopped by PID.
//
// Why NSS and not --ignore-certificate-errors-spki-list or playwright's ignoreHTTPSErrors: those switch
// verification off for one key, so a broken chain, a wrong name or an expired certificate would pass. With the
// CA in NSS, Chromium verifies the certificate exactly as for a real site: the CA is the only anchor, the
// intermediate must come from the server (its fullchain), the SAN must name 127.0.0.1.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { it } from 'node:test';
import { chromium, CHROMIUM, CHROMIUM_ARGS, SKIP, suite } from './lib.mjs';

/** Where `program` is: in PATH, or in /usr/sbin or /sbin (Debian puts nginx there; a user's PATH may lack them). */
export function which(program) {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin'];
  const isFile = (p) => { try { return fs.statSync(p).isFile(); } catch { return false; } };
  return dirs.map((d) => path.join(d, program)).find(isFile);
}

export const OPENSSL = which('openssl');
export const CERTUTIL = which('certutil');
export const NGINX = which('nginx');

/**
 * lib.mjs's skip rule for a suite with needs of its own: `missing` lists what is not installed (falsy entries
 * ignored). Nothing missing: lib's `suite`. Else one `SKIP:` line (also to WSCHAT_SKIP_LOG) and a skipped test,
 * or, under CI=true, an error: a missing dependency fails there. When the browser itself is missing lib.mjs has
 * already said so.
 */
export function suiteNeeding(file, missing) {
  const what = missing.filter(Boolean);
  if (what.length === 0 || SKIP) return suite;
  const reason = `${what.join(' and ')} not installed (\`make deps\` installs it)`;
  if (process.env.CI === 'true') throw new Error(`${file}: ${reason}; under CI a missing dependency fails the test`);
  const line = `SKIP: ${file}: ${reason}\n`;
  process.stderr.write(line);
  if (process.env.WSCHAT_SKIP_LOG) fs.appendFileSync(process.env.WSCHAT_SKIP_LOG, line);
  return (name) => it(name, { skip: reason }, () => {});
}

/** A folder of its own under the temp dir. */
export const tempDir = (tag) => fs.mkdtempSync(path.join(os.tmpdir(), `wschat-e2e-${tag}-`));

/** A free loopback TCP port (free when this resolves). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

export const connectable = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

/** `text` with each [from, to] replaced; throws when `from` is not there, so a change to the dist/ file that the
 * test would no longer follow fails it instead of testing something else (as tests/deploy.rs does). */
export function replaceAll(text, pairs) {
  let out = text;
  for (const [from, to] of pairs) {
    if (!out.includes(from)) throw new Error(`${JSON.stringify(from)} not found in the dist/ file`);
    out = out.split(from).join(to);
  }
  return out;
}

// ---- certificates -----------------------------------------------------------------------------
// Three levels as from a real CA: root (the only thing the browser trusts) → intermediate → leaf. The server
// sends leaf + intermediate (`chain`, like certbot's fullchain.pem), so a server that sent the leaf alone
// would fail verification in the browser: the test checks the chain, not only the leaf.
const OPENSSL_CNF = `[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

/**
 * Makes, in `dir`, ECDSA P-256 keys and certificates valid for two days: `ca` (root CA, PEM), `chain` (leaf then
 * intermediate, PEM), `leaf` (the leaf alone) and `key` (the leaf's PKCS#8 key). Returns their paths.
 */
export function makeCerts(dir) {
  const f = (name) => path.join(dir, name);
  const run = (...args) => {
    try {
      execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`openssl ${args.join(' ')}: ${e.stderr}`);
    }
  };
  fs.writeFileSync(f('openssl.cnf'), OPENSSL_CNF);
  for (const k of ['ca', 'intermediate', 'leaf']) {
    run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${k}.key`);
  }
  const common = ['-config', 'openssl.cnf', '-days', '2', '-sha256'];
  run('req', '-x509', '-new', ...common, '-extensions', 'root', '-key', 'ca.key', '-subj', '/CN=wschat test root CA',
    '-out', 'ca.pem');
  const sign = (name, subject, issuer) => {
    run('req', '-new', '-config', 'openssl.cnf', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-set_serial',
      `0x1${randomBytes(8).toString('hex')}`, '-extfile', 'openssl.cnf', '-extensions', name,
      '-days', '2', '-sha256', '-out', `${name}.pem`);
  };
  sign('intermediate', '/CN=wschat test intermediate CA', 'ca');
  sign('leaf', '/CN=127.0.0.1', 'intermediate');
  const pem = (name) => fs.readFileSync(f(name), 'utf8');
  fs.writeFileSync(f('chain.pem'), pem('leaf.pem') + pem('intermediate.pem'));
  return { ca: f('ca.pem'), chain: f('chain.pem'), leaf: f('leaf.pem'), key: f('leaf.key') };
}

// ---- a browser that trusts the test CA ----------------------------------------------------------
/**
 * Headless Chromium (lib's CHROMIUM_ARGS, a fresh user-data-dir) whose HOME is a fresh folder holding an NSS
 * database ($HOME/.pki/nssdb, where Chromium on Linux reads the user's trusted CAs) with `ca` trusted for TLS
 * servers (`-t C,,`); `ca` null: an empty database, a browser that trusts no test CA. Returns { context, close };
 * close() also removes both folders.
 */
export async function launchTrusting(ca, tag, viewport = { width: 960, height: 640 }) {
  const home = tempDir(`${tag}-home`);
  const nssdb = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nssdb, { recursive: true });
  const certutil = (...args) => {
    try {
      execFileSync(CERTUTIL, ['-d', `sql:${nssdb}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`certutil ${args.join(' ')}: ${e.stderr}`);
    }
  };
  certutil('-N', '--empty-password');
  if (ca) certutil('-A', '-t', 'C,,', '-n', 'wschat-test-ca', '-i', ca);
  const userDir = tempDir(`${tag}-chromium`);
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport, env: { ...process.env, HOME: home },
  });
  const close = async () => {
    await context.close().catch(() => {});
    for (const d of [home, userDir]) fs.rmSync(d, { recursive: true, force: true });
  };
  return { context, close };
}

// ---- TLS and HTTPS from node, trusting only the test CA ------------------------------------------
/**
 * One TLS handshake with 127.0.0.1:`port`, `ca` the only trusted CA; `options` go to tls.connect (versions,
 * ALPN, ciphers). Resolves with { protocol, alpn, authorized } or rejects with the handshake's error.
 */
export function handshake(port, ca, options = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca), ...options }, () => {
      resolve({ protocol: s.getProtocol(), alpn: s.alpnProtocol, authorized: s.authorized });
      s.destroy();
    });
    s.setTimeout(5000, () => s.destroy(new Error('TLS handshake timed out')));
    s.on('error', reject);
  });
}

/** GET `url` (https) trusting only `ca`, from `localAddress` (127.0.0.x) if given; resolves with
 * { status, headers, body }. */
export async function httpsGet(url, ca, localAddress = undefined) {
  const { default: https } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: fs.readFileSync(ca), timeout: 5000, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

// ---- nginx ------------------------------------------------------------------------------------
const nginxes = new Set();
process.on('exit', () => { for (const p of nginxes) p.kill('SIGKILL'); });

/**
 * nginx in the foreground (one process, no daemon, no master) with `site` (a dist/nginx file, ports already
 * replaced) included in a minimal main configuration whose pid, logs and temp folders are all in `dir`, as
 * tests/deploy.rs runs it. Resolves once every port in `ports` accepts connections, with { proc, log, stop() };
 * stop() ends that process by its PID.
 */
export async function startNginx(site, dir, ports) {
  const p = (name) => path.join(dir, name);
  fs.writeFileSync(p('site.conf'), site);
  fs.writeFileSync(p('nginx.conf'), `pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${p('body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  include ${p('site.conf')};
}
`);
  const log = p('error.log');
  // In the foreground and one process: its PID is nginx, and ending it ends nginx.
  const args = ['-p', `${dir}/`, '-c', p('nginx.conf'), '-e', log, '-g', 'daemon off; master_process off;'];
  const proc = spawn(NGINX, args, { stdio: 'ignore' });
  nginxes.add(proc);
  proc.on('exit', () => nginxes.delete(proc));
  const readLog = () => { try { return fs.readFileSync(log, 'utf8'); } catch { return ''; } };
  const deadline = Date.now() + 5000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`nginx exited (${proc.exitCode ?? proc.signalCode}): ${readLog()}`);
    }
    if ((await Promise.all(ports.map(connectable))).every(Boolean)) break;
    if (Date.now() > deadline) throw new Error(`nginx does not listen on ${ports}: ${readLog()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  return { proc, log, readLog, stop };
}
