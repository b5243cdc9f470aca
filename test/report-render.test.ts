/**
 * The CSV and HTML renderings of the report: CSV quoting and formula
 * neutralizing, columns checked against a real report; HTML escaping of
 * hostile strings; and the HTML page of a real capture opened from disk in
 * headless Chromium (skipped when /usr/bin/chromium is absent; .ci/run
 * installs Debian's chromium), with a screenshot in test-artifacts/report.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyzeCapture } from '../agent/analyze/index.js';
import { DEFAULT_CONFIG } from '../common/config.js';
import { csvField, renderCsv, windowMetricColumns } from '../common/report-csv.js';
import { aggregateTalkers, escapeHtml, renderHtml } from '../common/report-html.js';
import { REPORT_SCHEMA, type Report } from '../common/report.js';
import { CLI, REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');

const reports = new Map<string, Promise<Report>>();
function realReport(file: string): Promise<Report> {
  let r = reports.get(file);
  if (!r) {
    r = analyzeCapture(join(SHARED_PCAPS, file), DEFAULT_CONFIG).then((x) => x.report);
    reports.set(file, r);
  }
  return r;
}

/** RFC 4180 parser: rows of fields, quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else field += c;
  }
  assert.equal(quoted, false, 'unterminated quoted field');
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** The three tables of renderCsv's output, by name, each as a header row and records. */
function csvTables(text: string): Map<string, { head: string[]; records: Array<Record<string, string>> }> {
  const tables = new Map<string, { head: string[]; records: Array<Record<string, string>> }>();
  let current: { head: string[]; records: Array<Record<string, string>> } | undefined;
  for (const row of parseCsv(text)) {
    if (row.length === 1 && row[0]!.startsWith('# ')) {
      current = { head: [], records: [] };
      tables.set(row[0]!.slice(2), current);
    } else if (row.length === 1 && row[0] === '') {
      current = undefined;
    } else {
      assert.ok(current, `row outside a table: ${JSON.stringify(row)}`);
      if (!current.head.length) current.head = row;
      else {
        assert.equal(row.length, current.head.length, `row width: ${JSON.stringify(row)}`);
        current.records.push(Object.fromEntries(row.map((v, i) => [current!.head[i], v])));
      }
    }
  }
  return tables;
}

/** A report built by hand, every string field hostile. */
function hostileReport(): Report {
  const script = '<script>alert("x")</script>';
  const w = (start: string, end: string, p50: number, score: number): Report['windows'][number] => ({
    start, end, packets: 10, bytes: 5000, flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0,
    metrics: {
      tcp: { dataSegments: 10, retransmissions: 1, retransmissionRate: 0.1 },
      rtt: { count: 3, p50, p90: p50 * 2, p99: p50 * 3, max: p50 * 4 },
      dns: { queries: 2, p50: 0.01, p90: 0.02, p99: null },
      talkers: { hosts: [{ host: '<script>alert(2)</script>', bytes: 100, packets: 2 }, { host: '=cmd|calc', bytes: 50, packets: 1 }] },
      '<b>bold</b>': { '"><img src=x onerror=alert(3)>': 1 },
    },
    healthScore: score,
  });
  return {
    schema: REPORT_SCHEMA,
    source: { path: '/tmp/<img src=x onerror=alert(1)>.pcap', format: 'pcap', compressed: false, linkTypes: ['EN10MB', '<i>x</i>'] },
    capture: {
      packets: 20, bytes: 10000, first: '2024-01-01T00:00:01.000000Z', last: '2024-01-01T00:00:19.000000Z', durationSeconds: 18,
      truncatedRecords: 1, decodeErrors: { '<svg onload=alert(4)>': 2 }, undecoded: { "LINKTYPE_'1'": 1 }, flowsEvicted: 0,
    },
    counters: { frames: 20, '<u>tcp</u>': 3 },
    flows: [{
      proto: 'udp', client: '10.0.0.1', clientPort: 53000, server: '<iframe>', serverPort: 53, packets: 4, bytes: 400,
      first: '2024-01-01T00:00:01.000000Z', last: '2024-01-01T00:00:02.000000Z', state: 'open', stream: 0,
    }],
    windows: [w('2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:10.000000Z', 0.01, 95), w('2024-01-01T00:00:10.000000Z', '2024-01-01T00:00:20.000000Z', 0.02, 60)],
    findings: [{
      id: 'f1', type: 'dns_<script>', severity: 'warning', window: { start: '2024-01-01T00:00:00.000000Z', end: '2024-01-01T00:00:10.000000Z' },
      host: `evil.${script}.example`, summary: `Slow answers for ${script}, "quoted", and a\nnew line.`,
      evidence: { query: '</script><script>alert(5)</script>', n: 1, '<k>': true },
    }, {
      id: 'f2', type: 'tcp_retransmissions', severity: 'critical', window: { start: '2024-01-01T00:00:10.000000Z', end: '2024-01-01T00:00:20.000000Z' },
      flow: { proto: 'tcp', client: '2001:db8::1', clientPort: 1234, server: '10.0.0.2', serverPort: 80 },
      summary: '=HYPERLINK("http://evil.example","click")', evidence: {},
    }],
    healthScore: { score: 77.5, class: 'good"><script>alert(6)</script>', components: [{ name: '<rtt>', value: 0.2, penalty: 10, weight: 20 }] },
  };
}

test('csvField: RFC 4180 quoting and spreadsheet formulas neutralized', () => {
  const cases: Array<[unknown, string]> = [
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\rhere', '"cr\rhere"'],
    ['crlf\r\n', '"crlf\r\n"'],
    ['=SUM(A1:A9)', "'=SUM(A1:A9)"],
    ['+1 555', "'+1 555"],
    ['-2+3', "'-2+3"],
    ['@cmd', "'@cmd"],
    ['\tx', "'\tx"],
    ['=1,"2"', `"'=1,""2"""`],
    ['a=b', 'a=b'],
    ['', ''],
    [-5, '-5'],
    [0.000016, '0.000016'],
    [1.8e-7, '1.8e-7'],
    [NaN, ''],
    [null, ''],
    [undefined, ''],
    [true, 'true'],
    [{ a: 1, b: 'x,y' }, '"{""a"":1,""b"":""x,y""}"'],
  ];
  for (const [input, expected] of cases) assert.equal(csvField(input), expected, JSON.stringify(input));
});

test('renderCsv: hostile strings survive a round trip, neutralized, in the right cells', () => {
  const report = hostileReport();
  const text = renderCsv(report);
  assert.match(text, /^# flows\n/);
  assert.match(text, /\n\n# windows\n/);
  assert.match(text, /\n\n# findings\n/);
  const tables = csvTables(text);
  assert.deepEqual([...tables.keys()], ['flows', 'windows', 'findings']);
  const findings = tables.get('findings')!;
  assert.deepEqual(findings.head, ['id', 'type', 'severity', 'window.start', 'window.end', 'flow/host', 'summary', 'evidence']);
  assert.equal(findings.records[0]!['summary'], report.findings[0]!.summary, 'comma, quotes and newline kept');
  assert.equal(findings.records[0]!['flow/host'], report.findings[0]!.host);
  assert.deepEqual(JSON.parse(findings.records[0]!['evidence']!), report.findings[0]!.evidence);
  assert.equal(findings.records[1]!['summary'], `'${report.findings[1]!.summary}`, 'formula prefixed with a quote');
  assert.equal(findings.records[1]!['flow/host'], 'tcp [2001:db8::1]:1234 -> 10.0.0.2:80');
  // Every cell that a spreadsheet would evaluate starts with the neutralizing quote.
  for (const table of tables.values()) {
    for (const rec of table.records) for (const v of Object.values(rec)) assert.doesNotMatch(v, /^[=+@\t\r]/, v);
  }
  const windows = tables.get('windows')!;
  assert.deepEqual(windows.head.slice(0, 9), ['start', 'end', 'packets', 'bytes', 'flows.active', 'flows.new', 'flows.closed', 'healthScore', 'outOfOrderTimestamps']);
  const metricColumns = windows.head.slice(9);
  assert.deepEqual(metricColumns, [...metricColumns].sort(), 'metric columns sorted');
  assert.ok(metricColumns.includes('rtt.p50') && metricColumns.includes('dns.p99') && metricColumns.includes('tcp.retransmissionRate'));
  assert.ok(!metricColumns.some((c) => c.startsWith('talkers.')), 'lists are not columns');
  assert.equal(windows.records[1]!['rtt.p50'], '0.02');
  assert.equal(windows.records[1]!['dns.p99'], '', 'null is an empty cell');
  assert.equal(windows.records[1]!['healthScore'], '60');
});

test('renderCsv: a real capture, every table cell equal to the JSON report', async () => {
  const report = await realReport('ppa1e_email-troubles.pcap');
  assert.ok(report.windows.length > 1 && report.findings.length > 0 && report.flows.length > 0, 'capture has windows, findings, flows');
  const tables = csvTables(renderCsv(report));

  const flows = tables.get('flows')!;
  assert.deepEqual(flows.head.slice(0, 11), ['proto', 'client', 'clientPort', 'server', 'serverPort', 'packets', 'bytes', 'first', 'last', 'state', 'stream']);
  assert.equal(flows.records.length, report.flows.length);
  report.flows.forEach((f, i) => {
    for (const [k, v] of Object.entries(f)) assert.equal(flows.records[i]![k], String(v), `flow ${i} ${k}`);
  });

  const windows = tables.get('windows')!;
  assert.equal(windows.records.length, report.windows.length);
  const metricColumns = windowMetricColumns(report.windows);
  assert.deepEqual(windows.head.slice(9), metricColumns);
  assert.ok(metricColumns.includes('tcp.retransmissionRate'), 'tcp metrics flattened');
  report.windows.forEach((w, i) => {
    const rec = windows.records[i]!;
    assert.equal(rec['start'], w.start);
    assert.equal(rec['end'], w.end);
    assert.equal(Number(rec['packets']), w.packets);
    assert.equal(Number(rec['bytes']), w.bytes);
    assert.equal(Number(rec['flows.active']), w.flows.active);
    assert.equal(Number(rec['flows.new']), w.flows.new);
    assert.equal(Number(rec['flows.closed']), w.flows.closed);
    assert.equal(rec['healthScore'], w.healthScore === null ? '' : String(w.healthScore));
    for (const c of metricColumns) {
      const [analyzer, metric] = [c.slice(0, c.indexOf('.')), c.slice(c.indexOf('.') + 1)];
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      const v = w.metrics[analyzer]?.[metric];
      assert.equal(rec[c], typeof v === 'number' ? String(v) : '', `window ${i} ${c}`);
    }
  });

  const findings = tables.get('findings')!;
  assert.equal(findings.records.length, report.findings.length);
  report.findings.forEach((f, i) => {
    const rec = findings.records[i]!;
    assert.equal(rec['id'], f.id);
    assert.equal(rec['type'], f.type);
    assert.equal(rec['severity'], f.severity);
    assert.equal(rec['window.start'], f.window.start);
    assert.equal(rec['window.end'], f.window.end);
    assert.equal(rec['summary'], /^[=+\-@]/.test(f.summary) ? `'${f.summary}` : f.summary);
    assert.deepEqual(JSON.parse(rec['evidence']!), f.evidence);
  });
});

test('renderHtml: every report string is escaped, no live markup from the report', () => {
  const html = renderHtml(hostileReport());
  assert.match(html, /^<!DOCTYPE html>/);
  assert.equal(html.match(/<script/gi)?.length, 2, 'only the data block and the page script');
  assert.match(html, /<script type="application\/json" id="report-data">/);
  for (const live of ['<img', '<iframe', '<svg', '<b>', '<i>', '<u>', '<k>', '<rtt>', 'alert(5)</script>']) {
    assert.ok(!html.includes(live), `${live} must not appear unescaped`);
  }
  assert.ok(html.includes(escapeHtml('Slow answers for <script>alert("x")</script>')), 'summary escaped');
  assert.ok(html.includes('evil.&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.example'), 'DNS name escaped');
  assert.ok(html.includes('&lt;/script&gt;&lt;script&gt;alert(5)&lt;/script&gt;'), 'evidence escaped');
  assert.ok(html.includes('&lt;script&gt;alert(2)&lt;/script&gt;'), 'talker escaped');
  assert.ok(html.includes('class="score hc-unknown"'), 'an odd health class is not used as a class name');
  assert.match(html, /Content-Security-Policy" content="default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'/);
  assert.doesNotMatch(html, /https?:\/\/(?!evil\.example)/, 'no network address');
  assert.equal(escapeHtml(`<a href='x'>&"`), '&lt;a href=&#39;x&#39;&gt;&amp;&quot;');
});

test('renderHtml: analyzers absent, no windows or no packets: sections left out, no error', () => {
  const empty: Report = {
    schema: REPORT_SCHEMA,
    source: { path: 'empty.pcap', format: 'pcap', compressed: false, linkTypes: [] },
    capture: { packets: 0, bytes: 0, first: null, last: null, durationSeconds: 0, truncatedRecords: 0, decodeErrors: {}, undecoded: {}, flowsEvicted: 0 },
    counters: {}, flows: [], windows: [], findings: [],
  };
  const html = renderHtml(empty);
  assert.ok(!html.includes('data-chart='), 'no charts without windows');
  assert.ok(!html.includes('id="health"') && !html.includes('id="talkers"') && !html.includes('id="flows"'));
  assert.match(html, /No findings\./);
  const onlyTcp = hostileReport();
  for (const w of onlyTcp.windows) { w.metrics = { tcp: w.metrics['tcp']! }; w.healthScore = null; }
  delete onlyTcp.healthScore;
  const charts = [...renderHtml(onlyTcp).matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(charts, ['retransmission-rate', 'throughput']);
});

test('aggregateTalkers: lists and maps of the windows added up', () => {
  const report = hostileReport();
  const [hosts] = aggregateTalkers(report.windows);
  assert.equal(hosts!.title, 'hosts');
  assert.deepEqual(hosts!.columns, ['host', 'bytes', 'packets', 'windows']);
  assert.deepEqual(hosts!.rows, [['<script>alert(2)</script>', 200, 4, 2], ['=cmd|calc', 100, 2, 2]]);
  const mapped = aggregateTalkers([{ ...report.windows[0]!, metrics: { talkers: { bytesByHost: { a: 5, b: 7 } } } }]);
  assert.deepEqual(mapped[0]!.rows, [['b', 7, 1], ['a', 5, 1]]);
});

test('html: the names section adds up TLS server names, HTTP hosts and codes, services and VLANs over the windows', async () => {
  const { report } = await analyzeCapture(join(SHARED_PCAPS, 'ndpi_1kxun.pcap'), DEFAULT_CONFIG);
  const html = renderHtml(report);
  const section = /<section id="names">[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
  assert.match(html, /<a href="#names">Names<\/a>/);
  // Every HTTP host of every window is in the table, with its requests added up.
  const requests = new Map<string, number>();
  for (const w of report.windows) {
    for (const h of (w.metrics['http'] as { hosts: Array<{ host: string; requests: number }> }).hosts) requests.set(h.host, (requests.get(h.host) ?? 0) + h.requests);
  }
  assert.ok(requests.size > 3);
  for (const [host, n] of [...requests].sort((a, b) => b[1] - a[1]).slice(0, 5)) {
    assert.match(section, new RegExp(`data-v="${host.replace(/\./g, '\\.')}">[^<]*</td><td class="num" data-v="${n}"`), host);
  }
  for (const title of ['tls.handshake.extensions_server_name', 'http.host', 'http.response.code', 'Services', 'frame.interface_id']) assert.ok(section.includes(title), title);
  // A quantile is not added up across windows.
  assert.doesNotMatch(section, /ack_rtt\.p50/i);
});

test('the CLI writes csv and html', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-render-'));
  try {
    const pcap = join(SHARED_PCAPS, 'arkime_wireshark-retrans.pcap');
    const csv = spawnSync(process.execPath, [CLI, 'analyze', pcap, '--format', 'csv'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(csv.status, 0, csv.stderr);
    assert.deepEqual([...csvTables(csv.stdout).keys()], ['flows', 'windows', 'findings']);
    const out = join(dir, 'r.html');
    const html = spawnSync(process.execPath, [CLI, 'analyze', pcap, '--format', 'html', '--out', out], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(html.status, 0, html.stderr);
    assert.equal(html.stdout, '');
    const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    assert.match(help.stdout, /csv/);
    assert.match(help.stdout, /html/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const noChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`;

test('the HTML report in headless Chromium: no errors, every chart drawn, screenshot', { skip: noChromium, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const report = await realReport('ndpi_1kxun.pcap');
  assert.ok(report.windows.length > 3, 'several windows');
  const dir = mkdtempSync(join(tmpdir(), 'report-html-'));
  const file = join(dir, 'report.html');
  writeFileSync(file, renderHtml(report));
  const hostileFile = join(dir, 'hostile.html');
  writeFileSync(hostileFile, renderHtml(hostileReport()));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });

    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const charts = await page.$$eval('[data-chart]', (els) => els.map((el) => {
      const c = el as HTMLCanvasElement;
      const blank = document.createElement('canvas');
      blank.width = c.width;
      blank.height = c.height;
      return { id: c.dataset['chart'], drawn: c.dataset['drawn'], error: c.dataset['error'] ?? null, width: c.width, blank: c.toDataURL() === blank.toDataURL() };
    }));
    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [], 'no network requests');
    const ids = charts.map((c) => c.id);
    for (const id of ['health-score', 'retransmission-rate', 'rtt', 'throughput']) {
      if (id === 'health-score' && !report.windows.some((w) => w.healthScore !== null)) continue;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      if (id === 'rtt' && !report.windows.some((w) => w.metrics['rtt'])) continue;
      assert.ok(ids.includes(id), `chart ${id} present (have ${ids.join(', ')})`);
    }
    for (const c of charts) {
      assert.equal(c.drawn, 'true', `${c.id} drawn (${c.error ?? ''})`);
      assert.ok(c.width > 0, `${c.id} has a size`);
      assert.equal(c.blank, false, `${c.id} is not blank`);
    }
    // report.png: summary, health and charts (what a reviewer looks at); report-full.png: the whole page.
    mkdirSync(ARTIFACTS, { recursive: true });
    const chartsBottom = await page.$eval('#findings', (el) => el.getBoundingClientRect().top + window.scrollY);
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(chartsBottom) } });
    await page.screenshot({ path: join(ARTIFACTS, 'report-full.png'), fullPage: true });
    // Findings sort on a header click.
    const findingRows = await page.$$eval('table.findings tbody tr', (rows) => rows.length);
    assert.equal(findingRows, Math.min(report.findings.length, 5000));
    if (findingRows > 1) {
      await page.click('table.findings th:nth-child(1)');
      await page.click('table.findings th:nth-child(1)');
      const order = await page.$$eval('table.findings tbody td:first-child', (tds) => tds.map((td) => Number(td.getAttribute('data-v'))));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), 'ascending by severity after two clicks');
    }

    // The hostile report: its strings are text, nothing runs.
    await page.goto(pathToFileURL(hostileFile).href, { waitUntil: 'load' });
    assert.deepEqual(problems, []);
    assert.equal(await page.$$eval('script', (s) => s.length), 2);
    assert.equal(await page.$$eval('img, iframe, svg', (s) => s.length), 0);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- textContent is null for some nodes
    const summary = await page.$eval('table.findings tbody', (b) => b.textContent ?? '');
    assert.ok(summary.includes('Slow answers for <script>alert("x")</script>'), 'shown as text');
    const drawn = await page.$$eval('[data-chart]', (els) => els.every((el) => el.getAttribute('data-drawn') === 'true'));
    assert.equal(drawn, true);
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
