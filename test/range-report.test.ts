/**
 * Range reports equal `analyze`: every shared capture is replayed by a real
 * agent into one nats-server and one collector (SQLite), one sensor per
 * capture, and the collector's /api/reports over the capture's packet-time
 * range equals `analyze --format json` of the same file in everything but
 * the source (a sensor, not a file) and the top flows (kept only by
 * `analyze`): capture, counters (zeros included), windows, findings, stats
 * and healthScore. An empty range lists the counters and distributions of an
 * empty capture; windows without the merge inputs say what is missing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finding, Report, WindowSummary } from '../common/report.js';
import { SHARED_PCAPS, readTsv } from './helpers/paths.js';
import { analyzeJson, freePort, metricValue, parseMetrics, spawnAgent, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { EtherTypes, PcapngBuilder, Proto, ethernet, ipv4, pcapFile, udp } from './helpers/capture-writer.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { isoMicros, publishWindows } from './helpers/stream-reader.js';

const WINDOW_SECONDS = 10;
const captures = readTsv(readFileSync(join(SHARED_PCAPS, 'MANIFEST.tsv'), 'utf8')).map((row) => row['file']!);

let work: string;
let nats: NatsServerHandle;
let collector: AgentProcess;
let base: string;
let config: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pa-range-report-'));
  config = join(work, 'config.yaml');
  writeFileSync(config, `windows:\n  seconds: ${WINDOW_SECONDS}\n`);
  nats = await startNatsServer();
  const port = await freePort();
  collector = spawnCli(['collector', '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'collector'), '--config', config]);
  base = `http://127.0.0.1:${port}`;
  await waitFor('the collector to answer', async () => (await fetch(`${base}/api/health`)).ok || undefined, 20_000, 100);
});

after(async () => {
  collector.child.kill('SIGKILL');
  await collector.exited;
  await nats.close();
  rmSync(work, { recursive: true, force: true });
});

const getJson = async <T>(url: string): Promise<T> => {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: ${res.status} ${await res.clone().text()}`);
  return await res.json() as T;
};

/** Within a window the collector lists findings by id; analyze lists them as reported. */
const byWindowAndId = (a: Finding, b: Finding): number => a.window.start.localeCompare(b.window.start) || a.id.localeCompare(b.id);

/**
 * The report without what a range report cannot have: the source (a sensor,
 * not a file) and the top flows; and without what only a sensor's windows
 * carry: their capture, counters and rangeInputs (the inputs of the range report itself).
 */
function comparable(r: Report): Omit<Report, 'source' | 'flows'> {
  const { source: _source, flows: _flows, ...rest } = r;
  const windows = r.windows.map((w): WindowSummary => {
    const { capture: _capture, counters: _counters, rangeInputs: _inputs, ...own } = w;
    return own;
  });
  return { ...rest, windows, findings: [...r.findings].sort(byWindowAndId) };
}

/**
 * Captures the collector cannot hold whole, with why: the windows it refuses are left out of
 * the comparison (the test fails if one is listed and the collector holds all its windows).
 */
const NOT_WHOLE: Partial<Record<string, string>> = {
  'pcpp_pcapng-example.pcapng': 'its interface 1 stamps 99 packets in year 586524, past the last time a JavaScript Date holds (year 275760): the collector'
    + ' refuses their window (its start is not a time), so the range report has the 5 windows before it and their findings, not the totals of the file',
};

/** Whether the collector can store a window starting at `iso` (it parses times with Date). */
const storable = (iso: string): boolean => Number.isFinite(Date.parse(iso));

/** The range of window starts that holds every window of a capture: from its first packet's window to just after its last packet (or last storable window). */
function packetRange(r: Report): string {
  const first = Date.parse(r.capture.first!) / 1000;
  const last = Date.parse(r.capture.last!) / 1000;
  const to = Number.isFinite(last) ? last + 1 : Date.parse(r.windows.filter((w) => storable(w.start)).at(-1)!.end) / 1000;
  return `from=${Math.floor(first / WINDOW_SECONDS) * WINDOW_SECONDS}&to=${to}`;
}

/** Runs `jobs` with at most `width` at once (the machine's cores are shared). */
async function pool<T>(items: readonly T[], width: number, job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
  }));
}

/**
 * What no shared capture has together: a second interface of a link type the decoder does not know,
 * a packet stamped before its window, a malformed IPv4 header, a record longer captured than on the
 * wire, and a last record cut short; over three windows.
 */
function craftedEdges(): Buffer {
  const frame = (port: number, bytes = 'p'): Buffer => ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4,
    ipv4({ src: '10.2.0.1', dst: '10.2.0.2', proto: Proto.UDP, payload: udp({ srcPort: port, dstPort: 53, payload: Buffer.from(bytes) }) }));
  const us = (seconds: number): bigint => BigInt(Math.round((1_700_000_000 + seconds) * 1e6));
  const b = new PcapngBuilder().section().interface({ linkType: 1 }).interface({ linkType: 147 });
  b.epb(0, { ts: us(1), data: frame(1000) });
  b.epb(1, { ts: us(2), data: Buffer.from('not decoded') });
  b.epb(0, { ts: us(12), data: frame(1001) });
  b.epb(0, { ts: us(8), data: frame(1002) }); // earlier than its window (10-20 s)
  b.epb(0, { ts: us(13), data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4, Buffer.from([0x45, 0, 0])) });
  b.epb(0, { ts: us(14), data: frame(1003), wireLen: 20 });
  b.epb(0, { ts: us(25), data: frame(1004, 'last whole') });
  const whole = b.build();
  const cut = new PcapngBuilder().section().interface({ linkType: 1 }).epb(0, { ts: us(26), data: frame(1005) }).build();
  // The header-less tail of one more packet block: the input ends inside it.
  return Buffer.concat([whole, cut.subarray(cut.length - 40, cut.length - 10)]);
}

test('every shared capture replayed: the range report equals analyze but for source and top flows', async () => {
  assert.ok(captures.length >= 30, `only ${captures.length} captures in MANIFEST.tsv`);
  const crafted = join(work, 'crafted-edges.pcapng');
  writeFileSync(crafted, craftedEdges());
  const cases = [...captures.map((file) => ({ file, path: join(SHARED_PCAPS, file) })), { file: 'crafted-edges.pcapng', path: crafted }];
  const expected = new Map<string, Report>();
  await pool(cases.map((c, i) => ({ ...c, sensor: `range-${i}` })), 2, async ({ file, path, sensor }) => {
    const agent = spawnAgent(['--replay', path, '--sensor', sensor, '--nats', nats.url, '--listen', '', '--data-dir', join(work, sensor), '--config', config]);
    expected.set(file, analyzeJson(path, config));
    assert.equal((await agent.exited).code, 0, `${file}: ${agent.stderr()}`);
  });
  const edges = expected.get('crafted-edges.pcapng')!.capture;
  assert.ok(edges.truncatedRecords === 1 && edges.undecoded['LINKTYPE_147'] === 1 && edges.decodeErrors['frame.caplen_gt_len'] === 1 && Object.keys(edges.decodeErrors).length >= 2,
    `the crafted capture has what it is for: ${JSON.stringify(edges)}`);
  assert.ok(expected.get('crafted-edges.pcapng')!.windows.some((w) => w.outOfOrderTimestamps > 0), 'a packet stamped before its window');
  const mismatched: string[] = [];
  for (const [i, { file }] of cases.entries()) {
    const sensor = `range-${i}`;
    const want = expected.get(file)!;
    const url = `${base}/api/reports/${sensor}?${packetRange(want)}`;
    const whole = want.windows.every((w) => storable(w.start));
    assert.equal(whole, NOT_WHOLE[file] === undefined, `${file}: ${NOT_WHOLE[file] ?? 'a window the collector cannot store'}`);
    const windows = want.windows.filter((w) => storable(w.start));
    const findings = want.findings.filter((f) => storable(f.window.start));
    try {
      // Ingest is asynchronous: the agent's messages are in JetStream, the collector stores them in batches.
      const got = await waitFor(`${file}: its windows and findings in the collector`, async () => {
        const r = await getJson<Report>(url).catch(() => undefined);
        return r && r.windows.length === windows.length && r.findings.length === findings.length ? r : undefined;
      }, 20_000, 100);
      if (whole) assert.deepStrictEqual(comparable(got), comparable(want));
      assert.deepStrictEqual(comparable(got).windows, comparable({ ...want, windows }).windows, 'the windows');
      assert.deepStrictEqual(comparable(got).findings, comparable({ ...want, findings }).findings, 'the findings');
      assert.deepStrictEqual(got.source.linkTypes, want.source.linkTypes, 'the link types of the replayed file');
      assert.equal(got.source.path, `sensor:${sensor}`);
    } catch (err) {
      mismatched.push(`${file}: ${(err as Error).message.slice(0, 3000)}`);
    }
  }
  assert.deepEqual(mismatched, [], mismatched.join('\n\n'));
});

test('the HTML range report has the score box and names the link types', async () => {
  const i = captures.indexOf('ppa_tcp_retransmissions.pcapng');
  assert.ok(i >= 0, 'the capture is in MANIFEST.tsv');
  const res = await fetch(`${base}/api/reports/range-${i}?from=0&to=4000000000&format=html`);
  assert.equal(res.status, 200);
  const page = await res.text();
  const want = analyzeJson(join(SHARED_PCAPS, captures[i]!), config);
  assert.ok(want.healthScore, 'analyze scores the capture');
  assert.match(page, new RegExp(`<div class="score hc-${want.healthScore.class}"><span class="value">${want.healthScore.score}</span>`));
  assert.match(page, /windows a sensor published; link types EN10MB/);
  assert.doesNotMatch(page, /link types none/);
});

test('an empty range lists every counter and distribution of an empty capture, zeros included, and its score', async () => {
  const empty = join(work, 'empty.pcap');
  writeFileSync(empty, pcapFile({}, []));
  const want = analyzeJson(empty, config);
  // range-0 exists (it replayed a capture); nothing it sent starts in its first second of 1970.
  const got = await getJson<Report>(`${base}/api/reports/range-0?from=0&to=1`);
  assert.equal(got.windows.length, 0);
  assert.deepStrictEqual(comparable(got), comparable(want));
  assert.ok(Object.keys(got.counters).length >= 30, 'the zero counters are listed');
});

/** Publishes window messages straight to JetStream, as an agent from before range inputs would. */
async function publishOldWindows(sensor: string, count: number): Promise<void> {
  const windows = Array.from({ length: count }, (_, j): WindowSummary => ({
    start: isoMicros(1_767_225_600 + j * 10), end: isoMicros(1_767_225_600 + j * 10 + 10), packets: 5, bytes: 500,
    flows: { active: 1, new: 1, closed: 0 }, outOfOrderTimestamps: 0, metrics: {}, healthScore: 90,
    counters: { frames: 5, udp: 5 }, capture: { received: 5, drops: { kernel: 0, interface: 0, agent: 0 } },
  }));
  await publishWindows(nats.url, sensor, { kind: 'live', name: 'eth0' }, windows);
}

test('windows from an agent without range inputs: the report says what it cannot compute, and still sums the rest', async () => {
  await publishOldWindows('old-agent', 3);
  const url = `${base}/api/reports/old-agent?from=0&to=4000000000`;
  const got = await waitFor('the old windows stored', async () => {
    const r = await getJson<Report>(url).catch(() => undefined);
    return r && r.windows.length === 3 ? r : undefined;
  }, 20_000, 100);
  assert.equal(got.stats, undefined);
  assert.equal(got.healthScore, undefined);
  assert.match(got.missing?.['stats'] ?? '', /^3 of the 3 windows came from an agent that did not send their distributions/);
  assert.match(got.missing?.['healthScore'] ?? '', /3 of the 3 windows/);
  assert.match(got.missing?.['capture'] ?? '', /first and last are window bounds/);
  assert.equal(got.capture.first, '2026-01-01T00:00:00.000000Z', 'the first window\'s start');
  assert.equal(got.counters['frames'], 15);
  assert.equal(got.counters['tcp'], 0, 'zero counters listed');
  const page = await (await fetch(`${url}&format=html`)).text();
  assert.match(page, /Not computed: <code>stats<\/code>: 3 of the 3 windows/);
  assert.match(page, /link types not reported/);
});

test('a window whose sketch is malformed is refused at ingest, with the reason', async () => {
  await publishWindows(nats.url, 'bad-sketch', { kind: 'live', name: 'eth0' }, [{
    start: '2026-01-01T00:00:00.000000Z', end: '2026-01-01T00:00:10.000000Z', packets: 1, bytes: 60, flows: { active: 1, new: 1, closed: 0 },
    outOfOrderTimestamps: 0, metrics: {}, healthScore: 100,
    // Bucket counts that do not add up to the count: quantiles of it would be wrong.
    rangeInputs: { stats: { 'dns.time': { count: 5, max: 0.1, positive: [[-230, 2]] } }, health: null },
  }]);
  await waitFor('the rejection counted', async () => {
    const m = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    return metricValue(m, 'pcap_analyzer_collector_messages_rejected_total', 'invalid') >= 1 || undefined;
  }, 20_000, 100);
  assert.match(collector.stderr(), /window rangeInputs\.stats\[\\"dns\.time\\"\]: bucket counts do not add up to count/);
  assert.equal((await fetch(`${base}/api/reports/bad-sketch`)).status, 404, 'nothing of it stored');
});
