/**
 * The upload API's edges, in process over real HTTP (the plugin in a small
 * Fastify app, a real SQLite store and queue): the size limit at exactly the
 * limit and one byte over (declared and streamed), short and empty bodies, the
 * file name from each place a client may put it, status and report answers,
 * and the pure helpers (file name sanitizing, rate-limit keys and windows).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { CollectorConfig } from '../common/config.js';
import { sweepExpired } from '../collector/uploads/expiry.js';
import Database from 'better-sqlite3';
import { reportPath, uploadPath, uploadsDir } from '../collector/uploads/queue.js';
import { clientKey, RateLimiter } from '../collector/http/rate-limit.js';
import { rejectedUploadsPerMinute, sanitizeFilename } from '../collector/uploads/routes.js';
import { closeUploadServers, startUploadServer, type UploadServer } from './helpers/upload-server.js';
import { BAD_PCAPS, REPO_ROOT } from './helpers/paths.js';

type Server = UploadServer;
after(closeUploadServers);
const startServer = (overrides: Partial<CollectorConfig> = {}): Promise<Server> => startUploadServer({ prefix: 'pcap-upload-routes-' }, overrides);

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A POST with the body sent in chunks and no Content-Length (Transfer-Encoding: chunked), or with one. */
function post(s: Server, path: string, chunks: Buffer[], headers: Record<string, string> = {}, declare = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const req = http.request({ host: '127.0.0.1', port: s.port, path, method: 'POST', headers: { 'content-type': 'application/octet-stream', ...(declare ? { 'content-length': String(total) } : {}), ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    // A refusal closes the connection while we may still be writing: the answer is what counts.
    req.on('error', (err) => { if (!(err as NodeJS.ErrnoException).code?.startsWith('EPIPE') && (err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err); });
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** A body of `size` bytes that starts with the pcap magic. */
function pcapBody(size: number): Buffer {
  const b = Buffer.alloc(size, 0x41);
  Buffer.from([0xa1, 0xb2, 0xc3, 0xd4]).copy(b);
  return b;
}

const json = (a: Answer): { error: string; detail: string } => JSON.parse(a.body) as { error: string; detail: string };
const LIMIT = Math.floor(0.01 * 1024 * 1024); // maxUploadSizeMB 0.01: 10,485 bytes

test('upload size: exactly the limit is accepted, one byte over is refused, declared or streamed', async () => {
  const s = await startServer({ maxUploadSizeMB: 0.01 });
  const at = await post(s, '/api/captures', [pcapBody(LIMIT)], {}, true);
  assert.equal(at.status, 202, at.body);
  const over = await post(s, '/api/captures', [pcapBody(LIMIT + 1)], {}, true);
  assert.equal(over.status, 413);
  assert.deepEqual(json(over), { error: 'upload too large', detail: `Content-Length ${LIMIT + 1} exceeds the 0.01 MiB limit` });
  assert.equal(over.headers['connection'], 'close');

  const body = pcapBody(LIMIT);
  const streamedAt = await post(s, '/api/captures', [body.subarray(0, 5000), body.subarray(5000)]);
  assert.equal(streamedAt.status, 202, streamedAt.body);
  const { id } = JSON.parse(streamedAt.body) as { id: string };
  const status = JSON.parse((await (await fetch(`${s.url}/api/captures/${id}`)).text()) as string) as { sizeBytes: number };
  assert.equal(status.sizeBytes, LIMIT);

  const streamedOver = await post(s, '/api/captures', [body.subarray(0, 5000), body.subarray(5000), Buffer.from('x')]);
  assert.equal(streamedOver.status, 413);
  assert.deepEqual(json(streamedOver), { error: 'upload too large', detail: `the upload exceeds the 0.01 MiB limit; stopped reading after ${LIMIT + 1} bytes` });
});

test('upload bodies: empty, too short for a magic, gzip start, and the magic described', async () => {
  const s = await startServer();
  const empty = await post(s, '/api/captures', []);
  assert.equal(empty.status, 400);
  assert.deepEqual(json(empty), { error: 'empty upload', detail: 'the request body is empty: send the capture file as the body' });
  assert.match(String(empty.headers['content-type']), /^application\/json; charset=utf-8/);

  const one = await post(s, '/api/captures', [Buffer.from('A')]);
  assert.equal(one.status, 415);
  assert.deepEqual(json(one), { error: 'not a capture file', detail: 'the body starts with 41 "A" (only 1 byte), which is neither a pcap (a1b2c3d4, a1b23c4d, a1b2cd34 or byte-swapped), pcapng (0a0d0d0a) nor gzip (1f8b) magic' });
  const three = await post(s, '/api/captures', [Buffer.from([0x00, 0x7f, 0x20])]);
  assert.match(json(three).detail, /^the body starts with 00 7f 20 "\.\. " \(only 3 bytes\), which/);
  const text = await post(s, '/api/captures', [Buffer.from('GET / HTTP/1.1\r\n')]);
  assert.match(json(text).detail, /^the body starts with 47 45 54 20 2f 20 48 54 "GET \/ HT", which/, 'eight bytes shown, no count');
  // Split across chunks: the magic is read from the first four bytes however they arrive.
  const split = await post(s, '/api/captures', [Buffer.from([0x0a]), Buffer.from([0x0d, 0x0d]), Buffer.from([0x0a, 0, 0, 0, 0])]);
  assert.equal(split.status, 202, split.body);
  const gzipStart = await post(s, '/api/captures', [Buffer.from([0x1f, 0x8b])]);
  assert.equal(gzipStart.status, 202, 'two bytes of a gzip start are accepted (the analysis reports it cut short)');
  const notGzip = await post(s, '/api/captures', [Buffer.from([0x1f, 0x8c])]);
  assert.equal(notGzip.status, 415);
  for (const magic of [[0xa1, 0xb2, 0xc3, 0xd4], [0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d], [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0xcd, 0x34], [0x34, 0xcd, 0xb2, 0xa1], [0x0a, 0x0d, 0x0d, 0x0a]]) {
    const r = await post(s, '/api/captures', [Buffer.from([...magic, 0, 0])]);
    assert.equal(r.status, 202, `magic ${magic.map((b) => b.toString(16)).join(' ')}: ${r.body}`);
  }
  const multipart = await post(s, '/api/captures', [pcapBody(10)], { 'content-type': 'Multipart/Form-Data; boundary=x' });
  assert.equal(multipart.status, 415);
  assert.deepEqual(json(multipart), { error: 'unsupported content type', detail: 'multipart/form-data is not accepted: send the capture file itself as the request body (Content-Type: application/octet-stream)' });
});

test('upload file names: X-Filename (percent-encoded), ?name= or ?filename=, Content-Disposition, sanitized', async () => {
  const s = await startServer();
  const nameOf = async (path: string, headers: Record<string, string>): Promise<string> => {
    const r = await post(s, path, [pcapBody(24)], headers);
    assert.equal(r.status, 202, r.body);
    const { id, statusUrl } = JSON.parse(r.body) as { id: string; statusUrl: string };
    assert.equal(r.headers['location'], statusUrl);
    assert.equal(statusUrl, `/api/captures/${id}`);
    return ((await (await fetch(`${s.url}${statusUrl}`)).json()) as { filename: string }).filename;
  };
  assert.equal(await nameOf('/api/captures', { 'x-filename': 'caf%C3%A9.pcap' }), 'café.pcap');
  assert.equal(await nameOf('/api/captures', { 'x-filename': '100%.pcap' }), '100%.pcap', 'a bad escape is kept as sent');
  assert.equal(await nameOf('/api/captures?filename=q.pcap', {}), 'q.pcap');
  // curl --data-binary @x.pcap 'http://collector/api/captures?name=x.pcap': the name the README gives curl.
  assert.equal(await nameOf('/api/captures?name=curl.pcap', {}), 'curl.pcap');
  assert.equal(await nameOf('/api/captures?name=n.pcap&filename=f.pcap', {}), 'n.pcap', '?name= before ?filename=');
  assert.equal(await nameOf('/api/captures?name=&filename=f.pcap', {}), 'f.pcap', 'an empty ?name= is no name');
  assert.equal(await nameOf(`/api/captures?name=${encodeURIComponent('../../etc/bell\u0007\u202ex.pcap')}`, {}), 'bellx.pcap', 'sanitized: no path, no controls');
  assert.equal(await nameOf(`/api/captures?name=${'n'.repeat(300)}`, {}), 'n'.repeat(200), 'bounded');
  assert.equal(await nameOf('/api/captures?name=q.pcap', { 'content-disposition': 'attachment; filename="cd.pcap"' }), 'q.pcap', '?name= before Content-Disposition');
  assert.equal(await nameOf('/api/captures?filename=q.pcap', { 'x-filename': 'h.pcap' }), 'h.pcap', 'the header comes first');
  assert.equal(await nameOf('/api/captures', { 'content-disposition': 'attachment; filename="plain name.pcap"' }), 'plain name.pcap');
  assert.equal(await nameOf('/api/captures', { 'content-disposition': 'attachment; filename=bare.pcap; size=3' }), 'bare.pcap');
  assert.equal(await nameOf('/api/captures', { 'content-disposition': "attachment; filename*=UTF-8''%E2%82%AC.pcap; filename=\"x.pcap\"" }), '€.pcap');
  assert.equal(await nameOf('/api/captures', { 'content-disposition': "attachment; filename*=UTF-8''%E2%82.pcap; filename=\"fallback.pcap\"" }), 'fallback.pcap');
  assert.equal(await nameOf('/api/captures', { 'content-disposition': 'inline' }), '');
  assert.equal(await nameOf('/api/captures', {}), '');
  assert.equal(await nameOf('/api/captures', { 'x-filename': '..%2F..%2Fetc%2Fpasswd' }), 'passwd');
});

test('sanitizeFilename keeps the last path component, printable, at most 200 characters', () => {
  assert.equal(sanitizeFilename('a/b/c.pcap'), 'c.pcap');
  assert.equal(sanitizeFilename('C:\\dir\\d.pcap'), 'd.pcap');
  assert.equal(sanitizeFilename('  spaced.pcap  '), 'spaced.pcap');
  assert.equal(sanitizeFilename('bell\u0007\u202eevil.pcap'), 'bellevil.pcap');
  assert.equal(sanitizeFilename('..'), '');
  assert.equal(sanitizeFilename('x/.'), '');
  assert.equal(sanitizeFilename('...'), '...');
  assert.equal(sanitizeFilename(''), '');
  assert.equal(sanitizeFilename('é'.repeat(250)), 'é'.repeat(200));
  assert.equal(sanitizeFilename(`${'a'.repeat(199)} b`), `${'a'.repeat(199)}`, 'trimmed again after the cut');
  assert.equal(sanitizeFilename('😀'.repeat(201)).length, 400, 'code points, not UTF-16 units');
});

test('clientKey: IPv4 per address, IPv4-mapped as IPv4, IPv6 per /64', () => {
  assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('::FFFF:192.0.2.8'), '192.0.2.8');
  assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:0db8:0001:0002:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('1:2:3::'), '1:2:3:0::/64');
  assert.equal(clientKey('1:2:3:4:5::'), '1:2:3:4::/64');
  assert.equal(clientKey('::2:3:4:5:6:7:8'), '0:2:3:4::/64');
});

test('RateLimiter: a sliding window per client, the wait in whole seconds, the oldest clients forgotten', () => {
  const off = new RateLimiter(0, 60_000, 10);
  for (let i = 0; i < 5; i++) assert.equal(off.hit('a', 1000), 0, 'limit 0: no limit');

  const r = new RateLimiter(2, 60_000, 2);
  assert.equal(r.hit('a', 0), 0);
  assert.equal(r.hit('a', 10_000), 0);
  assert.equal(r.hit('a', 20_000), 40, 'the first hit leaves the window at 60 s');
  assert.equal(r.hit('a', 59_500), 1, 'never less than 1 s');
  assert.equal(r.hit('a', 60_000), 0, 'the hit at 0 s is out of the window at 60 s');
  assert.equal(r.hit('a', 60_001), 10, 'refused hits are not counted');
  assert.equal(r.hit('b', 0), 0);
  assert.equal(r.hit('b', 0), 0);
  // A third client forgets the least recently seen: 'a' was seen after 'b'... then 'b' again.
  assert.equal(r.hit('b', 61_000), 0, 'b\'s hits at 0 s have left the window');
  assert.equal(r.hit('c', 61_000), 0);
  assert.equal(r.hit('a', 61_000), 0, 'a was forgotten (least recently seen), so it starts afresh');
  assert.equal(r.hit('a', 61_000), 0);
  assert.equal(r.hit('a', 61_000), 60);
  assert.equal(r.hit('b', 61_000), 0, 'b was forgotten when a came back');
});

test('status and report answers: fields, formats, unfinished, failed and unknown jobs', async () => {
  const s = await startServer({ reportTtlHours: 2 });
  const r = await post(s, '/api/captures', [Buffer.from([0x1f, 0x8b])], { 'x-filename': 'cut.pcap.gz' });
  const { id } = JSON.parse(r.body) as { id: string };
  const status = await (await fetch(`${s.url}/api/captures/${id}`)).json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(status), ['id', 'status', 'progress', 'filename', 'sizeBytes', 'error', 'warnings', 'createdAt', 'startedAt', 'finishedAt', 'expiresAt', 'reportUrl']);
  assert.equal(status['filename'], 'cut.pcap.gz');
  assert.equal(status['sizeBytes'], 2);
  assert.equal(Date.parse(status['expiresAt'] as string) - Date.parse(status['createdAt'] as string), 2 * 3600_000);

  const badFormat = await fetch(`${s.url}/api/captures/${id}/report?format=pdf`);
  assert.equal(badFormat.status, 400);
  assert.deepEqual(await badFormat.json(), { error: 'bad format', detail: 'format must be json or html, not "pdf"' });

  // Wait for the analysis of two bytes of gzip to fail.
  let final: Record<string, unknown> = status;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && final['status'] !== 'failed' && final['status'] !== 'done';) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    final = await (await fetch(`${s.url}/api/captures/${id}`)).json() as Record<string, unknown>;
  }
  assert.equal(final['status'], 'failed');
  assert.equal(final['reportUrl'], null);
  const failed = await fetch(`${s.url}/api/captures/${id}/report`);
  assert.equal(failed.status, 422);
  const failedBody = await failed.json() as { error: string; detail: string };
  assert.equal(failedBody.error, 'analysis failed');
  assert.equal(failedBody.detail, final['error']);

  const unknown = await fetch(`${s.url}/api/captures/${'x'.repeat(100)}`);
  assert.equal(unknown.status, 404);
  assert.deepEqual(await unknown.json(), { error: 'not found', detail: `no capture "${'x'.repeat(64)}" (unknown, deleted, or expired)` });
  const unknownUuid = '00000000-0000-4000-8000-000000000000';
  assert.equal((await fetch(`${s.url}/api/captures/${unknownUuid}/report`)).status, 404);
  assert.equal((await fetch(`${s.url}/api/captures/${unknownUuid}`, { method: 'DELETE' })).status, 404);
  assert.equal((await fetch(`${s.url}/api/captures/${id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${s.url}/api/captures/${id}`)).status, 404);
});

test('a full queue answers 503 with Retry-After 30; too many uploads 429 with the wait', async () => {
  const full = await startServer({ maxQueueSize: 0 });
  const r = await post(full, '/api/captures', [pcapBody(24)]);
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '30');
  assert.deepEqual(json(r), { error: 'analysis queue full', detail: '0 of 0 analyses queued or running; retry later' });

  const limited = await startServer({ uploadsPerMinute: 1 });
  assert.equal((await post(limited, '/api/captures', [pcapBody(24)])).status, 202);
  const second = await post(limited, '/api/captures', [pcapBody(24)]);
  assert.equal(second.status, 429);
  const wait = Number(second.headers['retry-after']);
  assert.ok(wait >= 59 && wait <= 60, `Retry-After ${wait}`);
  assert.equal(second.headers['connection'], 'close');
  assert.deepEqual(json(second), { error: 'too many uploads', detail: `at most 1 upload per minute per client; retry in ${wait} s` });
});

test('rejected uploads do not count against uploadsPerMinute; a separate, larger bound stops a flood of them', async () => {
  assert.equal(rejectedUploadsPerMinute(5), 30, 'the default: 30 rejected attempts a minute');
  assert.equal(rejectedUploadsPerMinute(1), 30);
  assert.equal(rejectedUploadsPerMinute(20), 120, '6 times uploadsPerMinute when that is more');

  const s = await startServer({ uploadsPerMinute: 2, maxUploadSizeMB: 0.01 });
  // A user trying wrong files: each kind of refusal for what was sent, none of them counted against the 2 uploads.
  assert.equal((await post(s, '/api/captures', [Buffer.from('GET / HTTP/1.1\r\n')])).status, 415, 'not a capture');
  assert.equal((await post(s, '/api/captures', [])).status, 400, 'empty');
  assert.equal((await post(s, '/api/captures', [pcapBody(LIMIT + 1)])).status, 413, 'too large, streamed');
  assert.equal((await post(s, '/api/captures', [pcapBody(LIMIT + 1)], {}, true)).status, 413, 'too large, declared');
  assert.equal((await post(s, '/api/captures', [pcapBody(10)], { 'content-type': 'multipart/form-data; boundary=x' })).status, 415, 'multipart');
  assert.equal((await post(s, '/api/captures', [pcapBody(24)])).status, 202, 'then a good file is accepted');
  assert.equal((await post(s, '/api/captures', [pcapBody(24)])).status, 202, 'and a second');
  const third = await post(s, '/api/captures', [pcapBody(24)]);
  assert.equal(third.status, 429, 'the third accepted upload of the minute is one too many');
  assert.equal(json(third).error, 'too many uploads');

  // A client flooding with bad bodies: refused with 415 up to the bound, then 429 before a byte is read.
  const flood = await startServer({ uploadsPerMinute: 2 });
  const bad = Buffer.from('not a capture at all');
  for (let i = 0; i < 30; i++) assert.equal((await post(flood, '/api/captures', [bad])).status, 415, `rejected attempt ${i + 1}`);
  const over = await post(flood, '/api/captures', [bad]);
  assert.equal(over.status, 429);
  const wait = Number(over.headers['retry-after']);
  assert.ok(wait >= 59 && wait <= 60, `Retry-After ${wait}`);
  assert.deepEqual(json(over), { error: 'too many rejected uploads', detail: `30 rejected uploads within a minute from this client; retry in ${wait} s` });
  const good = await post(flood, '/api/captures', [pcapBody(24)]);
  assert.equal(good.status, 429, 'the flooding client waits out the minute, good file or not');
  assert.equal(flood.queue.stats().uploading, 0, 'no queue slot held by the refusals');
});

test('sweepExpired with the queue stops an expired analysis still running, then removes its job and files', async () => {
  const s = await startServer();
  const slow = readFileSync(join(BAD_PCAPS, 'gzip_bomb.pcap.gz')); // an analysis of about 3 s
  const r = await post(s, '/api/captures', [slow], { 'x-filename': 'slow.pcap.gz' });
  assert.equal(r.status, 202, r.body);
  const { id } = JSON.parse(r.body) as { id: string };
  for (const deadline = Date.now() + 30_000; s.queue.stats().active === 0 && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(s.queue.stats().active, 1, 'the analysis is running');
  assert.equal((await s.store.job(id))?.status, 'running');
  const later = new Date(Date.now() + 48 * 3600_000);
  assert.equal(await sweepExpired(s.store, s.dir, later, 100, s.queue), 1);
  assert.equal(s.queue.stats().active, 0, 'the analysis was stopped');
  assert.equal(await s.store.job(id), null);
  assert.equal(existsSync(uploadPath(s.dir, id)), false);
  assert.equal(existsSync(reportPath(s.dir, id, 'json')), false);
  assert.equal(existsSync(reportPath(s.dir, id, 'html')), false);
  assert.equal((await fetch(`${s.url}/api/captures/${id}`)).status, 404);
});

/** An upload whose body is sent but not ended: the test decides when (or whether) more comes. */
function openUpload(s: Server, first: Buffer): { req: http.ClientRequest; answer: Promise<Answer> } {
  let req!: http.ClientRequest;
  const answer = new Promise<Answer>((resolve, reject) => {
    req = http.request({ host: '127.0.0.1', port: s.port, path: '/api/captures', method: 'POST', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') reject(err); });
  });
  req.write(first);
  return { req, answer };
}

async function until(what: string, condition: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await condition());) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Files in the uploads directory (partial uploads, accepted captures). */
const uploadFiles = (s: Server): string[] => readdirSync(uploadsDir(s.dir)).filter((f) => f.endsWith('.cap'));

test('a stalled upload is cut off after uploadIdleSeconds (408); meanwhile its client gets 429; its file and queue slot are freed', async () => {
  const s = await startServer({ uploadIdleSeconds: 1.5, uploadTimeoutSeconds: 60, maxQueueSize: 1 });
  const stalled = openUpload(s, pcapBody(100));
  try {
    await until('the upload to stream', () => s.queue.stats().uploading === 1 && uploadFiles(s).length === 1);
    const second = await post(s, '/api/captures', [pcapBody(24)]);
    assert.equal(second.status, 429);
    assert.equal(second.headers['retry-after'], '5');
    assert.equal(second.headers['connection'], 'close');
    assert.deepEqual(json(second), { error: 'upload in progress', detail: 'this client is already sending an upload: one at a time per client' });
    const a = await stalled.answer;
    assert.equal(a.status, 408);
    assert.equal(a.headers['connection'], 'close');
    assert.deepEqual(json(a), { error: 'upload stalled', detail: 'no data for 1.5 s (collector.uploadIdleSeconds)' });
  } finally { stalled.req.destroy(); }
  assert.deepEqual(uploadFiles(s), [], 'the partial file is removed before the answer');
  assert.equal(s.queue.stats().uploading, 0);
  const third = await post(s, '/api/captures', [pcapBody(24)]);
  assert.equal(third.status, 202, `the client may upload again and the one queue slot is free: ${third.body}`);
});

test('an upload still trickling at uploadTimeoutSeconds is cut off (408), however often it sends', async () => {
  const s = await startServer({ uploadIdleSeconds: 30, uploadTimeoutSeconds: 1 });
  const started = Date.now();
  const slow = openUpload(s, pcapBody(8));
  const trickle = setInterval(() => slow.req.write(Buffer.from('x')), 100);
  try {
    const a = await slow.answer;
    assert.equal(a.status, 408);
    assert.deepEqual(json(a), { error: 'upload too slow', detail: 'the upload did not finish within 1 s (collector.uploadTimeoutSeconds)' });
    assert.ok(Date.now() - started >= 900, `cut off after ${Date.now() - started} ms`);
  } finally { clearInterval(trickle); slow.req.destroy(); }
  assert.deepEqual(uploadFiles(s), []);
  assert.equal(s.queue.stats().uploading, 0);
});

test('a client that goes away mid-upload: its partial file is removed and its slot freed', async () => {
  const s = await startServer({ maxQueueSize: 1 });
  const gone = openUpload(s, pcapBody(1000));
  await until('the upload to stream', () => s.queue.stats().uploading === 1 && uploadFiles(s).length === 1);
  gone.req.destroy();
  await until('the slot to be freed', () => s.queue.stats().uploading === 0);
  await until('the file to be removed', () => uploadFiles(s).length === 0);
  assert.equal((await post(s, '/api/captures', [pcapBody(24)])).status, 202);
});

test('an upload that cannot be stored is a 500 with a request id; one the store refuses leaves no file; both free the slot', async () => {
  const lines: string[] = [];
  const s = await startUploadServer({ prefix: 'pcap-upload-routes-', logStream: { write: (l: string) => { lines.push(l); } } }, { maxQueueSize: 1 });
  rmSync(uploadsDir(s.dir), { recursive: true });
  const r = await post(s, '/api/captures', [pcapBody(24)]);
  assert.equal(r.status, 500);
  const body = JSON.parse(r.body) as { error: string; detail: string; requestId: string };
  assert.equal(body.error, 'internal error');
  assert.equal(body.detail, `see the collector log for request ${body.requestId}`);
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'request failed');
  assert.equal(logged?.['reqId'], body.requestId);
  assert.equal(s.queue.stats().uploading, 0);

  // The store refuses the job (its table is gone): the stored file is removed.
  mkdirSync(uploadsDir(s.dir));
  const db = new Database(join(s.dir, 'test.db'));
  try { db.exec('DROP TABLE capture_jobs'); } finally { db.close(); }
  const refused = await post(s, '/api/captures', [pcapBody(24)]);
  assert.equal(refused.status, 500);
  assert.deepEqual(uploadFiles(s), [], 'no file left without a job');
  assert.equal(s.queue.stats().uploading, 0, 'the slot is freed');
});

test('reports: a finished analysis\'s JSON and HTML streamed as written, 409 while it runs, 404 when a report file is missing; uploads and deletes logged', async () => {
  const lines: string[] = [];
  const s = await startUploadServer({ prefix: 'pcap-upload-routes-', recover: true, logStream: { write: (l: string) => { lines.push(l); } } });
  const logs = (): Array<Record<string, unknown>> => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const sample = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap'));
  const r = await post(s, '/api/captures', [sample], { 'x-filename': 'sample.pcap' });
  assert.equal(r.status, 202, r.body);
  const { id } = JSON.parse(r.body) as { id: string };
  assert.ok(logs().some((l) => l['msg'] === 'capture uploaded' && l['id'] === id && l['filename'] === 'sample.pcap' && l['sizeBytes'] === sample.length));

  // Unfinished: a slow analysis queued behind or running.
  const slow = await post(s, '/api/captures', [readFileSync(join(BAD_PCAPS, 'gzip_bomb.pcap.gz'))]);
  const slowId = (JSON.parse(slow.body) as { id: string }).id;
  const early = await fetch(`${s.url}/api/captures/${slowId}/report`);
  assert.equal(early.status, 409);
  const earlyBody = await early.json() as { error: string; detail: string };
  assert.equal(earlyBody.error, 'analysis not finished');
  assert.match(earlyBody.detail, new RegExp(`^the analysis is (queued|running) \\(\\d+%\\); poll /api/captures/${slowId}$`));
  assert.equal((await fetch(`${s.url}/api/captures/${slowId}`, { method: 'DELETE' })).status, 204);
  assert.ok(logs().some((l) => l['msg'] === 'capture deleted' && l['id'] === slowId));

  let status: Record<string, unknown> = {};
  await until('the analysis', async () => {
    status = await (await fetch(`${s.url}/api/captures/${id}`)).json() as Record<string, unknown>;
    return status['status'] === 'done' || status['status'] === 'failed';
  }, 60_000);
  assert.equal(status['status'], 'done', JSON.stringify(status));
  assert.equal(status['reportUrl'], `/api/captures/${id}/report`);
  for (const [format, type] of [['json', 'application/json; charset=utf-8'], ['html', 'text/html; charset=utf-8']] as const) {
    const file = reportPath(s.dir, id, format);
    const res = await fetch(`${s.url}/api/captures/${id}/report${format === 'json' ? '' : '?format=html'}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), type);
    assert.equal(res.headers.get('content-length'), String(statSync(file).size));
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(readFileSync(file)), `${format}: the file as written`);
  }
  rmSync(reportPath(s.dir, id, 'html'));
  const noHtml = await fetch(`${s.url}/api/captures/${id}/report?format=html`);
  assert.equal(noHtml.status, 404);
  assert.deepEqual(await noHtml.json(), { error: 'not found', detail: 'no HTML report for this capture (see its warnings); the JSON report is at ?format=json' });
  rmSync(reportPath(s.dir, id, 'json'));
  const noJson = await fetch(`${s.url}/api/captures/${id}/report?format=json`);
  assert.equal(noJson.status, 404);
  assert.deepEqual(await noJson.json(), { error: 'not found', detail: 'the report is not on this collector (with several collectors, reports stay with the one that analyzed the upload)' });
});

test('a large upload streams to disk through back-pressure: every byte stored, nothing held back', async () => {
  const s = await startServer({ maxUploadSizeMB: 8, uploadIdleSeconds: 5 });
  const body = pcapBody(6 * 1024 * 1024);
  for (let i = 4; i < body.length; i += 4096) body.writeUInt32BE(i, i); // not all one byte
  const chunks = Array.from({ length: 96 }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
  const r = await post(s, '/api/captures', chunks, {}, true);
  assert.equal(r.status, 202, r.body);
  const { id } = JSON.parse(r.body) as { id: string };
  const status = await (await fetch(`${s.url}/api/captures/${id}`)).json() as { sizeBytes: number };
  assert.equal(status.sizeBytes, body.length);
});
