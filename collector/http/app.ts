/**
 * The collector's HTTP app: JSON API, pages, /metrics. `buildApp` builds and
 * never listens (tests may `inject`); the collector main listens. Errors are
 * JSON `{ error, detail }` with the status that says what happened; a 500
 * says only "internal error" and the request id (also in every response's
 * `x-request-id`), the details go to the log under that id.
 *
 * Lists that can be long (a sensor's windows, range reports) are bounded by
 * `collector.maxReportWindows` / `maxReportFindings` and streamed from the
 * store in pages, never held whole in memory.
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { statfs } from 'node:fs/promises';
import { Readable } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { DEFAULT_CONFIG, type CollectorConfig, type Config } from '../../common/config.js';
import type { Logger } from '../../common/logging.js';
import { reportJsonChunksAsync, type Finding, type FindingSeverity, type WindowSummary } from '../../common/report.js';
import { escapeHtml, renderHtml } from '../../common/report-html.js';
import type { IngestStatus } from '../ingest/ingest.js';
import type { CollectorMetrics } from '../metrics.js';
import { RangeTotals, inPages, isoFromMs, parseSensorRange, parseTime, rangeReport } from '../range-report.js';
import type { SensorRecord, Store } from '../store/types.js';
import { registerAudit } from './audit.js';
import { internalError } from './errors.js';
import { createAuthenticator, type Authenticator } from './auth.js';

export interface QueueStats { active: number; waiting: number; max: number }

export interface AppDeps {
  config: CollectorConfig;
  /** The analyzers' thresholds: a range report's health score uses their bands (default: the built-in ones). */
  analysis?: Readonly<Pick<Config, 'analyzers'>>;
  /** The resolved API token ('' when auth is off). */
  token: string;
  store: Store;
  version: string;
  startedAt: number;
  dataDir: string;
  logger: Logger;
  metrics: CollectorMetrics;
  ingest: () => IngestStatus;
  queue: () => QueueStats;
  /** Routes registered behind authentication (uploads, pages); they get the authenticator (sessions, login limits). */
  plugins?: ReadonlyArray<(auth: Authenticator) => FastifyPluginAsync>;
  /** Told every route as it is registered (the hostile-client test lists them, so no new route escapes its checks). */
  onRoute?: (route: { method: string | string[]; url: string }) => void;
}

const SEVERITIES: readonly FindingSeverity[] = ['info', 'warning', 'critical'];
/** Pages and API paths reachable without the token (/logout: ending a session needs none). */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/api/health', '/metrics', '/login', '/logout', '/healthz']);
/** Rows read per store call while streaming a list. */
const PAGE_ROWS = 1000;
/**
 * An HTML range report is built in memory (its charts need every window), so it
 * holds fewer windows than the streamed JSON: about 40 MB of page at most.
 */
const MAX_HTML_WINDOWS = 20_000;
/** Windows listed when the query names no limit. */
const DEFAULT_WINDOW_LIMIT = 10_000;

class HttpError extends Error {
  constructor(readonly statusCode: number, readonly error: string, readonly detail: string) { super(detail); }
}
const badRequest = (detail: string): HttpError => new HttpError(400, 'bad request', detail);
const tooLarge = (detail: string): HttpError => new HttpError(413, 'range too large', detail);

/** A stored number, or null when the stored value is not one (a status is as its sensor sent it). */
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {});
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/**
 * Whether a sensor is reporting now: `up` while its last heartbeat is recent; `stopped` after
 * the final heartbeat of an orderly stop; `finished` after a replay read all of its input;
 * `down` when its heartbeats stopped without a word (or it never sent one).
 */
export type SensorLiveness = 'up' | 'down' | 'stopped' | 'finished';
/** Heartbeat intervals of silence after which a sensor is down, when that is longer than collector.sensorDownSeconds. */
export const MISSED_HEARTBEATS = 3;

/**
 * Goes by the heartbeat's own time (the agent's wall clock when it made it, clamped to its
 * arrival), not by when the collector read it: a collector reading a backlog, or started on a
 * stream that still holds the heartbeats of sensors stopped long ago, shows them as they were.
 * Silence is allowed for collector.sensorDownSeconds, or MISSED_HEARTBEATS of the sensor's own
 * heartbeat intervals if that is longer (a sensor with status.seconds 60 must not blink down).
 */
export function sensorLiveness(s: SensorRecord, downSeconds: number, now = Date.now()): SensorLiveness {
  const st: unknown = s.lastStatus;
  const status = st === null || st === undefined ? null : obj(st);
  if (status?.['state'] === 'finished') return 'finished';
  if (status?.['final'] === true) return 'stopped';
  const heartbeat = s.lastHeartbeat === null ? NaN : Date.parse(s.lastHeartbeat);
  if (Number.isNaN(heartbeat)) return 'down';
  const interval = num(status?.['heartbeatSeconds']);
  const allowedMs = Math.max(downSeconds, interval !== null && interval > 0 ? MISSED_HEARTBEATS * interval : 0) * 1000;
  return now - heartbeat <= allowedMs ? 'up' : 'down';
}

/**
 * A sensor as the API shows it. Every field of the stored status is read
 * defensively: whatever a sensor sent, a wrong type shows as null, never as a 500.
 */
export function sensorView(s: SensorRecord, downSeconds: number, now = Date.now()): Record<string, unknown> {
  const st: unknown = s.lastStatus;
  const status = st === null || st === undefined ? null : obj(st);
  const capture = obj(status?.['capture']);
  const drops = obj(capture['drops']);
  const publish = obj(status?.['publish']);
  const liveness = sensorLiveness(s, downSeconds, now);
  return {
    id: s.id,
    version: s.version,
    source: s.source,
    firstSeen: s.firstSeen,
    lastSeen: s.lastSeen,
    lastHeartbeat: s.lastHeartbeat,
    up: liveness === 'up',
    liveness,
    state: str(status?.['state']),
    uptimeSeconds: num(status?.['uptimeSeconds']),
    capture: status ? {
      packets: num(capture['packets']),
      bytes: num(capture['bytes']),
      received: num(capture['received']),
      drops: { kernel: num(drops['kernel']), interface: num(drops['interface']), agent: num(drops['agent']) },
    } : null,
    flows: status ? { active: num(obj(status['flows'])['active']), evicted: num(obj(status['flows'])['evicted']) } : null,
    // Totals above are as of the last heartbeat; a queue's length is only news while the sensor is up.
    spool: status && liveness === 'up' ? {
      messages: num(publish['spoolMessages']),
      bytes: num(publish['spoolBytes']),
      overflow: num(publish['overflowMessages']),
      connected: typeof publish['connected'] === 'boolean' ? publish['connected'] : null,
    } : null,
    healthScore: num(s.lastHealthScore),
  };
}

/** Sends text pieces as they come; a store error midway ends the response (already 200) and is logged. */
function sendStream(reply: FastifyReply, type: string, pieces: AsyncIterable<string>): FastifyReply {
  const stream = Readable.from(pieces, { objectMode: false });
  stream.on('error', (err) => reply.log.error({ err }, 'streamed response failed'));
  return reply.type(type).send(stream);
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Through a LogController: the top-level disableRequestLogging prints a deprecation warning (FSTDEP023) at every start.
    logController: new LogController({ disableRequestLogging: true }),
    // Correlation ids are ours, never the client's (an X-Request-Id header is not trusted).
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    trustProxy: false,
    // Idle keep-alive connections (browsers) must not hold a shutdown open.
    forceCloseConnections: true,
    // An unknown query parameter is a mistake to report (400), not something to drop silently.
    ajv: { customOptions: { removeAdditional: false } },
    // A request body is JSON or form data except uploads, whose route streams the body itself.
    bodyLimit: 64 * 1024,
  });
  const c = deps.config;
  const auth: Authenticator = createAuthenticator({ token: deps.token, sessionTtlHours: c.sessionTtlHours, authFailuresPerMinute: c.authFailuresPerMinute });
  const downSeconds = c.sensorDownSeconds;
  registerAudit(app, deps.logger);
  if (deps.onRoute) { const tell = deps.onRoute; app.addHook('onRoute', (route) => tell({ method: route.method, url: route.url })); }

  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.error, detail: err.detail });
    if (err.validation) return reply.code(400).send({ error: 'bad request', detail: err.message });
    // Fastify's own 4xx (a body over the limit, bad JSON) say what was wrong with the request.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- not every error reaching the handler is a FastifyError with a code
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.code ?? 'error', detail: err.message });
    return internalError(request, reply, err);
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: 'not found', detail: `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}` }));

  // Correlation id on every response; authentication on everything but the open paths, when a token is set.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const path = request.url.split('?')[0]!;
    const open = OPEN_PATHS.has(path) || path.startsWith('/static/');
    // A client over its failure limit gets no answer to any token, right or wrong: otherwise
    // guessing would go on at full speed, the right guess told apart by its 200.
    const wait = auth.enabled && !open && request.headers.authorization !== undefined ? auth.blockedFor(request) : 0;
    const identity = auth.identify(request);
    request.principal = identity.principal;
    if (wait > 0) {
      request.auditAction = 'authenticate';
      reply.header('retry-after', String(wait));
      return reply.code(429).send({ error: 'too many failed attempts', detail: `too many failed logins or wrong tokens from this client; retry in ${wait} s` });
    }
    if (identity.ok || open) return;
    request.auditAction = 'authenticate';
    const api = path.startsWith('/api/');
    if (identity.presented === 'bearer') auth.failed(request);
    if (api) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', detail: 'this collector needs its API token: Authorization: Bearer <token>' });
    // Pages: 401 like the API (a client is told it is not authorized), with the way to the login form for a browser.
    const login = escapeHtml(`/login?next=${encodeURIComponent(request.url)}`);
    return reply.code(401).header('content-type', 'text/html; charset=utf-8')
      .send(`<!doctype html><meta http-equiv="refresh" content="0; url=${login}"><title>Log in</title><p>This collector needs its API token: <a href="${login}">log in</a>.</p>`);
  });

  app.get('/api/health', async (_request, reply) => {
    const ingest = deps.ingest();
    const dbOk = await deps.store.ping();
    let diskFreeBytes: number | null = null;
    try {
      const fs = await statfs(deps.dataDir);
      diskFreeBytes = fs.bavail * fs.bsize;
    } catch { /* data dir missing: reported as null */ }
    const body = {
      status: dbOk ? (ingest.connected ? 'ok' : 'degraded') : 'unavailable',
      version: deps.version,
      uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000),
      nats: { connected: ingest.connected, pending: ingest.pending },
      database: { ok: dbOk, kind: deps.store.kind },
      queue: deps.queue(),
      diskFreeBytes,
    };
    return reply.code(dbOk ? 200 : 503).send(body);
  });

  app.get('/metrics', async (_request, reply) => {
    try {
      deps.metrics.onSensors(await deps.store.sensors(), (s) => sensorLiveness(s, downSeconds) === 'up');
    } catch { /* database down: the other metrics still answer */ }
    const ingest = deps.ingest();
    deps.metrics.consumerPending.set(ingest.pending);
    deps.metrics.natsConnected.set(ingest.connected ? 1 : 0);
    const q = deps.queue();
    deps.metrics.queueDepth.set({ state: 'active' }, q.active);
    deps.metrics.queueDepth.set({ state: 'waiting' }, q.waiting);
    return reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.get('/api/sensors', async () => {
    const sensors = await deps.store.sensors();
    return { sensors: sensors.map((s) => sensorView(s, downSeconds)) };
  });

  /** A sensor's windows in [from, to), oldest first, read a page at a time. */
  const windowsOf = (sensor: string, range: { from: string; to: string }): AsyncGenerator<WindowSummary> => mapRows(
    inPages((from, limit) => deps.store.windows(sensor, from, range.to, limit), (r) => ({ start: r.window.start, id: r.id }), range.from, PAGE_ROWS),
    (r) => r.window);
  const findingsOf = (sensor: string, range: { from: string; to: string }): AsyncGenerator<Finding> => mapRows(
    inPages((from, limit) => deps.store.findingsInRange(sensor, from, range.to, limit), (r) => ({ start: r.finding.window.start, id: r.id }), range.from, PAGE_ROWS),
    (r) => r.finding);

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit?: number } }>('/api/sensors/:id/windows', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' }, limit: { type: 'integer', minimum: 1 } } } },
  }, async (request, reply) => {
    const limit = request.query.limit ?? Math.min(DEFAULT_WINDOW_LIMIT, c.maxReportWindows);
    if (limit > c.maxReportWindows) throw badRequest(`limit: ${limit} is over the limit of ${c.maxReportWindows} windows per request (collector.maxReportWindows)`);
    const id = request.params.id;
    const range = await parseSensorRange(deps.store, () => deps.store.sensor(id), request.query.from, request.query.to);
    if (typeof range === 'string') throw badRequest(range);
    if (!range) throw new HttpError(404, 'not found', `no sensor "${id.slice(0, 200)}"`);
    const windows = windowsOf(id, range);
    return sendStream(reply, 'application/json; charset=utf-8', (async function* () {
      yield `{"sensor":${JSON.stringify(id)},"from":${JSON.stringify(range.from)},"to":${JSON.stringify(range.to)},"windows":[`;
      let n = 0;
      for await (const w of windows) {
        yield `${n ? ',' : ''}\n${JSON.stringify(w)}`;
        if (++n >= limit) break;
      }
      yield '\n]}\n';
    })());
  });

  app.get<{ Querystring: { sensor?: string; type?: string; severity?: FindingSeverity; ip?: string; from?: string; to?: string; limit?: number; cursor?: string } }>('/api/findings', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          sensor: { type: 'string', maxLength: 200 },
          type: { type: 'string', maxLength: 100 },
          severity: { type: 'string', enum: [...SEVERITIES] },
          ip: { type: 'string', maxLength: 64 },
          from: { type: 'string' },
          to: { type: 'string' },
          limit: { type: 'integer', minimum: 1, maximum: 1000 },
          cursor: { type: 'string', maxLength: 500 },
        },
      },
    },
  }, async (request) => {
    const q = request.query;
    if (q.ip !== undefined && isIP(q.ip) === 0) throw badRequest(`ip: "${q.ip}" is not an IPv4 or IPv6 address`);
    const bound = (v: string | undefined, name: string): string | undefined => {
      if (v === undefined) return undefined;
      const ms = parseTime(v, name);
      if (typeof ms === 'string') throw badRequest(ms);
      return isoFromMs(ms);
    };
    try {
      const page = await deps.store.findings({
        limit: q.limit ?? 100,
        ...(q.sensor !== undefined ? { sensor: q.sensor } : {}),
        ...(q.type !== undefined ? { type: q.type } : {}),
        ...(q.severity !== undefined ? { severity: q.severity } : {}),
        ...(q.ip !== undefined ? { ip: q.ip } : {}),
        ...(q.from !== undefined ? { from: bound(q.from, 'from')! } : {}),
        ...(q.to !== undefined ? { to: bound(q.to, 'to')! } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      });
      return { findings: page.items.map((f) => ({ sensor: f.sensor, ...f.finding })), nextCursor: page.nextCursor };
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (q.cursor !== undefined && /cursor/i.test(String(err))) throw badRequest('cursor is not one this API gave');
      throw err;
    }
  });

  app.get<{ Params: { sensor: string }; Querystring: { from?: string; to?: string; format?: 'json' | 'html' } }>('/api/reports/:sensor', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string', enum: ['json', 'html'] } } } },
  }, async (request, reply) => {
    const id = request.params.sensor;
    const range = await parseSensorRange(deps.store, () => deps.store.sensor(id), request.query.from, request.query.to);
    if (typeof range === 'string') throw badRequest(range);
    if (!range) throw new HttpError(404, 'not found', `no sensor "${id.slice(0, 200)}"`);
    const html = request.query.format === 'html';
    // First pass: the totals (they come before the lists in the report) and the sizes, so an
    // over-limit range is refused before a byte is sent. The second pass streams the lists.
    const maxWindows = html ? Math.min(MAX_HTML_WINDOWS, c.maxReportWindows) : c.maxReportWindows;
    const totals = new RangeTotals();
    for await (const w of windowsOf(id, range)) {
      totals.add(w);
      if (totals.windows > maxWindows) {
        throw tooLarge(`the range holds more than ${maxWindows} windows, the limit of one ${html ? 'HTML report' : 'report'} (${html && maxWindows === MAX_HTML_WINDOWS ? 'use format=json, or ' : 'collector.maxReportWindows; '}ask for a shorter range)`);
      }
    }
    let findings = 0;
    for await (const _ of findingsOf(id, range)) {
      if (++findings > c.maxReportFindings) throw tooLarge(`the range holds more than ${c.maxReportFindings} findings, the limit of one report (collector.maxReportFindings; ask for a shorter range)`);
    }
    const report = rangeReport(id, totals, deps.analysis ?? DEFAULT_CONFIG);
    if (html) {
      const all = async <T>(items: AsyncIterable<T>): Promise<T[]> => { const out: T[] = []; for await (const i of items) out.push(i); return out; };
      report.windows = await all(windowsOf(id, range));
      report.findings = await all(findingsOf(id, range));
      return reply.type('text/html; charset=utf-8').send(renderHtml(report));
    }
    return sendStream(reply, 'application/json; charset=utf-8', reportJsonChunksAsync(report, { windows: windowsOf(id, range), findings: findingsOf(id, range) }));
  });

  for (const plugin of deps.plugins ?? []) await app.register(plugin(auth));
  return app;
}

async function* mapRows<R, T>(rows: AsyncIterable<R>, pick: (row: R) => T): AsyncGenerator<T> {
  for await (const row of rows) yield pick(row);
}
