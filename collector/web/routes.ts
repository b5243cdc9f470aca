/**
 * The collector's web pages: server-rendered HTML shells that /static/app.js
 * fills from the JSON API (dashboard, sensor, findings, upload, capture
 * status), the login form, and two small JSON endpoints the pages need that
 * the API proper does not have: finding counts by severity and a sensor's
 * chart series (windows reduced to a few hundred points on the server, since
 * a week of full windows is hundreds of megabytes).
 *
 * Pages carry a strict Content-Security-Policy (no inline script or style),
 * and every value from the URL that lands in a page is HTML-escaped; data
 * from the API is inserted by the script as text only.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CollectorConfig } from '../../common/config.js';
import { HEALTH_SCOPE, type FindingSeverity, type WindowSummary } from '../../common/report.js';
import { escapeHtml as e, windowQuantiles } from '../../common/report-html.js';
import { fingerprint, readCookie, SESSION_COOKIE, type Authenticator } from '../http/auth.js';
import { isoFromMs, parseRange, parseSensorRange, sensorDataEnd } from '../range-report.js';
import type { Store } from '../store/types.js';
import { APP_CSS, APP_JS, FAVICON_SVG } from './assets.js';

export interface WebRoutesOptions {
  store: Store;
  config: CollectorConfig;
  version: string;
  /** The API's authenticator: sessions, login attempts. */
  auth: Authenticator;
}

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Chart points per range at most: about one per horizontal pixel pair of a chart. */
const MAX_POINTS = 600;
/** Windows read per store call while building a series, so memory stays bounded. */
const SERIES_CHUNK = 2000;
/** Windows read for one series at most (a week of 10 s windows is 60,480). */
const MAX_SERIES_WINDOWS = 100_000;

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------- series

export const SERIES_KEYS = ['packetsPerSecond', 'bitsPerSecond', 'retransmissionPercent', 'rttP50Ms', 'rttP99Ms', 'dnsP50Ms', 'dnsP99Ms',
  'healthScore', 'dropsKernel', 'dropsInterface', 'dropsAgent'] as const;
export type SeriesKey = (typeof SERIES_KEYS)[number];

export interface SensorSeries {
  sensor: string;
  from: string;
  to: string;
  /** Windows read. */
  windows: number;
  /** More windows were in the range than MAX_SERIES_WINDOWS: only the first ones are here. */
  truncated: boolean;
  windowSeconds: number;
  /** Time one point covers (equal to windowSeconds when every point is one window). */
  pointSeconds: number;
  /** Per point: earliest window start and latest window end, epoch milliseconds. */
  start: number[];
  end: number[];
  series: Record<SeriesKey, Array<number | null>>;
}

/** A weighted mean that ignores missing values. */
class Mean {
  private sum = 0;
  private weight = 0;
  add(v: unknown, w: number): void {
    if (!finite(v) || !(w > 0)) return;
    this.sum += v * w;
    this.weight += w;
  }
  get value(): number | null { return this.weight > 0 ? this.sum / this.weight : null; }
}

const maxOf = (a: number | null, v: unknown): number | null => (finite(v) ? (a === null ? v : Math.max(a, v)) : a);
const minOf = (a: number | null, v: unknown): number | null => (finite(v) ? (a === null ? v : Math.min(a, v)) : a);

/**
 * The windows of one point. Rates come from sums (bucket-size independent);
 * p50s are count-weighted means of the windows' p50s and p99s the worst
 * window's (percentiles do not add up); health is the worst window's.
 */
class Point {
  start = Infinity;
  end = -Infinity;
  private seconds = 0;
  private packets = 0;
  private bytes = 0;
  private readonly retrans = new Mean();
  private readonly rttP50 = new Mean();
  private rttP99: number | null = null;
  private readonly dnsP50 = new Mean();
  private dnsP99: number | null = null;
  private health: number | null = null;
  private drops: { kernel: number; interface: number; agent: number } | null = null;

  add(w: WindowSummary): void {
    const start = Date.parse(w.start);
    const end = Date.parse(w.end);
    this.start = Math.min(this.start, start);
    this.end = Math.max(this.end, end);
    this.seconds += Math.max(0, (end - start) / 1000);
    this.packets += finite(w.packets) ? w.packets : 0;
    this.bytes += finite(w.bytes) ? w.bytes : 0;
    const metrics = isObject(w.metrics) ? w.metrics : {};
    const tcp = isObject(metrics['tcp']) ? metrics['tcp'] : undefined;
    if (tcp) {
      const segments = tcp['dataSegments'];
      // Weighted by data segments; a window without any still counts (its rate is its own 0).
      this.retrans.add(finite(tcp['retransmissionRate']) ? tcp['retransmissionRate'] * 100 : null, finite(segments) && segments > 0 ? segments : 1e-9);
    }
    for (const [analyzer, p50, p99] of [['rtt', 'rttP50', 'rttP99'], ['dns', 'dnsP50', 'dnsP99']] as const) {
      const m = isObject(metrics[analyzer]) ? metrics[analyzer] as Record<string, unknown> : undefined;
      const q = windowQuantiles(m);
      if (!q) continue;
      const count = m && finite(m['count']) && m['count'] > 0 ? m['count'] : 1;
      this[p50].add(finite(q.p50) ? q.p50 * 1000 : null, count);
      this[p99] = maxOf(this[p99], finite(q.p99) ? q.p99 * 1000 : null);
    }
    this.health = minOf(this.health, w.healthScore);
    const d = w.capture?.drops;
    if (d) {
      this.drops ??= { kernel: 0, interface: 0, agent: 0 };
      this.drops.kernel += finite(d.kernel) ? d.kernel : 0;
      this.drops.interface += finite(d.interface) ? d.interface : 0;
      this.drops.agent += finite(d.agent) ? d.agent : 0;
    }
  }

  values(): Record<SeriesKey, number | null> {
    const rate = (n: number): number | null => (this.seconds > 0 ? n / this.seconds : null);
    const bps = rate(this.bytes * 8);
    return {
      packetsPerSecond: rate(this.packets),
      bitsPerSecond: bps,
      retransmissionPercent: this.retrans.value,
      rttP50Ms: this.rttP50.value,
      rttP99Ms: this.rttP99,
      dnsP50Ms: this.dnsP50.value,
      dnsP99Ms: this.dnsP99,
      healthScore: this.health,
      dropsKernel: this.drops?.kernel ?? null,
      dropsInterface: this.drops?.interface ?? null,
      dropsAgent: this.drops?.agent ?? null,
    };
  }
}

/** A sensor's windows over [from, to) as chart series of at most about MAX_POINTS points. */
export async function sensorSeries(store: Store, sensor: string, from: string, to: string): Promise<SensorSeries> {
  const rangeMs = Math.max(1, Date.parse(to) - Date.parse(from));
  const points = new Map<number, Point>();
  let windowMs = 0;
  let bucketMs = 0;
  let read = 0;
  let truncated = false;
  let cursor = from;
  for (;;) {
    const rows = await store.windows(sensor, cursor, to, SERIES_CHUNK);
    for (const { window: w } of rows) {
      if (read >= MAX_SERIES_WINDOWS) { truncated = true; break; }
      if (!bucketMs) {
        // Windows are aligned to multiples of their length since the epoch; buckets of a
        // whole number of windows, aligned the same way, never split a window.
        windowMs = Math.max(1, Date.parse(w.end) - Date.parse(w.start));
        bucketMs = windowMs * Math.max(1, Math.ceil(rangeMs / MAX_POINTS / windowMs));
      }
      const key = Math.floor(Date.parse(w.start) / bucketMs);
      let p = points.get(key);
      if (!p) { p = new Point(); points.set(key, p); }
      p.add(w);
      read++;
    }
    if (truncated || rows.length < SERIES_CHUNK) break;
    // Next chunk after the last start read (windows of one sensor and source have distinct starts).
    cursor = new Date(Date.parse(rows[rows.length - 1]!.window.start) + 1).toISOString();
  }
  const series = Object.fromEntries(SERIES_KEYS.map((k) => [k, [] as Array<number | null>])) as Record<SeriesKey, Array<number | null>>;
  const start: number[] = [];
  const end: number[] = [];
  for (const p of points.values()) {
    start.push(p.start);
    end.push(p.end);
    const v = p.values();
    for (const k of SERIES_KEYS) series[k].push(v[k]);
  }
  return { sensor, from, to, windows: read, truncated, windowSeconds: windowMs / 1000, pointSeconds: bucketMs / 1000, start, end, series };
}

// ---------------------------------------------------------------- pages

interface PageOptions {
  title: string;
  /** Which script part runs (body data-page). */
  page: string;
  /** Nav item to mark current. */
  nav?: 'dashboard' | 'findings' | 'upload';
  /** Extra body data-* attributes (names fixed here, values escaped). */
  data?: Record<string, string>;
  body: string;
}

/** A redirect target from a login form: a local path only (no `//host`, no `/\host`, no control characters). */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 2000) return '/';
  if (!/^\/(?![/\\])[\x21-\x7e]*$/.test(next) || next.includes('\\')) return '/';
  return next;
}

function queryString(query: unknown, name: string): string | undefined {
  const v = isObject(query) ? query[name] : undefined;
  return typeof v === 'string' ? v : undefined;
}

export async function webRoutes(app: FastifyInstance, options: WebRoutesOptions): Promise<void> {
  const { store, config, version, auth } = options;
  const authOn = auth.enabled;

  // The login and logout forms post urlencoded fields; only this plugin's routes parse them.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_request, text, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(text))));
  });

  const layout = (o: PageOptions): string => {
    const navLink = (href: string, key: PageOptions['nav'], label: string): string =>
      `<a href="${href}"${o.nav === key ? ' aria-current="page"' : ''}>${label}</a>`;
    const data = Object.entries(o.data ?? {}).map(([k, v]) => ` data-${k}="${e(v)}"`).join('');
    const nav = o.page === 'login' ? '' : `${navLink('/', 'dashboard', 'Dashboard')}${navLink('/findings', 'findings', 'Findings')}${navLink('/upload', 'upload', 'Upload')}${
      authOn ? '<form class="logout" method="post" action="/logout"><button type="submit">Log out</button></form>' : ''}`;
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(o.title)} · PCAP Analyzer</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body data-page="${e(o.page)}"${data}>
<header class="top"><nav aria-label="Main"><a class="brand" href="/">PCAP Analyzer</a>${nav}</nav></header>
<main>
<div class="error page-error" role="alert" hidden></div>
${o.body}
</main>
<footer>PCAP Analyzer collector ${e(version)}</footer>
</body>
</html>
`;
  };

  const sendPage = (reply: FastifyReply, html: string, status = 200): FastifyReply =>
    reply.code(status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'same-origin')
      .header('cache-control', 'no-store')
      .send(html);

  const notFoundPage = (reply: FastifyReply, what: string): FastifyReply =>
    sendPage(reply, layout({ title: 'Not found', page: 'none', body: `<h1>Not found</h1><p>${e(what)}</p><p><a href="/">Back to the dashboard</a></p>` }), 404);

  // ------------------------------------------------------------ static files

  const asset = (path: string, type: string, content: string): void => {
    const etag = `"${createHash('sha256').update(content).digest('base64url').slice(0, 22)}"`;
    app.get(path, async (request, reply) => {
      // Revalidated on every use: a new collector version must not run an old script.
      reply.header('cache-control', 'no-cache').header('etag', etag).header('x-content-type-options', 'nosniff');
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.type(type).send(content);
    });
  };
  asset('/static/app.js', 'text/javascript; charset=utf-8', APP_JS);
  asset('/static/app.css', 'text/css; charset=utf-8', APP_CSS);
  asset('/static/favicon.svg', 'image/svg+xml', FAVICON_SVG);

  // ------------------------------------------------------------ JSON for the pages

  app.get<{ Querystring: { from?: string; to?: string } }>('/api/findings/counts', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' } } } },
  }, async (request, reply) => {
    // Default: the last 24 hours (of window start, that is packet time).
    const from = request.query.from ?? String(Date.now() / 1000 - 86400);
    const range = parseRange(from, undefined);
    if (typeof range === 'string') return reply.code(400).send({ error: 'bad request', detail: range });
    const counts: Record<FindingSeverity, number> = await store.findingCounts(range.from);
    return { from: range.from, counts };
  });

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string } }>('/api/sensors/:id/series', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' } } } },
  }, async (request, reply) => {
    const id = request.params.id;
    const range = await parseSensorRange(store, () => store.sensor(id), request.query.from, request.query.to);
    if (typeof range === 'string') return reply.code(400).send({ error: 'bad request', detail: range });
    if (!range) return reply.code(404).send({ error: 'not found', detail: `no sensor "${id.slice(0, 200)}"` });
    return sensorSeries(store, id, range.from, range.to);
  });

  // ------------------------------------------------------------ pages

  app.get('/', async (_request, reply) => sendPage(reply, layout({
    title: 'Dashboard', page: 'dashboard', nav: 'dashboard', body: `<h1>Dashboard</h1>
<p class="muted">Refreshes every 10 s. <span id="updated" aria-live="polite"></span></p>
<div class="error" id="dashboard-error" role="alert" hidden></div>
<section aria-labelledby="h-sensors">
<h2 id="h-sensors">Sensors</h2>
<div class="scroll"><table class="data" id="sensors">
<thead><tr><th scope="col">Sensor</th><th scope="col">Status</th><th scope="col">Source</th><th scope="col">Last heartbeat (UTC)</th><th scope="col" class="num">Packets</th><th scope="col" class="num">Drops kernel / interface / agent</th><th scope="col" class="num">Spool</th><th scope="col" class="num">Health</th></tr></thead>
<tbody></tbody>
</table></div>
<p id="sensors-empty" class="muted" hidden>No sensor has reported yet.</p>
<p class="muted health-scope">${e(HEALTH_SCOPE)}</p>
</section>
<section aria-labelledby="h-counts">
<h2 id="h-counts">Findings by severity</h2>
<table class="data" id="finding-counts">
<thead><tr><th scope="col">Severity</th><th scope="col" class="num">Last hour</th><th scope="col" class="num">Last 24 h</th><th scope="col" class="num">All stored</th></tr></thead>
<tbody></tbody>
</table>
<p class="muted">Counted by the packet time of the window each was found in: a replayed capture's findings are as old as its packets.</p>
</section>
<section aria-labelledby="h-latest">
<h2 id="h-latest">Latest findings</h2>
<div id="latest-findings"></div>
<p><a href="/findings">All findings</a></p>
</section>`,
  })));

  app.get<{ Params: { id: string } }>('/sensors/:id', async (request, reply) => {
    const sensor = await store.sensor(request.params.id);
    if (!sensor) return notFoundPage(reply, `No sensor "${request.params.id.slice(0, 200)}" has reported to this collector.`);
    const id = e(sensor.id);
    // Quick ranges end where the sensor's data ends (a replay's windows are in the capture's time).
    const end = await sensorDataEnd(store, sensor);
    return sendPage(reply, layout({
      title: `Sensor ${sensor.id}`, page: 'sensor', data: { sensor: sensor.id, end: end === undefined ? '' : isoFromMs(end) }, body: `<h1>Sensor <code>${id}</code></h1>
<div class="error" id="sensor-error" role="alert" hidden></div>
<div id="sensor-info" aria-live="polite"></div>
<section aria-labelledby="h-range">
<h2 id="h-range">Time range</h2>
<nav class="quick" aria-label="Quick ranges">
<a href="?range=15m" data-range="15m">Last 15 min</a><a href="?range=1h" data-range="1h">Last 1 h</a><a href="?range=6h" data-range="6h">Last 6 h</a><a href="?range=24h" data-range="24h">Last 24 h</a><a href="?range=7d" data-range="7d">Last 7 d</a>
</nav>
<form class="range" id="range-form" method="get" action="">
<label for="from">From (UTC, ISO-8601 or epoch s)<input type="text" id="from" name="from" placeholder="2024-01-01T00:00:00Z" autocomplete="off"></label>
<label for="to">To (UTC; empty: the end of its data)<input type="text" id="to" name="to" placeholder="2024-01-01T01:00:00Z" autocomplete="off"></label>
<button type="submit">Show range</button>
</form>
<p><strong id="range-text"></strong></p>
<p>Report of this range: <a id="report-html" href="/reports/${e(encodeURIComponent(sensor.id))}">HTML</a> · <a id="report-json" href="/reports/${e(encodeURIComponent(sensor.id))}?format=json">JSON</a></p>
</section>
<section aria-labelledby="h-charts">
<h2 id="h-charts">Charts</h2>
<div class="charts" id="charts" aria-busy="true"><p class="muted">Loading…</p></div>
<p class="muted" id="charts-note"></p>
<p class="muted health-scope">${e(HEALTH_SCOPE)}</p>
</section>
<section aria-labelledby="h-findings">
<h2 id="h-findings">Findings in this range</h2>
<form class="filters" id="finding-filters" method="get" action="">
<input type="hidden" name="range"><input type="hidden" name="from"><input type="hidden" name="to">
<label for="f-type">Type<input type="text" id="f-type" name="type" placeholder="port_scan" autocomplete="off"></label>
<label for="f-severity">Severity<select id="f-severity" name="severity"><option value="">any</option><option value="critical">critical</option><option value="warning">warning</option><option value="info">info</option></select></label>
<label for="f-ip">IP address<input type="text" id="f-ip" name="ip" placeholder="192.0.2.1" autocomplete="off"></label>
<button type="submit">Filter</button>
</form>
<div id="sensor-findings"></div>
</section>`,
    }));
  });

  app.get('/findings', async (_request, reply) => sendPage(reply, layout({
    title: 'Findings', page: 'findings', nav: 'findings', body: `<h1>Findings</h1>
<section aria-labelledby="h-filters">
<h2 id="h-filters">Filters</h2>
<form class="filters" id="finding-filters" method="get" action="/findings">
<label for="f-sensor">Sensor<input type="text" id="f-sensor" name="sensor" autocomplete="off"></label>
<label for="f-type">Type<input type="text" id="f-type" name="type" placeholder="port_scan" autocomplete="off"></label>
<label for="f-severity">Severity<select id="f-severity" name="severity"><option value="">any</option><option value="critical">critical</option><option value="warning">warning</option><option value="info">info</option></select></label>
<label for="f-ip">IP address<input type="text" id="f-ip" name="ip" placeholder="192.0.2.1" autocomplete="off"></label>
<label for="f-from">From (UTC)<input type="text" id="f-from" name="from" placeholder="2024-01-01T00:00:00Z" autocomplete="off"></label>
<label for="f-to">To (UTC)<input type="text" id="f-to" name="to" placeholder="2024-01-02T00:00:00Z" autocomplete="off"></label>
<button type="submit">Filter</button> <a href="/findings">Clear</a>
</form>
</section>
<section aria-labelledby="h-list">
<h2 id="h-list">Newest first</h2>
<div id="findings"></div>
</section>`,
  })));

  app.get('/upload', async (_request, reply) => sendPage(reply, layout({
    title: 'Upload a capture', page: 'upload', nav: 'upload', data: { 'max-upload-mb': String(config.maxUploadSizeMB) }, body: `<h1>Analyze a capture</h1>
<section aria-labelledby="h-upload">
<h2 id="h-upload">Upload</h2>
<p>A pcap or pcapng file, optionally gzip-compressed, up to ${e(config.maxUploadSizeMB)} MiB. It is analyzed here like <code>pcap-analyzer analyze</code>; the upload and its report are removed after ${e(config.reportTtlHours)} h.</p>
<form class="upload" id="upload-form">
<label for="file">Capture file</label>
<input type="file" id="file" name="file" accept=".pcap,.pcapng,.cap,.gz,.pcap.gz,.pcapng.gz,application/vnd.tcpdump.pcap">
<button type="submit" id="upload-button">Upload and analyze</button>
</form>
<p id="upload-status" hidden><label for="upload-progress">Upload</label> <progress id="upload-progress" max="100" value="0"></progress> <span id="upload-percent" aria-live="polite"></span></p>
<div class="error" id="upload-error" role="alert" hidden></div>
</section>
<section id="capture" aria-live="polite" hidden></section>`,
  })));

  app.get<{ Params: { id: string } }>('/captures/:id', async (request, reply) => sendPage(reply, layout({
    title: 'Upload status', page: 'capture', nav: 'upload', data: { capture: request.params.id.slice(0, 100) }, body: `<h1>Upload <code>${e(request.params.id.slice(0, 100))}</code></h1>
<section id="capture" aria-live="polite"><p class="muted">Loading…</p></section>
<p><a href="/upload">Upload another capture</a></p>`,
  })));

  app.get<{ Params: { sensor: string } }>('/reports/:sensor', async (request, reply) => {
    const q = new URLSearchParams();
    for (const name of ['from', 'to']) {
      const v = queryString(request.query, name);
      if (v !== undefined && v !== '') q.set(name, v);
    }
    q.set('format', queryString(request.query, 'format') === 'json' ? 'json' : 'html');
    return reply.redirect(`/api/reports/${encodeURIComponent(request.params.sensor)}?${q.toString()}`);
  });

  // ------------------------------------------------------------ login

  const loginPage = (next: string, problem: string): string => layout({
    title: 'Log in', page: 'login', body: `<h1>Log in</h1>
<section>
${problem ? `<div class="error" role="alert">${e(problem)}</div>` : '<p>This collector needs its API token.</p>'}
<form class="login" method="post" action="/login">
<input type="hidden" name="next" value="${e(next)}">
<label for="token">API token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</section>`,
  });

  app.get('/login', async (request, reply) => {
    const next = safeNext(queryString(request.query, 'next'));
    if (!authOn || auth.identify(request).ok) return reply.redirect(next, 303);
    return sendPage(reply, loginPage(next, ''));
  });

  const cookie = (request: FastifyRequest, value: string, maxAgeSeconds: number): string =>
    `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${request.protocol === 'https' ? '; Secure' : ''}`;

  app.post('/login', { config: { audit: 'login' } }, async (request, reply) => {
    const form = isObject(request.body) ? request.body : {};
    const next = safeNext(form['next']);
    if (!authOn) return reply.redirect('/', 303);
    request.auditTarget = 'session';
    const wait = auth.blockedFor(request);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      return sendPage(reply, loginPage(next, `Too many failed attempts from this address: try again in ${wait} s.`), 429);
    }
    const given = typeof form['token'] === 'string' ? form['token'] : '';
    if (!auth.tokenMatches(given)) {
      auth.failed(request);
      request.principal = `token:${fingerprint(given)}`;
      return sendPage(reply, loginPage(next, 'Wrong token.'), 401);
    }
    const session = auth.sessions.create();
    request.principal = `session:${fingerprint(session.id)}`;
    reply.header('set-cookie', cookie(request, session.id, session.maxAgeSeconds));
    return reply.redirect(next, 303);
  });

  // Ends the session the cookie names (revoked on the server, not only forgotten by the browser).
  app.post('/logout', { config: { audit: 'logout' } }, async (request, reply) => {
    request.auditTarget = 'session';
    const id = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (id !== undefined) auth.sessions.revoke(id);
    reply.header('set-cookie', cookie(request, '', 0));
    return reply.redirect(authOn ? '/login' : '/', 303);
  });
}
