/**
 * The collector's web pages with real processes: a private nats-server, the
 * collector (SQLite) as a child process, and an agent replaying a SYN scan
 * into it with 1 s windows. Plain HTTP checks (headers, redirects, the login
 * form) always run; the pages are then opened in headless Chromium (skipped
 * when /usr/bin/chromium is absent; .ci/run installs it): dashboard, sensor
 * charts, the range report, findings with filters and paging, an upload
 * through the file input, and the login flow, each with no console error and
 * a screenshot in test-artifacts/web-*.png. Hostile strings published as a
 * finding and a sensor id must show as text, never run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { Browser, Page } from 'playwright-core';
import type { Report } from '../common/report.js';
import { FINDING_SCHEMA, STATUS_SCHEMA, statusMessageId, subjectFor, type FindingMessage, type StatusMessage } from '../common/wire.js';
import { spawnAgent, waitFor } from './helpers/agent-process.js';
import { deferrer, http, startCollector, type Answer } from './helpers/collector-process.js';
import { startNatsServer } from './helpers/nats-server.js';
import { REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const SCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const HANDSHAKE = join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng');
/** The scan's packets lie in 2010-07-04 20:24:16..20:24:40 UTC. */
const FROM = '2010-07-04T20:24:00Z';
const TO = '2010-07-04T20:25:00Z';
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'";
const HOSTILE_SENSOR = 'evil"><img src=x onerror=alert(7)>';
const HOSTILE_HOST = '<img src=x onerror=alert(1)>.evil.example';
const HOSTILE_SUMMARY = '<script>alert(2)</script> "quoted" & more';
/** A service name as a hostile sensor could send it (a TLS server name is whatever the client wrote). */
const HOSTILE_SERVICE = '<iframe src=x>.example';

const noChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`;

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await http(url, init);
  assert.equal(res.status, 200, `${url}: ${res.status} ${res.text}`);
  return JSON.parse(res.text) as T;
}

interface SensorView { id: string; up: boolean; state: string | null; capture: { packets: number } | null }
/** The scan's last packet is at 20:24:39.36: its newest 1 s window ends at 20:24:40, the default range the hour before. */
const DATA_END = '2010-07-04T20:24:40.000000Z';
const DATA_HOUR = '2010-07-04T19:24:40.000000Z';
interface FindingView { sensor: string; type: string; severity: string; summary: string; host?: string }

/** Publishes a finding and a status message with hostile strings, as an agent would (the stream exists once the agent ran). */
async function publishHostile(natsUrl: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const js = jetstream(nc);
    const source = { kind: 'replay' as const, name: '/tmp/<b>hostile</b>.pcap' };
    const finding: FindingMessage = {
      schema: FINDING_SCHEMA, id: 'web1.hostile.f.1', sensor: 'web1', source,
      finding: {
        id: 'hostile-1', type: 'dns_tunneling', severity: 'critical',
        window: { start: '2010-07-04T20:24:30.000000Z', end: '2010-07-04T20:24:31.000000Z' },
        flow: { proto: 'tcp', client: '10.0.0.1', clientPort: 40000, server: '10.0.0.2', serverPort: 443, service: HOSTILE_SERVICE, serverName: HOSTILE_SERVICE },
        host: HOSTILE_HOST, summary: HOSTILE_SUMMARY, evidence: { query: '"><svg onload=alert(3)>', n: 1 },
      },
    };
    const now = new Date().toISOString();
    const status: StatusMessage = {
      schema: STATUS_SCHEMA, id: statusMessageId(HOSTILE_SENSOR, new Date(now), 1), sensor: HOSTILE_SENSOR, version: '<i>1</i>', source,
      startedAt: now, time: now, uptimeSeconds: 1, state: 'running',
      capture: { packets: 1, bytes: 60, received: 1, drops: { kernel: 0, interface: 0, agent: 0 }, decodeErrors: {} },
      flows: { active: 0, evicted: 0 }, windows: 0,
      publish: { connected: true, published: 0, publishFailures: 0, inFlight: 0, spoolMessages: 0, spoolBytes: 0, overflowMessages: 0 },
    };
    await js.publish(subjectFor('web1', 'finding'), JSON.stringify(finding), { msgID: finding.id });
    await js.publish(subjectFor(HOSTILE_SENSOR, 'status'), JSON.stringify(status), { msgID: status.id });
  } finally {
    await nc.close();
  }
}

async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Console errors, page errors and dialogs (an alert would mean injected script ran) of one page. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`); });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message} (${page.url()})`));
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
  return problems;
}

const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });

test('collector web pages over a replayed sensor: headers, dashboard, sensor charts, report, findings, upload', { timeout: 90_000 }, async (t) => {
  const defer = deferrer(t);
  const work = mkdtempSync(join(tmpdir(), 'pa-web-'));
  defer(() => rmSync(work, { recursive: true, force: true }));
  const nats = await startNatsServer();
  defer(() => nats.close());
  const collector = await startCollector(defer, nats.url, join(work, 'collector'));
  const base = collector.base;

  const agentConfig = join(work, 'agent.yaml');
  writeFileSync(agentConfig, 'windows:\n  seconds: 1\n');
  const agent = spawnAgent(['--replay', SCAN, '--sensor', 'web1', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'agent'), '--config', agentConfig]);
  defer(() => { agent.child.kill('SIGKILL'); });
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  await publishHostile(nats.url);

  // Stored completely: the windows' packets add up to what the agent's last status counted.
  const q = `from=${encodeURIComponent(FROM)}&to=${encodeURIComponent(TO)}`;
  const windowCount = await waitFor('web1 with all its windows and the findings stored', async () => {
    const { sensors } = await getJson<{ sensors: SensorView[] }>(`${base}/api/sensors`);
    const web1 = sensors.find((s) => s.id === 'web1');
    if (!web1?.capture || !sensors.some((s) => s.id === HOSTILE_SENSOR)) return undefined;
    const { windows } = await getJson<{ windows: Array<{ packets: number }> }>(`${base}/api/sensors/web1/windows?${q}`);
    const packets = windows.reduce((n, w) => n + w.packets, 0);
    const scans = await getJson<{ findings: FindingView[] }>(`${base}/api/findings?sensor=web1&type=port_scan`);
    const hostile = await getJson<{ findings: FindingView[] }>(`${base}/api/findings?sensor=web1&type=dns_tunneling`);
    return packets === web1.capture.packets && scans.findings.length > 0 && hostile.findings.length > 0 ? windows.length : undefined;
  }, 30_000, 200);
  assert.ok(windowCount >= 5, `several 1 s windows (got ${windowCount})`);

  await t.test('HTTP: pages, static files, series and counts, redirects', async () => {
    const page = await http(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
    assert.ok(page.headers.get('content-security-policy')?.startsWith(CSP), page.headers.get('content-security-policy') ?? 'no CSP');
    const html = page.text;
    assert.match(html, /<title>Dashboard · PCAP Analyzer<\/title>/);
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)/, 'no inline script');
    assert.doesNotMatch(html, /\sstyle=|<style/, 'no inline style');

    const js = await http(`${base}/static/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    const etag = js.headers.get('etag')!;
    assert.equal((await http(`${base}/static/app.js`, { headers: { 'if-none-match': etag } })).status, 304);
    assert.match((await http(`${base}/static/app.css`)).headers.get('content-type') ?? '', /^text\/css/);
    assert.match((await http(`${base}/static/favicon.svg`)).headers.get('content-type') ?? '', /^image\/svg\+xml/);

    const series = await getJson<{ windows: number; pointSeconds: number; start: number[]; series: Record<string, Array<number | null>> }>(`${base}/api/sensors/web1/series?${q}`);
    assert.equal(series.windows, windowCount);
    assert.equal(series.pointSeconds, 1, 'one point per window over a minute');
    assert.equal(series.start.length, windowCount);
    assert.ok(series.series['packetsPerSecond']!.every((v) => typeof v === 'number' && v > 0));
    assert.equal((await http(`${base}/api/sensors/nope/series?${q}`)).status, 404);
    assert.equal((await http(`${base}/api/sensors/web1/series?from=yesterday`)).status, 400);
    const counts = await getJson<{ counts: Record<string, number> }>(`${base}/api/findings/counts?from=0`);
    assert.ok(counts.counts['critical']! >= 1 && counts.counts['warning']! + counts.counts['info']! >= 1, JSON.stringify(counts));

    const report = await http(`${base}/reports/web1?${q}&evil=1`, { redirect: 'manual' });
    assert.equal(report.status, 302);
    assert.equal(report.headers.get('location'), `/api/reports/web1?${new URLSearchParams({ from: FROM, to: TO }).toString()}&format=html`);
    const login = await http(`${base}/login?next=/findings`, { redirect: 'manual' });
    assert.equal(login.status, 303, 'auth off: /login goes on');
    assert.equal(login.headers.get('location'), '/findings');
    const missing = await http(`${base}/sensors/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.text, /No sensor &quot;nope&quot;/);
    // The hostile sensor id is escaped where the server puts it in a page.
    const evil = (await http(`${base}/sensors/${encodeURIComponent(HOSTILE_SENSOR)}`)).text;
    assert.ok(!evil.includes('<img'), 'sensor id escaped');
    assert.ok(evil.includes('evil&quot;&gt;&lt;img src=x onerror=alert(7)&gt;'));
  });

  await t.test('after the replay, the defaults show its data: the last hour of the sensor\'s own windows, finished', async () => {
    const { sensors } = await getJson<{ sensors: SensorView[] }>(`${base}/api/sensors`);
    const web1 = sensors.find((s) => s.id === 'web1')!;
    assert.equal(web1.state, 'finished', 'the agent\'s last status says the replay finished');
    assert.equal(web1.up, false, 'a finished replay is not up');
    const series = await getJson<{ from: string; to: string; windows: number }>(`${base}/api/sensors/web1/series`);
    assert.deepEqual([series.from, series.to, series.windows], [DATA_HOUR, DATA_END, windowCount]);
    const windows = await getJson<{ from: string; to: string; windows: unknown[] }>(`${base}/api/sensors/web1/windows`);
    assert.deepEqual([windows.from, windows.to, windows.windows.length], [DATA_HOUR, DATA_END, windowCount]);
    const report = await getJson<Report>(`${base}/api/reports/web1`);
    assert.equal(report.capture.packets, web1.capture!.packets, 'the default report holds every replayed packet');
    assert.equal(report.capture.packets, 2011);
    assert.equal(report.windows.length, windowCount);
    assert.ok(report.findings.some((f) => f.type === 'port_scan' && f.host === '172.16.0.8'), 'the scan is in the default report');
    const html = await http(`${base}/api/reports/web1?format=html`);
    assert.equal(html.status, 200);
    assert.match(html.text, /<td data-v="port_scan">port_scan<\/td>/);
    // An explicit range still means what it says: the wall clock's last hour holds nothing of 2010.
    const now = Date.now();
    const recent = await getJson<Report>(`${base}/api/reports/web1?from=${now / 1000 - 3600}&to=${now / 1000}`);
    assert.equal(recent.capture.packets, 0);
  });

  await t.test('in headless Chromium', { skip: noChromium }, async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const problems = watch(page);

      // Dashboard: the sensor up, counts by severity, latest findings; hostile strings as text.
      await page.goto(`${base}/`);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.title(), 'Dashboard · PCAP Analyzer');
      assert.equal(await page.textContent('#sensors tr[data-sensor="web1"] .badge'), 'finished', 'a replay that read all its input');
      assert.match(await page.textContent('#sensors tr[data-sensor="web1"]') ?? '', /replay: .*ppa_synscan\.pcapng/);
      const evilRow = await page.$$eval('#sensors tbody tr th a', (as) => as.map((a) => a.textContent));
      assert.ok(evilRow.includes(HOSTILE_SENSOR), `hostile sensor id shown as text: ${JSON.stringify(evilRow)}`);
      const allStored = await page.$$eval('#finding-counts tbody tr', (rows) => rows.map((r) => Number(r.querySelector('td:last-child')?.textContent)));
      assert.equal(allStored.length, 3);
      assert.ok(allStored.reduce((a, b) => a + b, 0) >= 2, `counts shown: ${allStored.join(', ')}`);
      const latest = await page.$$eval('#latest-findings tbody tr td:first-child', (cells) => cells.map((c) => c.getAttribute('title') ?? ''));
      assert.ok(latest.length > 0 && latest.length <= 20, `latest findings: ${latest.length}`);
      // Newest by window time: the first row's window is the newest any finding has.
      const newest = (await getJson<{ findings: Array<{ window: { start: string } }> }>(`${base}/api/findings?limit=1000`)).findings
        .map((f) => f.window.start).sort().at(-1)!;
      assert.equal(latest[0]!.split(' – ')[0], newest);
      const starts = latest.map((x) => x.split(' – ')[0]!);
      assert.deepEqual(starts, [...starts].sort().reverse(), 'latest findings newest window first');
      assert.ok((await page.textContent('#latest-findings') ?? '').includes(HOSTILE_SUMMARY), 'summary shown as text');
      assert.ok((await page.textContent('#latest-findings') ?? '').includes(`10.0.0.2:443 ${HOSTILE_SERVICE}`), 'the flow\'s service shown beside it, as text');
      assert.equal(await page.$$eval('main img, main iframe, main script', (els) => els.length), 0, 'no markup from data');
      await shot(page, 'web-dashboard.png');
      assert.deepEqual(problems, []);
      await page.goto(`${base}/sensors/${encodeURIComponent(HOSTILE_SENSOR)}`);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.textContent('h1 code'), HOSTILE_SENSOR);
      assert.equal(await page.$$eval('main img, main iframe, main script', (els) => els.length), 0, 'no markup from the sensor id');
      assert.deepEqual(problems, []);

      // Sensor page with no range: the last hour of the replay's own data, its findings, the report links.
      await page.goto(`${base}/sensors/web1`);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.textContent('#sensor-info .badge'), 'finished');
      assert.equal(await page.getAttribute('[data-range="1h"]', 'aria-current'), 'true');
      assert.equal(await page.textContent('#range-text'), '2010-07-04 19:24:40 – 2010-07-04 20:24:40 UTC');
      // An hour at about 1 s windows is charted in buckets of several windows: every window counted, some points drawn.
      assert.match(await page.textContent('#charts-note') ?? '', new RegExp(`^${windowCount} windows of 1 s from 2010-07-04 19:24:40 to 2010-07-04 20:24:40 UTC\\.`));
      assert.ok(Number(await page.getAttribute('svg[data-chart="packets"]', 'data-points')) > 0, 'the packets chart has points');
      const defaultFindings = await page.$$eval('#sensor-findings tbody tr', (rows) => rows.map((r) => r.getAttribute('data-type')));
      assert.ok(defaultFindings.includes('port_scan'), `sensor findings: ${defaultFindings.join(', ')}`);
      const defaultRange = new URLSearchParams({ from: DATA_HOUR, to: DATA_END }).toString();
      assert.equal(await page.getAttribute('#report-html', 'href'), `/api/reports/web1?${defaultRange}&format=html`);
      assert.equal(await page.getAttribute('#report-json', 'href'), `/api/reports/web1?${defaultRange}&format=json`);
      await shot(page, 'web-sensor-default.png');
      assert.deepEqual(problems, []);
      await page.click('#report-html');
      await page.waitForLoadState('load');
      assert.match(await page.textContent('#summary') ?? '', /Packets\s*2,011/);
      const reportTypes = await page.$$eval('#findings tbody tr td:nth-child(2)', (cells) => cells.map((c) => c.textContent));
      assert.ok(reportTypes.includes('port_scan'), `report findings: ${reportTypes.join(', ')}`);
      await shot(page, 'web-report-default.png');
      assert.deepEqual(problems, []);
      const jsonReport = await page.request.get(`${base}/api/reports/web1?${defaultRange}&format=json`);
      assert.equal(jsonReport.status(), 200);
      assert.equal(((await jsonReport.json()) as Report).capture.packets, 2011);
      // A quick range ends where the sensor's data ends too.
      await page.goto(`${base}/sensors/web1?range=15m`);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.textContent('#range-text'), '2010-07-04 20:09:40 – 2010-07-04 20:24:40 UTC');
      assert.match(await page.textContent('#charts-note') ?? '', new RegExp(`^${windowCount} windows of 1 s `));

      // Sensor page over the capture's time: every chart drawn, the ones with data as paths.
      await page.goto(`${base}/sensors/web1?${q}`);
      await page.waitForSelector('body[data-loaded="true"]');
      const charts = await page.$$eval('svg[data-chart]', (svgs) => svgs.map((svg) => ({
        id: svg.getAttribute('data-chart'),
        drawn: svg.getAttribute('data-drawn'),
        points: Number(svg.getAttribute('data-points')),
        paths: [...svg.querySelectorAll('path.line')].map((p) => (p.getAttribute('d') ?? '').split(/[ML]/).length - 1),
      })));
      assert.deepEqual(charts.map((c) => c.id), ['packets', 'throughput', 'retransmissions', 'rtt', 'dns', 'health', 'drops']);
      for (const c of charts) assert.equal(c.drawn, 'true', `${c.id} drawn`);
      const byId = new Map(charts.map((c) => [c.id, c]));
      for (const id of ['packets', 'throughput', 'health']) {
        assert.equal(byId.get(id)!.points, windowCount, `${id}: a point per window`);
        assert.equal(byId.get(id)!.paths.reduce((a, b) => a + b, 0), windowCount, `${id}: path through every point`);
      }
      assert.ok(byId.get('rtt')!.paths.length === 2 && byId.get('rtt')!.points > 0, 'RTT p50 and p99 drawn');
      assert.equal(byId.get('dns')!.points, 0, 'a SYN scan has no DNS');
      assert.match(await page.textContent('#range-text') ?? '', /^2010-07-04 20:24:00 – 2010-07-04 20:25:00 UTC$/);
      const sensorFindings = await page.$$eval('#sensor-findings tbody tr', (rows) => rows.map((r) => r.getAttribute('data-type')));
      assert.ok(sensorFindings.includes('port_scan'), `sensor findings: ${sensorFindings.join(', ')}`);
      const reportHref = await page.getAttribute('#report-html', 'href');
      assert.equal(reportHref, `/api/reports/web1?${new URLSearchParams({ from: '2010-07-04T20:24:00.000000Z', to: '2010-07-04T20:25:00.000000Z' }).toString()}&format=html`);
      await shot(page, 'web-sensor.png');
      assert.deepEqual(problems, []);

      // The range's HTML report (served by the API, its own CSP): charts drawn.
      await page.click('#report-html');
      await page.waitForLoadState('load');
      const reportCharts = await page.$$eval('[data-chart]', (els) => els.map((el) => el.getAttribute('data-drawn')));
      assert.ok(reportCharts.length >= 2, `report charts: ${reportCharts.length}`);
      assert.ok(reportCharts.every((d) => d === 'true'), 'every report chart drawn');
      await shot(page, 'web-report.png');
      assert.deepEqual(problems, []);

      // Findings: listed, filtered through the form, paged with "More".
      await page.goto(`${base}/findings`);
      await page.waitForSelector('body[data-loaded="true"]');
      const types = await page.$$eval('#findings tbody tr', (rows) => rows.map((r) => r.getAttribute('data-type')));
      assert.ok(types.includes('port_scan'), `findings: ${types.join(', ')}`);
      await page.fill('#f-type', 'port_scan');
      await page.selectOption('#f-severity', '');
      await Promise.all([page.waitForURL(/\/findings\?.*type=port_scan/), page.click('#finding-filters button[type="submit"]')]);
      await page.waitForSelector('body[data-loaded="true"]');
      const filtered = await page.$$eval('#findings tbody tr', (rows) => rows.map((r) => r.getAttribute('data-type')));
      assert.ok(filtered.length > 0 && filtered.every((x) => x === 'port_scan'), `filtered: ${filtered.join(', ')}`);
      assert.equal(await page.inputValue('#f-type'), 'port_scan', 'the form keeps the filter');
      await shot(page, 'web-findings.png');
      await page.goto(`${base}/findings?limit=2`);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.$$eval('#findings tbody tr', (rows) => rows.length), 2);
      await page.click('#findings button.more');
      await page.waitForFunction(() => document.querySelectorAll('#findings tbody tr').length === 4);
      assert.deepEqual(problems, []);

      // Upload through the file input: upload progress, analysis polled to done, report links, delete.
      await page.goto(`${base}/upload`);
      await page.setInputFiles('#file', HANDSHAKE);
      await page.click('#upload-button');
      await page.waitForSelector('#capture[data-status="done"]', { timeout: 30_000 });
      assert.equal(await page.textContent('#capture .badge'), 'done');
      assert.equal(await page.$eval('#upload-progress', (el) => (el as HTMLProgressElement).value), 100);
      const htmlReport = await page.getAttribute('#capture a[data-report="html"]', 'href');
      assert.match(htmlReport ?? '', /^\/api\/captures\/[0-9a-f-]{36}\/report\?format=html$/);
      assert.match(await page.getAttribute('#capture a[data-report="json"]', 'href') ?? '', /\?format=json$/);
      assert.match(await page.textContent('#capture dl') ?? '', /ppa_tcp_handshake\.pcapng/);
      await shot(page, 'web-upload.png');
      const captureId = /captures\/([0-9a-f-]{36})\//.exec(htmlReport!)![1]!;
      const report = await getJson<{ capture: { packets: number } }>(`${base}/api/captures/${captureId}/report?format=json`);
      assert.equal(report.capture.packets, 3);
      await page.goto(`${base}/captures/${captureId}`);
      await page.waitForSelector('#capture[data-status="done"]');
      await page.click('#delete-capture');
      assert.equal(await page.textContent('#delete-capture'), 'Click again to delete');
      await page.click('#delete-capture');
      await page.waitForSelector('#capture[data-status="deleted"]');
      assert.equal((await http(`${base}/api/captures/${captureId}`)).status, 404);
      assert.deepEqual(problems, []);

      // A refused upload shows the API's reason.
      const bogus = join(work, 'not-a-capture.pcap');
      writeFileSync(bogus, 'hello, this is text\n'.repeat(10));
      await page.goto(`${base}/upload`);
      await page.setInputFiles('#file', bogus);
      await page.click('#upload-button');
      await page.waitForSelector('#upload-error:not([hidden])');
      assert.match(await page.textContent('#upload-error') ?? '', /not a capture file.*415.*neither a pcap/);
    } finally {
      await browser.close();
    }
  });
});

test('collector web with API_TOKEN: login form, session cookie, bearer API, open health', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const work = mkdtempSync(join(tmpdir(), 'pa-web-auth-'));
  defer(() => rmSync(work, { recursive: true, force: true }));
  const nats = await startNatsServer();
  defer(() => nats.close());
  const collector = await startCollector(defer, nats.url, join(work, 'collector'), { API_TOKEN: 'secret' });
  const base = collector.base;

  await t.test('HTTP', async () => {
    assert.equal((await http(`${base}/api/health`)).status, 200, '/api/health is open');
    assert.equal((await http(`${base}/api/sensors`)).status, 401);
    assert.equal((await http(`${base}/api/sensors`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await http(`${base}/api/sensors`, { headers: { authorization: 'Bearer secret' } })).status, 200);
    assert.equal((await http(`${base}/static/app.css`)).status, 200, 'static files are open');
    const dash = await http(`${base}/`, { redirect: 'manual' });
    assert.equal(dash.status, 401);
    assert.match(dash.text, /<meta http-equiv="refresh" content="0; url=\/login\?next=%2F">/);
    const form = await http(`${base}/login?next=%2Ffindings`);
    assert.equal(form.status, 200);
    assert.match(form.text, /name="next" value="\/findings"/);

    const post = (fields: Record<string, string>): Promise<Answer> => http(`${base}/login`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString(),
    });
    const wrong = await post({ token: 'nope', next: '/' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.text, /Wrong token/);
    assert.equal(wrong.headers.get('set-cookie'), null);
    await waitFor('the audit line', () => collector.output().split('\n').some((l) => l.includes('"audit":true') && l.includes('"action":"login"') && l.includes('"outcome":"denied"') && !l.includes('nope')) || undefined, 5000);

    const good = await post({ token: 'secret', next: '/findings?type=port_scan' });
    assert.equal(good.status, 303);
    assert.equal(good.headers.get('location'), '/findings?type=port_scan');
    const cookie = good.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^pa_session=[\w-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    assert.ok(!cookie.includes('secret'), 'the cookie is not the token');
    const session = cookie.split(';')[0]!;
    assert.equal((await http(`${base}/`, { headers: { cookie: session } })).status, 200);
    assert.equal((await http(`${base}/api/sensors`, { headers: { cookie: session } })).status, 200);
    // No open redirect: only local paths.
    for (const next of ['//evil.example/x', '/\\evil.example', 'https://evil.example/', '/\t/evil.example', 'javascript:alert(1)']) {
      const r = await post({ token: 'secret', next });
      assert.equal(r.headers.get('location'), '/', `next ${JSON.stringify(next)}`);
    }
    // Logout revokes the session on the server: the cookie, replayed, no longer works.
    const out = await http(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: session } });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie') ?? '', /^pa_session=; .*Max-Age=0/);
    assert.equal((await http(`${base}/api/sensors`, { headers: { cookie: session } })).status, 401, 'a revoked session is refused');
  });

  await t.test('in headless Chromium', { skip: noChromium }, async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const problems = watch(page);
      // The 401 page sends the browser on to the login form.
      await page.goto(`${base}/`);
      await page.waitForURL(/\/login\?/);
      assert.equal(new URL(page.url()).pathname, '/login');
      assert.equal(new URL(page.url()).searchParams.get('next'), '/');
      await shot(page, 'web-login.png');
      await page.fill('#token', 'wrong');
      const [refused] = await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
      assert.equal(refused?.status(), 401);
      assert.match(await page.textContent('main') ?? '', /Wrong token/);
      await page.fill('#token', 'secret');
      await Promise.all([page.waitForURL(`${base}/`), page.click('form.login button')]);
      await page.waitForSelector('body[data-loaded="true"]');
      assert.equal(await page.title(), 'Dashboard · PCAP Analyzer');
      await shot(page, 'web-dashboard-auth.png');
      // The 401 answer to the wrong token is the only failed load expected.
      assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
      await Promise.all([page.waitForURL(/\/login$/), page.click('form.logout button')]);
      await page.goto(`${base}/findings`);
      await page.waitForURL(/\/login\?/);
      assert.equal(new URL(page.url()).pathname, '/login', 'logged out');
    } finally {
      await browser.close();
    }
  });
});
