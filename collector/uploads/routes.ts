/**
 * Capture upload API:
 *
 *   POST   /api/captures               raw capture as the body -> 202 { id, statusUrl }
 *   GET    /api/captures/:id           job status
 *   GET    /api/captures/:id/report    ?format=json (default) | html
 *   DELETE /api/captures/:id           stops the analysis, removes file, job and report
 *
 * The body is never buffered: it streams to <dataDir>/uploads/<id>.cap (mode
 * 0600) while its size and first bytes are checked, so an oversized or
 * non-capture upload is refused after as few bytes as possible. A slow client
 * cannot hold a queue slot: an upload sending nothing for
 * `collector.uploadIdleSeconds`, or still streaming after
 * `collector.uploadTimeoutSeconds`, is cut off with 408; and a client (IPv4
 * address, IPv6 /64) has one upload streaming at a time (429 for a second).
 *
 * Rate limits per client, both checked before a byte is read (429 with
 * Retry-After): accepted uploads (202) count against
 * `collector.uploadsPerMinute`; rejected ones (not a capture, too large,
 * empty, multipart, stalled, cut off) do not, so a user who tries a few wrong
 * files is not locked out, but count against a separate, larger bound of
 * rejected attempts (`rejectedUploadsPerMinute()`), so a client cannot make the
 * collector read an endless stream of refused bodies either. Refusals that are
 * the collector's state (queue full, one upload at a time, disk full) count in
 * neither.
 *
 * The file name (shown on the pages and in the API): `X-Filename`
 * (percent-encoded), `?name=` (or `?filename=`), or `Content-Disposition:
 * attachment; filename=...` (`filename*=UTF-8''...` first), in that order;
 * sanitized by `sanitizeFilename`.
 *
 * Every error is `{ error, detail }`. Uploads and deletes are audited
 * (route config `audit`).
 */
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { CollectorConfig } from '../../common/config.js';
import { plural } from '../../common/wording.js';
import { internalError } from '../http/errors.js';
import { RateLimiter, clientKey } from '../http/rate-limit.js';
import type { CaptureJob, Store } from '../store/types.js';
import { PRIVATE_DIR, PRIVATE_FILE, removeJobFiles, reportPath, uploadPath, uploadsDir, type AnalysisQueue } from './queue.js';

export interface UploadRoutesOptions {
  store: Store;
  queue: AnalysisQueue;
  config: CollectorConfig;
  dataDir: string;
  logger: FastifyBaseLogger;
}

/** Content types named as captures; anything else is accepted too (curl's default form type) except multipart. */
const CAPTURE_TYPES = ['application/octet-stream', 'application/vnd.tcpdump.pcap', 'application/x-pcapng', 'application/gzip'];
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Seconds a client should wait before retrying when the queue is full. */
const QUEUE_RETRY_AFTER = 30;
/** Clients (IP, or IPv6 /64) tracked by the rate limiter at most; the least recently seen are forgotten first. */
const RATE_CLIENTS_MAX = 10_000;
const MiB = 1024 * 1024;
/** Rejected uploads per client per minute at least (see rejectedUploadsPerMinute). */
const REJECTED_PER_MINUTE_MIN = 30;

/**
 * The bound of rejected upload attempts per client and minute: 6 times
 * `uploadsPerMinute`, at least 30 (with the default 5 per minute: 30). Large
 * enough for a user trying wrong files; a flood of refused bodies stops there.
 */
export function rejectedUploadsPerMinute(uploadsPerMinute: number): number {
  return Math.max(REJECTED_PER_MINUTE_MIN, 6 * uploadsPerMinute);
}

export const uploadRoutes: FastifyPluginAsync<UploadRoutesOptions> = async (app, options) => {
  const { store, queue, config, dataDir } = options;
  const log = options.logger;
  const limitBytes = Math.floor(config.maxUploadSizeMB * MiB);
  const timing = { idleMs: config.uploadIdleSeconds * 1000, deadlineMs: config.uploadTimeoutSeconds * 1000 };
  const limiter = new RateLimiter(config.uploadsPerMinute, 60_000, RATE_CLIENTS_MAX);
  const rejectedMax = rejectedUploadsPerMinute(config.uploadsPerMinute);
  const rejectedLimiter = new RateLimiter(rejectedMax, 60_000, RATE_CLIENTS_MAX);
  /** Clients with an upload streaming in now. */
  const uploading = new Set<string>();
  mkdirSync(uploadsDir(dataDir), { recursive: true, mode: PRIVATE_DIR });

  // Hand the raw request stream to the handler: no buffering, no Fastify body limit.
  // The defaults (JSON, text) are removed in this plugin's scope so they cannot buffer an upload either.
  app.removeAllContentTypeParsers();
  const passThrough = (_req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: unknown) => void): void => done(null, payload);
  app.addContentTypeParser(CAPTURE_TYPES, passThrough);
  app.addContentTypeParser('*', passThrough); // also a missing Content-Type

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) return internalError(request, reply, err);
    return sendError(reply, status, 'bad request', err.message);
  });

  app.post('/api/captures', { config: { audit: 'upload' } }, async (request, reply) => {
    // Every refusal below happens before a byte of the body is read; the connection is then
    // closed so Node does not read (and discard) a large body to keep it alive.
    const client = clientKey(request.ip);
    if (uploading.has(client)) {
      reply.header('retry-after', '5').header('connection', 'close');
      return sendError(reply, 429, 'upload in progress', 'this client is already sending an upload: one at a time per client');
    }
    const retryAfter = limiter.retryAfter(client, Date.now());
    if (retryAfter > 0) {
      reply.header('retry-after', String(retryAfter)).header('connection', 'close');
      return sendError(reply, 429, 'too many uploads', `at most ${plural(config.uploadsPerMinute, 'upload')} per minute per client; retry in ${retryAfter} s`);
    }
    const rejectedRetryAfter = rejectedLimiter.retryAfter(client, Date.now());
    if (rejectedRetryAfter > 0) {
      reply.header('retry-after', String(rejectedRetryAfter)).header('connection', 'close');
      return sendError(reply, 429, 'too many rejected uploads',
        `${plural(rejectedMax, 'rejected upload')} within a minute from this client; retry in ${rejectedRetryAfter} s`);
    }
    /** A refusal for what the client sent: counted against the rejected-attempts bound, not the upload quota. */
    const rejected = (): void => { rejectedLimiter.hit(client, Date.now()); };
    const contentType = String(request.headers['content-type'] ?? '').toLowerCase();
    if (contentType.startsWith('multipart/')) {
      rejected();
      reply.header('connection', 'close');
      return sendError(reply, 415, 'unsupported content type',
        `${contentType.split(';')[0]} is not accepted: send the capture file itself as the request body (Content-Type: application/octet-stream)`);
    }
    const declared = request.headers['content-length'] === undefined ? undefined : Number(request.headers['content-length']);
    if (declared !== undefined && declared > limitBytes) {
      rejected();
      reply.header('connection', 'close');
      return sendError(reply, 413, 'upload too large', `Content-Length ${declared} exceeds the ${config.maxUploadSizeMB} MiB limit`);
    }
    if (!queue.tryReserve()) {
      reply.header('retry-after', String(QUEUE_RETRY_AFTER)).header('connection', 'close');
      const s = queue.stats();
      return sendError(reply, 503, 'analysis queue full', `${s.active + s.waiting + s.uploading} of ${s.max} analyses queued or running; retry later`);
    }

    const id = randomUUID();
    request.auditTarget = `capture:${id}`;
    const filename = sanitizeFilename(pickFilename(request));
    const path = uploadPath(dataDir, id);
    let result: Received;
    uploading.add(client);
    try {
      result = request.body instanceof Readable ? await receive(request.body, path, limitBytes, timing) : { kind: 'empty' };
    } catch (err) {
      queue.release();
      throw err;
    } finally {
      uploading.delete(client);
    }
    if (result.kind !== 'ok') {
      queue.release();
      if (result.kind !== 'write-error') rejected();
      reply.header('connection', 'close');
      switch (result.kind) {
        case 'empty': return sendError(reply, 400, 'empty upload', 'the request body is empty: send the capture file as the body');
        case 'too-large': return sendError(reply, 413, 'upload too large', `the upload exceeds the ${config.maxUploadSizeMB} MiB limit; stopped reading after ${result.size} bytes`);
        case 'bad-magic': return sendError(reply, 415, 'not a capture file', describeMagic(result.head));
        case 'idle': return sendError(reply, 408, 'upload stalled', `no data for ${config.uploadIdleSeconds} s (collector.uploadIdleSeconds)`);
        case 'deadline': return sendError(reply, 408, 'upload too slow', `the upload did not finish within ${config.uploadTimeoutSeconds} s (collector.uploadTimeoutSeconds)`);
        case 'aborted': return reply.code(400).send(); // the client is gone; nobody reads this
        case 'write-error':
          if (result.error.code === 'ENOSPC') {
            log.error({ err: result.error, id }, 'could not store an upload');
            return sendError(reply, 507, 'could not store the upload', 'the collector is out of disk space');
          }
          return internalError(request, reply, result.error);
      }
    }

    const created = new Date();
    const job: CaptureJob = {
      id,
      status: 'queued',
      filename,
      sizeBytes: result.size,
      progress: 0,
      error: null,
      warnings: [],
      createdAt: created.toISOString(),
      startedAt: null,
      finishedAt: null,
      expiresAt: new Date(created.getTime() + config.reportTtlHours * 3600_000).toISOString(),
    };
    try {
      await store.createJob(job);
    } catch (err) {
      queue.release();
      await removeQuietly(path);
      throw err;
    }
    queue.enqueue({ id, filename });
    // Only now does the upload count against uploadsPerMinute (one upload streams per client at a time, so the check above still holds).
    limiter.hit(client, Date.now());
    log.info({ id, filename, sizeBytes: result.size }, 'capture uploaded');
    const statusUrl = `/api/captures/${id}`;
    return reply.code(202).header('location', statusUrl).send({ id, statusUrl });
  });

  app.get<{ Params: { id: string } }>('/api/captures/:id', async (request, reply) => {
    const job = await findJob(store, request.params.id);
    if (!job) return notFound(reply, request.params.id);
    return reply.send({
      id: job.id,
      status: job.status,
      progress: job.progress,
      filename: job.filename,
      sizeBytes: job.sizeBytes,
      error: job.error,
      warnings: job.warnings,
      createdAt: job.createdAt,
      startedAt: job.startedAt,
      finishedAt: job.finishedAt,
      expiresAt: job.expiresAt,
      reportUrl: job.status === 'done' ? `/api/captures/${job.id}/report` : null,
    });
  });

  app.get<{ Params: { id: string }; Querystring: { format?: string } }>('/api/captures/:id/report', async (request, reply) => {
    const format = request.query.format ?? 'json';
    if (format !== 'json' && format !== 'html') {
      return sendError(reply, 400, 'bad format', `format must be json or html, not "${format}"`);
    }
    const job = await findJob(store, request.params.id);
    if (!job) return notFound(reply, request.params.id);
    if (job.status === 'failed') return sendError(reply, 422, 'analysis failed', job.error ?? 'unknown reason');
    if (job.status !== 'done') {
      return sendError(reply, 409, 'analysis not finished', `the analysis is ${job.status} (${job.progress}%); poll /api/captures/${job.id}`);
    }
    // The file as the analysis wrote it: streamed, never parsed here.
    const file = reportPath(dataDir, job.id, format);
    const size = await stat(file).then((st) => st.size, () => null);
    if (size === null) {
      if (format === 'html') return sendError(reply, 404, 'not found', 'no HTML report for this capture (see its warnings); the JSON report is at ?format=json');
      return sendError(reply, 404, 'not found', 'the report is not on this collector (with several collectors, reports stay with the one that analyzed the upload)');
    }
    return reply.type(format === 'json' ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8')
      .header('content-length', String(size)).send(createReadStream(file));
  });

  app.delete<{ Params: { id: string } }>('/api/captures/:id', { config: { audit: 'delete' } }, async (request, reply) => {
    request.auditTarget = `capture:${request.params.id.slice(0, 64)}`;
    const job = await findJob(store, request.params.id);
    if (!job) return notFound(reply, request.params.id);
    await queue.cancel(job.id); // waits for its analysis to stop, so nothing writes the job afterwards
    await removeJobFiles(dataDir, job.id);
    await store.deleteJob(job.id);
    log.info({ id: job.id }, 'capture deleted');
    return reply.code(204).send();
  });
};

function sendError(reply: FastifyReply, status: number, error: string, detail: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error, detail });
}

function notFound(reply: FastifyReply, id: string): FastifyReply {
  return sendError(reply, 404, 'not found', `no capture ${JSON.stringify(id.slice(0, 64))} (unknown, deleted, or expired)`);
}

/** Ids are UUIDs; anything else is unknown without asking the store. */
function findJob(store: Store, id: string): Promise<CaptureJob | null> {
  return ID.test(id) ? store.job(id) : Promise.resolve(null);
}

// ---------------------------------------------------------------- body

type Received =
  | { kind: 'ok'; size: number }
  | { kind: 'empty' }
  | { kind: 'too-large'; size: number }
  | { kind: 'bad-magic'; head: Buffer }
  | { kind: 'idle' }
  | { kind: 'deadline' }
  | { kind: 'aborted' }
  | { kind: 'write-error'; error: NodeJS.ErrnoException };

/** Big-endian first 4 bytes of pcap (µs, ns, Kuznetsov; both byte orders) and pcapng. */
const MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1, 0x0a0d0d0a]);
const isGzip = (head: Buffer): boolean => head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
const isCaptureHead = (head: Buffer): boolean => isGzip(head) || (head.length >= 4 && MAGICS.has(head.readUInt32BE(0)));

function describeMagic(head: Buffer): string {
  const bytes = head.subarray(0, 8);
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  const short = head.length < 4 ? ` (only ${head.length} byte${head.length === 1 ? '' : 's'})` : '';
  return `the body starts with ${hex} "${ascii}"${short}, which is neither a pcap (a1b2c3d4, a1b23c4d, a1b2cd34 or byte-swapped), pcapng (0a0d0d0a) nor gzip (1f8b) magic`;
}

/**
 * Streams `input` to `path` while counting bytes and checking the first ones.
 * On any refusal it stops reading at once (pauses the request: the response,
 * sent with Connection: close, then ends the socket) and removes the partial file.
 * It never destroys the request: that would destroy the socket before the answer.
 */
function receive(input: Readable, path: string, limit: number, timing: { idleMs: number; deadlineMs: number }): Promise<Received> {
  return new Promise((resolve) => {
    const out = createWriteStream(path, { flags: 'wx', mode: PRIVATE_FILE });
    let size = 0;
    let head: Buffer | undefined = Buffer.alloc(0); // undefined once the magic was checked
    let settled = false;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = (): void => { clearTimeout(idle); idle = setTimeout(() => settle({ kind: 'idle' }), timing.idleMs); };
    // Reset by nothing: a client trickling a byte now and then still ends here.
    const deadline = setTimeout(() => settle({ kind: 'deadline' }), timing.deadlineMs);

    const settle = (result: Received): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      clearTimeout(deadline);
      input.off('data', onData).off('end', onEnd).off('close', onClose);
      input.pause();
      if (result.kind === 'ok') {
        out.end();
        finished(out).then(() => resolve(result), (error: NodeJS.ErrnoException) => {
          void removeQuietly(path).then(() => resolve({ kind: 'write-error', error }));
        });
        return;
      }
      // The file is opened asynchronously: remove it only once the stream has closed, or an
      // open still in flight would create it again after the removal.
      const remove = (): void => { void removeQuietly(path).then(() => resolve(result)); };
      out.destroy();
      if (out.closed) remove();
      else out.once('close', remove);
    };

    const onData = (chunk: Buffer): void => {
      armIdle();
      size += chunk.length;
      if (size > limit) return settle({ kind: 'too-large', size });
      if (head !== undefined) {
        // Hold the first bytes until the magic is known: nothing is stored for a non-capture.
        head = Buffer.concat([head, chunk]);
        if (head.length < 4) return;
        if (!isCaptureHead(head)) return settle({ kind: 'bad-magic', head });
        chunk = head;
        head = undefined;
      }
      if (!out.write(chunk)) {
        input.pause();
        out.once('drain', () => { if (!settled) input.resume(); });
      }
    };
    const onEnd = (): void => {
      if (size === 0) return settle({ kind: 'empty' });
      if (head !== undefined) {
        // Fewer than 4 bytes: only a gzip start is plausible (the analysis then reports it as cut short).
        if (!isCaptureHead(head)) return settle({ kind: 'bad-magic', head });
        out.write(head);
      }
      settle({ kind: 'ok', size });
    };
    const onClose = (): void => settle({ kind: 'aborted' });

    out.on('error', (error: NodeJS.ErrnoException) => settle({ kind: 'write-error', error }));
    input.on('error', () => settle({ kind: 'aborted' })); // stays attached: late socket errors are expected after a refusal
    input.on('data', onData).on('end', onEnd).on('close', onClose);
    armIdle();
  });
}

/** Removes a partial upload; a failure (the directory itself gone wrong) is the write error already reported. */
function removeQuietly(path: string): Promise<void> {
  return rm(path, { force: true }).catch(() => undefined);
}

// ---------------------------------------------------------------- filename

function pickFilename(request: FastifyRequest): string {
  const header = request.headers['x-filename'];
  if (typeof header === 'string' && header !== '') {
    // Headers are Latin-1; clients send other names percent-encoded.
    try { return decodeURIComponent(header); } catch { return header; }
  }
  const query = request.query as Record<string, unknown> | undefined;
  for (const key of ['name', 'filename']) {
    if (query && typeof query[key] === 'string' && query[key] !== '') return query[key];
  }
  const disposition = request.headers['content-disposition'];
  if (typeof disposition === 'string') {
    const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition)?.[1];
    if (star) { try { return decodeURIComponent(star); } catch { /* fall through */ } }
    const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition)?.[1];
    if (plain) return plain;
  }
  return '';
}

/** Last path component, printable characters only (no controls, bidi overrides, unassigned), at most 200 characters. */
export function sanitizeFilename(raw: string): string {
  const base = raw.split(/[\\/]/).pop() ?? '';
  const printable = base.replace(/\p{C}/gu, '').trim();
  if (printable === '.' || printable === '..') return '';
  return [...printable].slice(0, 200).join('').trim();
}
