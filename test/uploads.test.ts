/**
 * Capture uploads end to end: the upload plugin in a small Fastify app over
 * real HTTP (streaming and early refusals only show on a real socket), a real
 * SQLite store in a temp dir and the real queue with its child processes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { basename, join } from 'node:path';
import { DEFAULT_CONFIG, type CollectorConfig } from '../common/config.js';
import Fastify from 'fastify';
import type { Report } from '../common/report.js';
import { openStore } from '../collector/store/index.js';
import type { CaptureJob } from '../collector/store/types.js';
import { AnalysisQueue, reportPath, uploadPath, uploadsDir } from '../collector/uploads/queue.js';
import { sweepExpired } from '../collector/uploads/expiry.js';
import { closeUploadServers, startUploadServer, type UploadServer } from './helpers/upload-server.js';
import { BAD_PCAPS, CLI, SHARED_PCAPS } from './helpers/paths.js';

const MiB = 1024 * 1024;
const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const SMALL = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
/** Takes the analysis ~3 s (decompresses to 670 MB): the "slow analysis" of the queue tests. */
const SLOW = join(BAD_PCAPS, 'gzip_bomb.pcap.gz');

/**
 * A capture whose analysis takes several seconds on any machine (SLOW takes ~1 s on a fast one):
 * gzip members of 64 records of 256 KiB (2 KiB of pseudo-random bytes each, so the inflation
 * ratio, ~180, stays under input.maxCompressionRatio) repeated `members` times after a member
 * holding the pcap header; gunzip reads the members as one stream. 150 members inflate to 2.5 GB.
 */
function slowerCapture(members = 150): string {
  const REC = 262144;
  const PER = 64;
  const chunk = Buffer.alloc(PER * (16 + REC));
  let seed = 1;
  for (let i = 0; i < PER; i++) {
    const o = i * (16 + REC);
    chunk.writeUInt32LE(1_300_000_000 + i, o);
    chunk.writeUInt32LE(REC, o + 8);
    chunk.writeUInt32LE(REC, o + 12);
    for (let j = 0; j < 2048; j++) chunk[o + 16 + j] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) & 0xff;
  }
  const records = gzipSync(chunk, { level: 1 });
  const path = join(mkdtempSync(join(tmpdir(), 'pcap-slower-')), 'slower.pcap.gz');
  writeFileSync(path, Buffer.concat([gzipSync(Buffer.from('d4c3b2a10200040000000000000000000000040001000000', 'hex')), ...new Array<Buffer>(members).fill(records)]));
  return path;
}

type Server = UploadServer;
after(closeUploadServers);
// UPLOADS_TEST_LOG=1 shows the queue's warnings (why a job failed) when debugging.
const startServer = (overrides: Partial<CollectorConfig> = {}): Promise<Server> =>
  startUploadServer({ prefix: 'pcap-uploads-', recover: true, logWarnings: Boolean(process.env['UPLOADS_TEST_LOG']) }, overrides);

interface ApiError { error: string; detail: string }
interface Status { id: string; status: CaptureJob['status']; progress: number; filename: string; sizeBytes: number; error: string | null; reportUrl: string | null }

async function upload(s: Server, body: Buffer, filename: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}/api/captures`, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': 'application/octet-stream', 'x-filename': filename, ...headers },
  });
}

async function accepted(s: Server, file: string): Promise<string> {
  const res = await upload(s, readFileSync(file), basename(file));
  assert.equal(res.status, 202, await res.clone().text());
  const body = await res.json() as { id: string; statusUrl: string };
  assert.equal(body.statusUrl, `/api/captures/${body.id}`);
  return body.id;
}

async function waitFinished(s: Server, id: string, timeoutMs = 30_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await (await fetch(`${s.url}/api/captures/${id}`)).json() as Status;
    if (status.status === 'done' || status.status === 'failed') return status;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${status.status} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The real CLI on a file: exit code, report (when 0) and stderr. */
function analyzeCli(file: string): Promise<{ code: number; report?: Report; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'analyze', file, '--format', 'json', '--no-progress'], { maxBuffer: 256 * MiB },
      (err, stdout, stderr) => {
        const failure = err as { code?: number | null; signal?: string | null } | null;
        const code = failure ? (failure.code ?? 1) : 0;
        if (failure?.signal) stderr += `(killed by ${failure.signal})`;
        resolve(code === 0 ? { code, report: JSON.parse(stdout) as Report, stderr } : { code, stderr });
      });
  });
}

/** The server names the upload in source.path (its temp path is private); the CLI names the file it read. */
function asUploaded(report: Report, filename: string): Report {
  return { ...report, source: { ...report.source, path: filename } };
}

const leftovers = (s: Server): string[] => readdirSync(uploadsDir(s.dir));

let main: Server;

test('a capture uploaded, analyzed, and its report equal to the CLI\'s', async () => {
  main = await startServer();
  const [cli, id] = await Promise.all([analyzeCli(SYNSCAN), accepted(main, SYNSCAN)]);
  const status = await waitFinished(main, id);
  assert.equal(status.status, 'done', status.error ?? '');
  assert.equal(status.progress, 100);
  assert.equal(status.filename, 'ppa_synscan.pcapng');
  assert.equal(status.sizeBytes, readFileSync(SYNSCAN).length);
  assert.equal(status.reportUrl, `/api/captures/${id}/report`);

  const res = await fetch(`${main.url}${status.reportUrl}`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(cli.code, 0, cli.stderr);
  assert.deepEqual(await res.json(), asUploaded(cli.report!, 'ppa_synscan.pcapng'));

  const html = await fetch(`${main.url}${status.reportUrl}?format=html`);
  assert.equal(html.status, 200);
  assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(await html.text(), /^<!DOCTYPE html>/i);

  const bad = await fetch(`${main.url}${status.reportUrl}?format=pdf`);
  assert.equal(bad.status, 400);
  assert.match((await bad.json() as ApiError).detail, /json or html/);
  assert.deepEqual(leftovers(main), [], 'the upload and temp report are removed once stored');
});

test('every malformed capture is refused or fails exactly as the CLI does', async () => {
  const files = readdirSync(BAD_PCAPS).filter((f) => f !== 'MANIFEST.tsv').sort();
  assert.ok(files.length >= 12);
  // The CLI runs in parallel; the uploads one after the other (one upload at a time per client).
  const clis = await Promise.all(files.map((name) => analyzeCli(join(BAD_PCAPS, name))));
  const results = [];
  for (const [i, name] of files.entries()) {
    const res = await upload(main, readFileSync(join(BAD_PCAPS, name)), name);
    const body = await res.json() as ApiError & { id?: string };
    results.push({ name, cli: clis[i]!, res, body });
  }
  for (const { name, cli, res, body } of results) {
    if (res.status !== 202) {
      // Refused at upload: only a bad magic (415) or an empty body (400), both of which the CLI rejects too.
      assert.equal(cli.code, 2, name);
      if (name === 'empty.pcap') assert.equal(res.status, 400, name);
      else {
        assert.equal(res.status, 415, name);
        assert.match(body.detail, /de ad be ef/, name);
        assert.match(cli.stderr, /magic 0xdeadbeef/);
      }
      continue;
    }
    const status = await waitFinished(main, body.id!);
    const report = await fetch(`${main.url}/api/captures/${body.id}/report`);
    if (cli.code === 0) {
      // The reader tolerates these (truncated tail, caplen quirks, gzip): a report, as from the CLI.
      assert.equal(status.status, 'done', `${name}: ${status.error}`);
      assert.deepEqual(await report.json(), asUploaded(cli.report!, name), name);
      // The reader's reason is still given: the warnings the CLI prints (e.g. cut short at byte offset N).
      const cliWarnings = cli.stderr.split('\n').filter((l) => l.startsWith('pcap-analyzer: warning: ')).map((l) => l.slice('pcap-analyzer: warning: '.length));
      assert.deepEqual((status as unknown as { warnings: string[] }).warnings, cliWarnings, name);
    } else {
      assert.equal(status.status, 'failed', `${name}: CLI said ${cli.code} ${cli.stderr}`);
      const reason = cli.stderr.trim().replace(/^pcap-analyzer: /, '');
      assert.equal(status.error, reason, name);
      assert.equal(report.status, 422, name);
      assert.deepEqual(await report.json(), { error: 'analysis failed', detail: reason }, name);
    }
  }
  const refused = results.filter((r) => r.res.status !== 202).map((r) => r.name);
  assert.deepEqual(refused, ['bad_magic.pcap', 'empty.pcap']);
  const failed = results.filter((r) => r.res.status === 202 && r.cli.code !== 0).map((r) => r.name);
  assert.deepEqual(failed, ['caplen_ffffffff.pcap', 'pcapng_block_len_huge.pcapng', 'pcapng_block_len_mismatch.pcapng']);
  assert.deepEqual(leftovers(main), []);
});

test('a refused upload leaves no file, even when refused before its file was opened', async () => {
  // An empty body or a bad magic is refused within the first chunk, often before the
  // asynchronous open of the upload file has completed; the removal must wait for it.
  // Sequential (one upload at a time per client), many times, to hit the open still in flight.
  for (let i = 0; i < 60; i += 1) {
    const res = await upload(main, i % 2 === 0 ? Buffer.alloc(0) : Buffer.from('GET / HTTP/1.1'), 'refused.pcap');
    assert.equal(res.status, i % 2 === 0 ? 400 : 415);
    await res.arrayBuffer();
  }
  assert.deepEqual(leftovers(main), []);
});

test('a non-capture body is refused from its first bytes; multipart is refused unread', async () => {
  const res = await upload(main, Buffer.from('<html><body>hello</body></html>'), 'page.html');
  assert.equal(res.status, 415);
  const body = await res.json() as ApiError;
  assert.equal(body.error, 'not a capture file');
  assert.match(body.detail, /3c 68 74 6d 6c 3e 3c 62 "<html><b"/);

  const form = await fetch(`${main.url}/api/captures`, { method: 'POST', body: new FormData() });
  assert.equal(form.status, 415);
  assert.match((await form.json() as ApiError).detail, /multipart\/form-data is not accepted/);

  // No Content-Type at all is fine (raw bytes), and the name comes from ?filename=, sanitized.
  const raw = await fetch(`${main.url}/api/captures?filename=${encodeURIComponent('../../x/evil\u0007\u202ename.pcapng')}`, { method: 'POST', body: new Uint8Array(readFileSync(SMALL)) });
  assert.equal(raw.status, 202);
  const status = await waitFinished(main, (await raw.json() as { id: string }).id);
  assert.equal(status.status, 'done');
  assert.equal(status.filename, 'evilname.pcapng');
});

test('unknown ids are 404 with { error, detail }', async () => {
  for (const path of ['/api/captures/00000000-0000-4000-8000-000000000000', '/api/captures/nope', '/api/captures/nope/report']) {
    const res = await fetch(`${main.url}${path}`);
    assert.equal(res.status, 404, path);
    const body = await res.json() as ApiError;
    assert.equal(body.error, 'not found');
    assert.ok(body.detail);
  }
  assert.equal((await fetch(`${main.url}/api/captures/nope`, { method: 'DELETE' })).status, 404);
});

test('DELETE removes the job, its report and its file', async () => {
  const id = await accepted(main, SMALL);
  assert.equal((await waitFinished(main, id)).status, 'done');
  assert.ok(existsSync(reportPath(main.dir, id, 'json')) && existsSync(reportPath(main.dir, id, 'html')));
  const del = await fetch(`${main.url}/api/captures/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assert.equal((await fetch(`${main.url}/api/captures/${id}`)).status, 404);
  assert.equal((await fetch(`${main.url}/api/captures/${id}/report`)).status, 404);
  assert.ok(!existsSync(reportPath(main.dir, id, 'json')) && !existsSync(reportPath(main.dir, id, 'html')));
  assert.equal(await main.store.job(id), null);
  assert.equal((await fetch(`${main.url}/api/captures/${id}`, { method: 'DELETE' })).status, 404);
});

interface RawAnswer { status: number; body: string; sentWhenAnswered: number; headers: http.IncomingHttpHeaders }

/**
 * Streams `total` bytes (a pcap header, then zeros) in `chunk`-sized pieces every
 * `delayMs`, and records how much was sent when the answer came. With
 * `contentLength`, declares it and sends nothing until answered.
 */
function rawUpload(s: Server, total: number, options: { chunk?: number; delayMs?: number; contentLength?: number }): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' };
    if (options.contentLength !== undefined) headers['content-length'] = options.contentLength;
    const req = http.request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/api/captures', headers });
    let sent = 0;
    let answered = false;
    req.on('error', (err) => { if (!answered) reject(err); }); // EPIPE / ECONNRESET after the answer are expected
    req.on('response', (res) => {
      answered = true;
      const sentWhenAnswered = sent;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => { body += text; });
      res.on('end', () => { req.destroy(); resolve({ status: res.statusCode ?? 0, body, sentWhenAnswered, headers: res.headers }); });
    });
    if (options.contentLength !== undefined) { req.flushHeaders(); return; }
    const size = options.chunk ?? 64 * 1024;
    const first = Buffer.alloc(size);
    first.writeUInt32BE(0xa1b2c3d4, 0);
    const rest = Buffer.alloc(size);
    void (async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
      while (sent < total && !answered) {
        const piece = sent === 0 ? first : rest;
        await new Promise<void>((done) => req.write(piece, () => done()));
        sent += piece.length;
        await sleep(options.delayMs ?? 10);
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
      if (!answered) req.end();
    })().catch(() => { /* the socket closed under the writer: the answer decides */ });
  });
}

test('an upload over maxUploadSizeMB is cut off with 413 while streaming, and at once by Content-Length', async () => {
  const s = await startServer({ maxUploadSizeMB: 1 });
  const streamed = await rawUpload(s, 5 * MiB, { chunk: 64 * 1024, delayMs: 10 });
  assert.equal(streamed.status, 413);
  assert.equal(streamed.headers['connection'], 'close');
  assert.ok(streamed.sentWhenAnswered < 5 * MiB, `answered only after ${streamed.sentWhenAnswered} bytes`);
  assert.ok(streamed.sentWhenAnswered <= 3 * MiB, `answered late, after ${streamed.sentWhenAnswered} bytes`);
  assert.match((JSON.parse(streamed.body) as ApiError).detail, /exceeds the 1 MiB limit/);

  const declared = await rawUpload(s, 5 * MiB, { contentLength: 5 * MiB });
  assert.equal(declared.status, 413);
  assert.equal(declared.sentWhenAnswered, 0);
  assert.match((JSON.parse(declared.body) as ApiError).detail, /Content-Length 5242880 exceeds the 1 MiB limit/);

  // The partial file and the slot go once the refused request's stream has closed: waited for, not slept on.
  for (const deadline = Date.now() + 20_000; (leftovers(s).length > 0 || s.queue.stats().uploading > 0) && Date.now() < deadline;) await sleep(20);
  assert.deepEqual(leftovers(s), [], 'the partial file is removed');
  assert.deepEqual(s.queue.stats(), { active: 0, waiting: 0, uploading: 0, max: 50 }, 'the queue slot is given back');
});

test('with maxQueueSize 5 and slow analyses, the sixth upload gets 503; DELETE stops queued and running ones', async () => {
  const s = await startServer({ maxQueueSize: 5 });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await accepted(s, SLOW));
  const sixth = await upload(s, readFileSync(SLOW), 'sixth.pcap.gz');
  assert.equal(sixth.status, 503);
  assert.equal(sixth.headers.get('retry-after'), '30');
  assert.equal((await sixth.json() as ApiError).error, 'analysis queue full');
  assert.deepEqual(s.queue.stats(), { active: 1, waiting: 4, uploading: 0, max: 5 });
  assert.equal(s.queue.outcomes.rejected, 1);

  const pending = await fetch(`${s.url}/api/captures/${ids[4]}/report`);
  assert.equal(pending.status, 409);
  assert.match((await pending.json() as ApiError).detail, /queued/);

  // The running one (whichever upload finished first) reports progress: the analysis takes ~2-3 s,
  // the first update comes within ~0.3 s.
  let seen = 0;
  for (let i = 0; i < 100 && seen === 0; i++) {
    const statuses = await Promise.all(ids.map(async (id) => await (await fetch(`${s.url}/api/captures/${id}`)).json() as Status));
    assert.deepEqual(statuses.map((st) => st.status).sort(), ['queued', 'queued', 'queued', 'queued', 'running']);
    seen = statuses.find((st) => st.status === 'running')!.progress;
    if (seen === 0) await sleep(20);
  }
  assert.ok(seen > 0 && seen < 100, `progress while running: ${seen}`);

  for (const id of ids) assert.equal((await fetch(`${s.url}/api/captures/${id}`, { method: 'DELETE' })).status, 204);
  for (const id of ids) assert.equal((await fetch(`${s.url}/api/captures/${id}`)).status, 404);
  assert.deepEqual(s.queue.stats(), { active: 0, waiting: 0, uploading: 0, max: 5 });
  assert.equal(s.queue.outcomes.cancelled, 5, 'the running analysis was stopped too, not waited for');
  assert.deepEqual(leftovers(s), []);
});

test('an analysis over analysisTimeoutSeconds is killed and the job fails', async () => {
  const s = await startServer({ analysisTimeoutSeconds: 1 });
  const status = await waitFinished(s, await accepted(s, slowerCapture()));
  assert.equal(status.status, 'failed');
  assert.equal(status.error, 'analysis took longer than 1 s');
  assert.equal(s.queue.outcomes.timeout, 1);
  const report = await fetch(`${s.url}/api/captures/${status.id}/report`);
  assert.equal(report.status, 422);
  assert.deepEqual(leftovers(s), []);
});

test('an analysis over its heap limit fails with a clear reason', async () => {
  // The analysis keeps its tables off the JS heap (typed arrays sized by memory.budgetMB), so even the
  // 670 MB inflated bomb completes within 8 MiB of heap; 6 MiB is below what reading and analyzing need.
  const s = await startServer({ analysisMemoryMB: 6 });
  const status = await waitFinished(s, await accepted(s, SLOW));
  assert.equal(status.status, 'failed');
  assert.equal(status.error, 'analysis ran out of memory (heap limit 6 MiB)');
  assert.equal(s.queue.outcomes.failed, 1);
  assert.deepEqual(leftovers(s), []);
});

test('uploads over uploadsPerMinute get 429 with Retry-After', async () => {
  const s = await startServer({ uploadsPerMinute: 2 });
  await accepted(s, SMALL);
  await accepted(s, SMALL);
  const third = await upload(s, readFileSync(SMALL), 'third.pcapng');
  assert.equal(third.status, 429);
  const retry = Number(third.headers.get('retry-after'));
  assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  assert.equal((await third.json() as ApiError).error, 'too many uploads');
  await s.queue.idle();
});

test('an expired upload is removed by sweepExpired', async () => {
  const s = await startServer({ reportTtlHours: 0.001 }); // 3.6 s
  const id = await accepted(s, SMALL);
  assert.equal((await waitFinished(s, id)).status, 'done');
  assert.equal(await sweepExpired(s.store, s.dir, new Date(), 10), 0, 'not expired yet');
  // Five seconds on instead of waiting them out.
  assert.equal(await sweepExpired(s.store, s.dir, new Date(Date.now() + 5000), 10), 1);
  assert.equal((await fetch(`${s.url}/api/captures/${id}`)).status, 404);
  assert.ok(!existsSync(reportPath(s.dir, id, 'json')), 'the report file is gone too');
});

test('recover(): a job left running fails, a queued one whose file survived runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-recover-'));
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'test.db') });
  try {
    mkdirSync(uploadsDir(dir), { recursive: true });
    const now = new Date().toISOString();
    const job = (id: string, status: CaptureJob['status']): CaptureJob => ({
      id, status, filename: 'x.pcapng', sizeBytes: 1, progress: 0, error: null, warnings: [], createdAt: now,
      startedAt: status === 'running' ? now : null, finishedAt: null, expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    });
    const running = '11111111-1111-4111-8111-111111111111';
    const queued = '22222222-2222-4222-8222-222222222222';
    const lost = '33333333-3333-4333-8333-333333333333';
    for (const [id, status] of [[running, 'running'], [queued, 'queued'], [lost, 'queued']] as const) await store.createJob(job(id, status));
    copyFileSync(SMALL, uploadPath(dir, running));
    copyFileSync(SMALL, uploadPath(dir, queued));
    const queue = new AnalysisQueue({ store, config: DEFAULT_CONFIG.collector, dataDir: dir, logger: Fastify({ logger: false }).log });
    assert.deepEqual(await queue.recover(), { requeued: 1, failed: 2 });
    await queue.idle();
    assert.equal((await store.job(running))?.error, 'collector restarted during analysis');
    assert.equal((await store.job(lost))?.status, 'failed');
    assert.equal((await store.job(queued))?.status, 'done');
    assert.ok(existsSync(reportPath(dir, queued, 'json')));
    assert.deepEqual(readdirSync(uploadsDir(dir)), []);
    await queue.close();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
