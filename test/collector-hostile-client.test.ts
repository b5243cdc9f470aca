/**
 * The collector against a hostile HTTP client: a real collector process (its own
 * nats-server, a real SQLite database seeded before it starts), a token set, and
 * small limits from a config file. Every route without credentials, malformed
 * cookies, huge ranges and limits, a stored status of the wrong shape, a slow
 * upload that stops sending, an analysis child SIGKILLed, a file name starting
 * with "-", internal errors (the client gets a request id, the log the details),
 * the audit trail, the failed-auth limit, and the refusal to start on 0.0.0.0
 * without a token. Waits are on events (answers, files, log lines) with generous
 * deadlines, never fixed sleeps.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../common/config.js';
import { createLogger } from '../common/logging.js';
import type { Finding, WindowSummary } from '../common/report.js';
import { FINDING_SCHEMA, STATUS_SCHEMA, WINDOW_SCHEMA, type FindingMessage, type StatusMessage, type WindowMessage } from '../common/wire.js';
import { OPEN_PATHS, buildApp } from '../collector/http/app.js';
import { fingerprint } from '../collector/http/auth.js';
import { collectorPlugins } from '../collector/main.js';
import { CollectorMetrics } from '../collector/metrics.js';
import { openStore } from '../collector/store/index.js';
import { AnalysisQueue, jobTempDir, reportPath, reportsDir, uploadsDir } from '../collector/uploads/queue.js';
import { freePort, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { BAD_PCAPS, SHARED_PCAPS } from './helpers/paths.js';

const TOKEN = 'hostile-client-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const SMALL = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
/** A gzip bomb: its analysis runs for seconds (long enough to be killed mid-way). */
const SLOW = join(BAD_PCAPS, 'gzip_bomb.pcap.gz');
const ALL_TIME = 'from=0&to=4000000000';
/** The limits this collector runs with (config file). */
const LIMITS = { uploadTimeoutSeconds: 3, uploadIdleSeconds: 600, maxReportWindows: 5, maxReportFindings: 5, authFailuresPerMinute: 5, uploadsPerMinute: 1000 };
/** Environment the collector must not inherit from the shell running the tests. */
const CLEARED = { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' };

let work = '';
let dataDir = '';
let configPath = '';
let staleTempDir = '';
let nats: NatsServerHandle | undefined;
let collector: AgentProcess | undefined;
let base = '';

// ------------------------------------------------------------------ stored content

const source = { kind: 'replay' as const, name: 'seed' };
const window = (i: number): WindowSummary => ({
  start: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(),
  end: new Date(Date.UTC(2024, 0, 1, 0, 0, i + 1)).toISOString(),
  packets: 10, bytes: 1000, flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: 90,
  counters: { 'tcp.segments': 3 },
});
const windowMessage = (sensor: string, i: number): WindowMessage => ({ schema: WINDOW_SCHEMA, id: `${sensor}.w.${i}`, sensor, source, window: window(i) });
const findingMessage = (sensor: string, i: number): FindingMessage => {
  const w = window(0);
  const finding: Finding = { id: `f${i}`, type: 'port_scan', severity: 'warning', window: { start: w.start, end: w.end }, host: '192.0.2.1', summary: 'seeded', evidence: {} };
  return { schema: FINDING_SCHEMA, id: `${sensor}.f.${i}`, sensor, source, finding };
};
/** A status as a hostile or broken sensor could have stored it: wrong types everywhere. */
const brokenStatus = (): StatusMessage => ({
  schema: STATUS_SCHEMA, id: 'broken.s.1', sensor: 'broken', version: '1', source, startedAt: new Date().toISOString(), time: new Date().toISOString(),
  uptimeSeconds: 'long', state: 'running', capture: 'garbage', flows: null, windows: 1, publish: { spoolMessages: { nested: true } },
} as unknown as StatusMessage);

async function seed(): Promise<void> {
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dataDir, 'pcap_analyzer.db') });
  try {
    await store.ingest({
      windows: [
        ...Array.from({ length: 12 }, (_, i) => windowMessage('big', i)),
        ...Array.from({ length: 2 }, (_, i) => windowMessage('small', i)),
        windowMessage('findy', 0),
      ],
      findings: [...Array.from({ length: 2 }, (_, i) => findingMessage('small', i)), ...Array.from({ length: 8 }, (_, i) => findingMessage('findy', i))],
      statuses: [brokenStatus()],
    });
  } finally {
    await store.close();
  }
}

// ------------------------------------------------------------------ helpers

function startCollector(args: string[], env: Record<string, string>): AgentProcess {
  return spawnCli(['collector', '--nats', nats!.url, ...args], { env: { ...CLEARED, ...env } });
}

async function stopProcess(p: AgentProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.exited;
  clearTimeout(timer);
}

interface LogLine { [key: string]: unknown }
const logLines = (): LogLine[] => collector!.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
const auditLines = (): LogLine[] => logLines().filter((l) => l['audit'] === true);

interface Answer { status: number; headers: Headers; text: string }
async function request(path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(base + path, { redirect: 'manual', ...init });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

interface JobStatus { id: string; status: string; error: string | null; filename: string }
const job = async (id: string): Promise<JobStatus> => JSON.parse((await request(`/api/captures/${id}`, { headers: AUTH })).text) as JobStatus;
const finished = (id: string, timeoutMs = 60_000): Promise<JobStatus> =>
  waitFor(`job ${id} to finish`, async () => { const j = await job(id); return j.status === 'done' || j.status === 'failed' ? j : undefined; }, timeoutMs, 100);

async function upload(file: string, filename: string): Promise<string> {
  const res = await request('/api/captures', { method: 'POST', body: new Uint8Array(readFileSync(file)), headers: { ...AUTH, 'content-type': 'application/octet-stream', 'x-filename': encodeURIComponent(filename) } });
  assert.equal(res.status, 202, res.text);
  return (JSON.parse(res.text) as { id: string }).id;
}

const queueUploading = async (): Promise<number> => (JSON.parse((await request('/api/health')).text) as { queue: { uploading: number } }).queue.uploading;

// ------------------------------------------------------------------ setup

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-hostile-client-'));
  dataDir = join(work, 'data');
  mkdirSync(dataDir);
  await seed();
  // An analysis temp directory left behind by a child killed together with its collector.
  staleTempDir = jobTempDir(dataDir, randomUUID());
  mkdirSync(staleTempDir, { recursive: true });
  writeFileSync(join(staleTempDir, 'items.jsonl'), '{}\n');
  configPath = join(work, 'config.yaml');
  writeFileSync(configPath, `collector:\n${Object.entries(LIMITS).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
  nats = await startNatsServer();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  collector = startCollector(['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--config', configPath], { API_TOKEN: TOKEN });
  await waitFor('collector /api/health', async () => (await fetch(`${base}/api/health`)).status === 200 || undefined, 30_000);
});

after(async () => {
  if (process.env["HOSTILE_LOG"]) process.stderr.write(collector?.stderr() ?? "");
  if (collector) await stopProcess(collector);
  await nats?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('an analysis temp directory left by a crash is swept at start', () => {
  assert.ok(!existsSync(staleTempDir), `${staleTempDir} is still there`);
});

test('every non-public route refuses a client without credentials (routes listed from the Fastify app)', async () => {
  // The routes the real collector registers, from the same builder and plugins.
  const dir = join(work, 'routes');
  mkdirSync(dir);
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'routes.db') });
  const logger = createLogger({ level: 'silent', redact: false });
  const config = DEFAULT_CONFIG.collector;
  const queue = new AnalysisQueue({ store, config, dataDir: dir, logger });
  const routes: Array<{ method: string; url: string }> = [];
  const app = await buildApp({
    config, token: 'x', store, version: 'test', startedAt: 0, dataDir: dir, logger, metrics: new CollectorMetrics('test'),
    ingest: () => ({ connected: false, pending: 0, committed: 0, rejected: 0, lastError: '' }), queue: () => queue.stats(),
    plugins: collectorPlugins({ store, queue, config, dataDir: dir, logger, version: 'test' }),
    onRoute: (r) => { for (const method of [r.method].flat()) routes.push({ method, url: r.url }); },
  });
  await app.ready();
  await app.close();
  await queue.close();
  await store.close();

  const closed = routes.filter((r) => !OPEN_PATHS.has(r.url) && !r.url.startsWith('/static/'));
  for (const known of ['GET /api/sensors', 'GET /api/sensors/:id/windows', 'GET /api/findings', 'GET /api/reports/:sensor', 'POST /api/captures',
    'GET /api/captures/:id', 'GET /api/captures/:id/report', 'DELETE /api/captures/:id', 'GET /api/sensors/:id/series', 'GET /', 'GET /upload']) {
    assert.ok(closed.some((r) => `${r.method} ${r.url}` === known), `${known} is not among the routes listed: the listing is broken`);
  }
  for (const route of closed) {
    const path = route.url.replace(':id', randomUUID()).replace(':sensor', 'big');
    const body = route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH' ? new Uint8Array(64) : undefined;
    const res = await request(path, { method: route.method, ...(body ? { body, headers: { 'content-type': 'application/octet-stream' } } : {}) });
    const what = `${route.method} ${route.url}`;
    if (route.url.startsWith('/api/')) {
      assert.equal(res.status, 401, `${what}: ${res.text}`);
      if (route.method !== 'HEAD') assert.equal((JSON.parse(res.text) as { error: string }).error, 'unauthorized', what);
    } else {
      // Pages answer 401 too, with the way to the login form for a browser.
      assert.equal(res.status, 401, what);
      if (route.method !== 'HEAD') assert.match(res.text, /<meta http-equiv="refresh" content="0; url=\/login\?next=/, what);
    }
  }
  assert.ok(closed.length >= 20, `only ${closed.length} routes listed`);
});

test('malformed cookies get 401 (API and pages) or the open answer: never a 5xx', async () => {
  const cookies = ['pa_session=%', 'pa_session=%E0%A4%A', 'pa_session=', 'pa_session', ';;;=;', `pa_session=${'%'.repeat(4000)}`, 'pa_session="unterminated', 'pa_session=a; pa_session=%zz'];
  for (const cookie of cookies) {
    const api = await request('/api/sensors', { headers: { cookie } });
    assert.equal(api.status, 401, `${cookie.slice(0, 40)}: ${api.text}`);
    const page = await request('/', { headers: { cookie } });
    assert.equal(page.status, 401, cookie.slice(0, 40));
    assert.equal((await request('/login', { headers: { cookie } })).status, 200, cookie.slice(0, 40));
    assert.equal((await request('/logout', { method: 'POST', headers: { cookie } })).status, 303, cookie.slice(0, 40));
    const withToken = await request('/api/sensors', { headers: { cookie, ...AUTH } });
    assert.equal(withToken.status, 200, `the token still works beside a bad cookie: ${withToken.text}`);
  }
});

test('huge ranges and limits are refused (400/413) with the limit named; within limits the lists stream', async () => {
  const overLimit = await request('/api/sensors/big/windows?limit=6', { headers: AUTH });
  assert.equal(overLimit.status, 400, overLimit.text);
  assert.match(overLimit.text, /collector\.maxReportWindows/);
  assert.match(overLimit.text, /limit of 5 windows/);
  const huge = await request('/api/sensors/big/windows?limit=1000000000', { headers: AUTH });
  assert.equal(huge.status, 400, huge.text);

  const listed = await request(`/api/sensors/big/windows?${ALL_TIME}&limit=5`, { headers: AUTH });
  assert.equal(listed.status, 200, listed.text);
  const body = JSON.parse(listed.text) as { windows: WindowSummary[] };
  assert.deepEqual(body.windows.map((w) => w.start), Array.from({ length: 5 }, (_, i) => window(i).start));
  // The default limit is capped by the configured maximum too.
  assert.equal((JSON.parse((await request(`/api/sensors/big/windows?${ALL_TIME}`, { headers: AUTH })).text) as { windows: unknown[] }).windows.length, 5);

  for (const format of ['json', 'html']) {
    const report = await request(`/api/reports/big?${ALL_TIME}&format=${format}`, { headers: AUTH });
    assert.equal(report.status, 413, `${format}: ${report.text}`);
    assert.match(report.text, /more than 5 windows/);
    assert.match(report.text, /collector\.maxReportWindows/);
  }
  const findings = await request(`/api/reports/findy?${ALL_TIME}`, { headers: AUTH });
  assert.equal(findings.status, 413, findings.text);
  assert.match(findings.text, /more than 5 findings.*collector\.maxReportFindings/);

  // Within the limits: the whole report, streamed, with the windows' counters summed.
  const ok = await request(`/api/reports/small?${ALL_TIME}`, { headers: AUTH });
  assert.equal(ok.status, 200, ok.text);
  const report = JSON.parse(ok.text) as { windows: WindowSummary[]; findings: Finding[]; counters: Record<string, number>; capture: { packets: number } };
  assert.equal(report.windows.length, 2);
  assert.equal(report.findings.length, 2);
  // Every counter analyze lists, zeros included: only tcp.segments was in these windows.
  assert.equal(report.counters['tcp.segments'], 6);
  assert.ok(Object.keys(report.counters).length >= 30, 'the zero counters are listed');
  assert.deepEqual(Object.entries(report.counters).filter(([name, n]) => name !== 'tcp.segments' && n !== 0), []);
  assert.equal(report.capture.packets, 20);
  assert.equal((await request(`/api/reports/small?${ALL_TIME}&format=html`, { headers: AUTH })).status, 200);
});

test('a stored status of the wrong shape: the API and the pages answer, the bad fields shown as null', async () => {
  const res = await request('/api/sensors', { headers: AUTH });
  assert.equal(res.status, 200, res.text);
  const broken = (JSON.parse(res.text) as { sensors: Array<Record<string, unknown>> }).sensors.find((s) => s['id'] === 'broken');
  assert.ok(broken, res.text);
  assert.equal(broken['uptimeSeconds'], null);
  assert.deepEqual(broken['capture'], { packets: null, bytes: null, received: null, drops: { kernel: null, interface: null, agent: null } });
  assert.deepEqual(broken['spool'], { messages: null, bytes: null, overflow: null, connected: null });
  assert.equal((await request('/sensors/broken', { headers: AUTH })).status, 200);
  assert.equal((await request('/', { headers: AUTH })).status, 200);
});

test('a slow upload that stops sending is cut off at collector.uploadTimeoutSeconds and frees its queue slot', async () => {
  // A pcap header, then nothing: the idle limit (600 s) is far away, only the overall deadline can end it.
  const started = Date.now();
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${base}/api/captures`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }); req.destroy(); });
    });
    req.on('error', reject);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    req.write(header);
  });
  await waitFor('the upload to hold a queue slot', async () => (await queueUploading()) === 1 || undefined, 10_000, 50);
  // A second upload from the same client is refused while the first streams.
  const second = await request('/api/captures', { method: 'POST', body: new Uint8Array(readFileSync(SMALL)), headers: { ...AUTH, 'content-type': 'application/octet-stream' } });
  assert.equal(second.status, 429, second.text);
  assert.match(second.text, /one at a time/);

  const { status, body } = await answer;
  const seconds = (Date.now() - started) / 1000;
  assert.equal(status, 408, body);
  assert.match(body, /collector\.uploadTimeoutSeconds/);
  assert.ok(seconds >= LIMITS.uploadTimeoutSeconds - 0.5, `cut off after ${seconds} s, before the deadline`);
  assert.ok(seconds < LIMITS.uploadTimeoutSeconds + 20, `cut off after ${seconds} s`);
  await waitFor('the slot to be free', async () => (await queueUploading()) === 0 || undefined, 10_000, 50);
});

let dashId = '';
test('a file name starting with "-" is analyzed (and named so in its report)', async () => {
  dashId = await upload(SMALL, '-rf --config=x.pcapng');
  const status = await finished(dashId);
  assert.equal(status.status, 'done', status.error ?? '');
  const report = await request(`/api/captures/${dashId}/report`, { headers: AUTH });
  assert.equal(report.status, 200);
  assert.equal((JSON.parse(report.text) as { source: { path: string } }).source.path, '-rf --config=x.pcapng');
  const html = await request(`/api/captures/${dashId}/report?format=html`, { headers: AUTH });
  assert.equal(html.status, 200);
  assert.match(html.headers.get('content-type') ?? '', /text\/html/);
  // The uploader's data is the collector user's alone.
  const mode = (path: string): number => statSync(path).mode & 0o777;
  assert.equal(mode(reportPath(dataDir, dashId, 'json')), 0o600);
  assert.equal(mode(reportPath(dataDir, dashId, 'html')), 0o600);
  assert.equal(mode(reportsDir(dataDir)), 0o700);
  assert.equal(mode(uploadsDir(dataDir)), 0o700);
  assert.equal((await request(`/api/captures/${dashId}`, { method: 'DELETE', headers: AUTH })).status, 204);
});

test('SIGKILL of an analysis child: the job fails with a reason and no path, and its temp directory is gone', async () => {
  const id = await upload(SLOW, 'bomb.pcap.gz');
  const tempDir = jobTempDir(dataDir, id);
  await waitFor('the analysis to run', async () => ((await job(id)).status === 'running' && existsSync(tempDir)) || undefined, 20_000, 20);
  const collectorPid = collector!.child.pid!;
  const childPid = await waitFor('the analysis child', () => readFileSync(`/proc/${collectorPid}/task/${collectorPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
    .find((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('analysis-child'); } catch { return false; } }), 10_000, 20);
  process.kill(childPid, 'SIGKILL');
  const status = await finished(id);
  assert.equal(status.status, 'failed');
  assert.match(status.error ?? '', /killed \(SIGKILL\)/);
  assert.doesNotMatch(status.error ?? '', /\//, 'no path');
  await waitFor('the temp directory to be removed', () => !existsSync(tempDir) || undefined, 10_000, 50);
  assert.equal((await request(`/api/captures/${id}`, { method: 'DELETE', headers: AUTH })).status, 204);
});

test('internal errors: the client gets a generic message and the request id, the log gets the path and the stack', async () => {
  // An HTTP 500: the uploads directory replaced by a file, so storing an upload fails.
  const uploads = uploadsDir(dataDir);
  renameSync(uploads, `${uploads}.away`);
  writeFileSync(uploads, 'not a directory');
  let res: Answer;
  try {
    res = await request('/api/captures', { method: 'POST', body: new Uint8Array(readFileSync(SMALL)), headers: { ...AUTH, 'content-type': 'application/octet-stream' } });
  } finally {
    rmSync(uploads);
    renameSync(`${uploads}.away`, uploads);
  }
  assert.equal(res.status, 500, res.text);
  const body = JSON.parse(res.text) as { error: string; detail: string; requestId: string };
  assert.equal(body.error, 'internal error');
  assert.equal(res.headers.get('x-request-id'), body.requestId);
  assert.doesNotMatch(res.text, /uploads|ENOTDIR|EEXIST|\/tmp|at .*\.js/, 'no path, code or stack');
  const logged = await waitFor('the error in the log', () => logLines().find((l) => l['reqId'] === body.requestId && l['msg'] === 'request failed'), 5000, 50);
  assert.match(JSON.stringify(logged['err']), new RegExp(`${dataDir.replace(/[/.]/g, '\\$&')}.*uploads`), 'the log has the path');
  assert.match(JSON.stringify(logged['err']), /"stack"/, 'and the stack');

  // An analysis failing for the collector's own reason (its config file gone): a generic reason
  // for the client; the child's message, with the path, in the log.
  renameSync(configPath, `${configPath}.away`);
  let id = '';
  try {
    id = await upload(SMALL, 'fine.pcapng');
    const status = await finished(id);
    assert.equal(status.status, 'failed');
    assert.match(status.error ?? '', /^internal error while analyzing \(see the collector log, job [0-9a-f-]{36}\)$/);
    const report = await request(`/api/captures/${id}/report`, { headers: AUTH });
    assert.equal(report.status, 422);
    assert.doesNotMatch(report.text, /config\.yaml|\/tmp|ENOENT/);
  } finally {
    renameSync(`${configPath}.away`, configPath);
  }
  const failure = await waitFor('the analysis failure in the log', () => logLines().find((l) => l['job'] === id && l['msg'] === 'capture analysis failed'), 5000, 50);
  assert.match(String(failure['stderr']), /config\.yaml/, 'the log has the child\'s reason');
  assert.equal((await request(`/api/captures/${id}`, { method: 'DELETE', headers: AUTH })).status, 204);
});

test('audit lines for upload, delete, login, logout and failed auth: principal, address, action, target, outcome', async () => {
  const id = await upload(SMALL, 'audited.pcapng');
  await finished(id);
  assert.equal((await request(`/api/captures/${id}`, { method: 'DELETE', headers: AUTH })).status, 204);
  const login = await request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: TOKEN, next: '/' }).toString() });
  assert.equal(login.status, 303);
  const sessionCookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const sessionId = sessionCookie.split('=')[1]!;
  assert.equal((await request('/api/sensors', { headers: { cookie: sessionCookie } })).status, 200);
  assert.equal((await request('/logout', { method: 'POST', headers: { cookie: sessionCookie } })).status, 303);
  assert.equal((await request('/api/sensors', { headers: { cookie: sessionCookie } })).status, 401, 'logout revoked the session');
  assert.equal((await request('/api/sensors', { headers: { authorization: 'Bearer not-the-token' } })).status, 401);

  const tokenPrincipal = `token:${fingerprint(TOKEN)}`;
  const sessionPrincipal = `session:${fingerprint(sessionId)}`;
  const expected: Array<[string, string, string, string]> = [
    ['upload', tokenPrincipal, `capture:${id}`, 'success'],
    ['delete', tokenPrincipal, `capture:${id}`, 'success'],
    ['login', sessionPrincipal, 'session', 'success'],
    ['logout', sessionPrincipal, 'session', 'success'],
    ['authenticate', sessionPrincipal, '/api/sensors', 'denied'],
    ['authenticate', `token:${fingerprint('not-the-token')}`, '/api/sensors', 'denied'],
  ];
  for (const [action, principal, target, outcome] of expected) {
    const line = await waitFor(`the audit line ${action} ${principal} ${outcome}`, () => auditLines().find((l) => l['action'] === action && l['principal'] === principal && l['target'] === target && l['outcome'] === outcome), 5000, 50);
    assert.equal(line['ip'], '127.0.0.1');
    assert.equal(typeof line['status'], 'number');
  }
  assert.ok(!collector!.stderr().includes(TOKEN) && !collector!.stderr().includes(sessionId), 'neither the token nor a session id is logged');
});

test('failed logins and bearer tokens are rate limited per client: 429 with Retry-After, even for the right token', async () => {
  // Runs last: afterwards this client (127.0.0.1) is blocked for up to a minute.
  for (;;) {
    const res = await request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: 'guess' }).toString() });
    if (res.status === 429) {
      const retry = Number(res.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
      break;
    }
    assert.equal(res.status, 401);
  }
  const wrong = await request('/api/sensors', { headers: { authorization: 'Bearer guess' } });
  assert.equal(wrong.status, 429, wrong.text);
  assert.ok(Number(wrong.headers.get('retry-after')) >= 1);
  assert.equal((await request('/api/sensors', { headers: AUTH })).status, 429, 'a right guess is not told apart while blocked');
  await waitFor('the rate-limited audit line', () => auditLines().find((l) => l['action'] === 'authenticate' && l['outcome'] === 'rate-limited') ?? auditLines().find((l) => l['action'] === 'login' && l['outcome'] === 'rate-limited'), 5000, 50);
  // Open paths stay open.
  assert.equal((await request('/api/health')).status, 200);
});

test('on 0.0.0.0 without a token the collector exits 2 with one line naming API_TOKEN and collector.allowAnonymous; allowAnonymous starts it with a warning', async () => {
  const port = await freePort();
  const refused = startCollector(['--listen', `0.0.0.0:${port}`, '--data-dir', join(work, 'anon')], {});
  try {
    const { code } = await refused.exited;
    assert.equal(code, 2, refused.stderr());
    const lines = refused.stderr().trim().split('\n');
    assert.equal(lines.length, 1, refused.stderr());
    assert.match(lines[0]!, /API_TOKEN/);
    assert.match(lines[0]!, /collector\.allowAnonymous/);
  } finally {
    await stopProcess(refused);
  }

  const anonymous = startCollector(['--listen', `0.0.0.0:${port}`, '--data-dir', join(work, 'anon')], { PCAP_ANALYZER_COLLECTOR_ALLOW_ANONYMOUS: 'true' });
  try {
    await waitFor('the anonymous collector', async () => (await fetch(`http://127.0.0.1:${port}/api/health`)).status === 200 || undefined, 30_000);
    assert.match(anonymous.stderr(), /"level":40.*WITHOUT authentication/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/sensors`)).status, 200);
  } finally {
    await stopProcess(anonymous);
  }
});
