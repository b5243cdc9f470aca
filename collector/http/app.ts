/**
 * The collector's HTTP app: JSON API, pages, /metrics. `buildApp` builds and
 * never listens (tests may `inject`); the collector main listens. Errors are
 * JSON `{ error, detail }` with the status that says what happened.
 */
import { isIP } from 'node:net';
import { statfs } from 'node:fs/promises';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { CollectorConfig } from '../../common/config.js';
import type { Logger } from '../../common/logging.js';
import type { FindingSeverity } from '../../common/report.js';
import { renderHtml } from '../../common/report-html.js';
import type { IngestStatus } from '../ingest/ingest.js';
import type { CollectorMetrics } from '../metrics.js';
import { isoFromMs, parseRange, parseTime, rangeReport } from '../range-report.js';
import type { SensorRecord, Store } from '../store/types.js';
import { createAuthenticator, type Authenticator } from './auth.js';

export interface QueueStats { active: number; waiting: number; max: number }

export interface AppDeps {
  config: CollectorConfig;
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
  /** Routes registered behind authentication (uploads, pages). */
  plugins?: ReadonlyArray<{ plugin: FastifyPluginAsync; api: boolean }>;
}

const SEVERITIES: readonly FindingSeverity[] = ['info', 'warning', 'critical'];
/** A range report holds at most this many windows (a week of 10 s windows is 60,480). */
const MAX_REPORT_WINDOWS = 100_000;
const MAX_REPORT_FINDINGS = 100_000;
/** Pages and API paths reachable without the token. */
const OPEN_PATHS = new Set(['/api/health', '/metrics', '/login', '/healthz']);

class HttpError extends Error {
  constructor(readonly statusCode: number, readonly error: string, readonly detail: string) { super(detail); }
}
const badRequest = (detail: string): HttpError => new HttpError(400, 'bad request', detail);

export function sensorIsUp(s: SensorRecord, downSeconds: number, now = Date.now()): boolean {
  return now - Date.parse(s.lastSeen) <= downSeconds * 1000;
}

function sensorView(s: SensorRecord, downSeconds: number): Record<string, unknown> {
  const st = s.lastStatus;
  return {
    id: s.id,
    version: s.version,
    source: s.source,
    firstSeen: s.firstSeen,
    lastSeen: s.lastSeen,
    up: sensorIsUp(s, downSeconds),
    state: st?.state ?? null,
    uptimeSeconds: st?.uptimeSeconds ?? null,
    capture: st ? { packets: st.capture.packets, bytes: st.capture.bytes, received: st.capture.received, drops: st.capture.drops } : null,
    flows: st?.flows ?? null,
    spool: st ? { messages: st.publish.spoolMessages, bytes: st.publish.spoolBytes, overflow: st.publish.overflowMessages, connected: st.publish.connected } : null,
    healthScore: s.lastHealthScore,
  };
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    disableRequestLogging: true,
    trustProxy: false,
    // Idle keep-alive connections (browsers) must not hold a shutdown open.
    forceCloseConnections: true,
    // An unknown query parameter is a mistake to report (400), not something to drop silently.
    ajv: { customOptions: { removeAdditional: false } },
    // A request body is JSON or form data except uploads, whose route streams the body itself.
    bodyLimit: 64 * 1024,
  });
  const audit = deps.logger.child({ component: 'audit' });
  const auth: Authenticator = createAuthenticator(deps.token, audit);
  const downSeconds = deps.config.sensorDownSeconds;

  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.error, detail: err.detail });
    if (err.validation) return reply.code(400).send({ error: 'bad request', detail: err.message });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) request.log.error({ err: err.message, path: request.url.split('?')[0] }, 'request failed');
    return reply.code(status).send({ error: status === 500 ? 'internal error' : err.code ?? 'error', detail: status === 500 ? 'see the collector log' : err.message });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: 'not found', detail: `no route ${request.method} ${request.url.split('?')[0]}` }));

  // Authentication: everything but the open paths, when a token is set.
  app.addHook('onRequest', async (request, reply) => {
    if (!auth.enabled) return;
    const path = request.url.split('?')[0]!;
    if (OPEN_PATHS.has(path) || path.startsWith('/static/')) return;
    if (!auth.check(request)) return auth.refuse(request, reply, path.startsWith('/api/'));
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
      deps.metrics.onSensors(await deps.store.sensors(), (s) => sensorIsUp(s, downSeconds));
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

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit?: number } }>('/api/sensors/:id/windows', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: MAX_REPORT_WINDOWS } } } },
  }, async (request) => {
    const range = parseRange(request.query.from, request.query.to);
    if (typeof range === 'string') throw badRequest(range);
    const sensor = await deps.store.sensor(request.params.id);
    if (!sensor) throw new HttpError(404, 'not found', `no sensor "${request.params.id}"`);
    const rows = await deps.store.windows(sensor.id, range.from, range.to, request.query.limit ?? 10_000);
    return { sensor: sensor.id, from: range.from, to: range.to, windows: rows.map((r) => r.window) };
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
    const range = parseRange(request.query.from, request.query.to);
    if (typeof range === 'string') throw badRequest(range);
    const sensor = await deps.store.sensor(request.params.sensor);
    if (!sensor) throw new HttpError(404, 'not found', `no sensor "${request.params.sensor}"`);
    const windows = (await deps.store.windows(sensor.id, range.from, range.to, MAX_REPORT_WINDOWS)).map((r) => r.window);
    const findings = (await deps.store.findingsInRange(sensor.id, range.from, range.to, MAX_REPORT_FINDINGS)).map((r) => r.finding);
    const report = rangeReport(sensor.id, windows, findings);
    if (request.query.format === 'html') return reply.type('text/html; charset=utf-8').send(renderHtml(report));
    return report;
  });

  for (const { plugin } of deps.plugins ?? []) await app.register(plugin);
  return app;
}
