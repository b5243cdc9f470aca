/**
 * The agent as a real child process against a real nats-server spawned here:
 * replay to JetStream, an outage of NATS mid-run, a spool that overflows,
 * speed independence, shutdown and start-up errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finding, WindowSummary } from '../common/report.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { analyzeJson, freePort, metricValue, parseMetrics, spawnAgent, waitFor } from './helpers/agent-process.js';
import { startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';
import { readStream, type StoredMessage } from './helpers/stream-reader.js';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng'); // 2,011 packets over 23 s, a port scan
const IODINE = join(SHARED_PCAPS, 'ndpi_dns-tunnel-iodine.pcap'); // 438 packets over 24 s, DNS tunneling

let work: string;
before(() => { work = mkdtempSync(join(tmpdir(), 'pa-agent-')); });
after(() => { rmSync(work, { recursive: true, force: true }); });

/** A config file with 1 s windows (more windows per short capture) and quick heartbeats. */
function configFile(name: string, extra = '', shutdownSeconds = 5): string {
  const path = join(work, `${name}.yaml`);
  writeFileSync(path, `windows:\n  seconds: 1\nstatus:\n  seconds: 1\nshutdown:\n  seconds: ${shutdownSeconds}\n${extra}`);
  return path;
}

function byKind(messages: StoredMessage[]): { windows: WindowSummary[]; findings: Finding[]; status: Array<Record<string, unknown>> } {
  return {
    windows: messages.filter((m) => m.subject.endsWith('.window')).map((m) => m.body['window'] as WindowSummary),
    findings: messages.filter((m) => m.subject.endsWith('.finding')).map((m) => m.body['finding'] as Finding),
    status: messages.filter((m) => m.subject.endsWith('.status')).map((m) => m.body),
  };
}

/** Windows without the agent-only parts (capture, counters, rangeInputs), for comparison with `analyze`. */
const plain = (w: WindowSummary): WindowSummary => { const { capture: _c, counters: _n, rangeInputs: _r, ...rest } = w; return rest; };

/** Window counters summed: the report's counters. */
function summedCounters(windows: readonly WindowSummary[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of windows) for (const [k, v] of Object.entries(w.counters ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

async function runReplay(nats: NatsServerHandle, sensor: string, file: string, args: string[] = [], config = configFile(sensor)): Promise<{ code: number | null; stderr: string }> {
  const agent = spawnAgent(['--replay', file, '--sensor', sensor, '--nats', nats.url, '--listen', '', '--data-dir', join(work, sensor), '--config', config, ...args]);
  const { code } = await agent.exited;
  return { code, stderr: agent.stderr() };
}

test('replay publishes every window and finding of the capture, once, equal to analyze', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const config = configFile('plain');
  const result = await runReplay(nats, 'plain', SYNSCAN, [], config);
  assert.equal(result.code, 0, result.stderr);
  const stored = await readStream(nats.url, 'PCAP_ANALYZER');
  const mine = stored.filter((m) => m.subject.startsWith('pcap.v1.plain.'));
  const { windows, findings, status } = byKind(mine);
  const report = analyzeJson(SYNSCAN, config);
  assert.deepEqual(windows.map(plain), report.windows);
  assert.deepEqual(findings, report.findings);
  assert.ok(findings.some((f) => f.type === 'port_scan'), 'the capture holds a port scan');
  assert.equal(windows.reduce((n, w) => n + w.packets, 0), 2011);
  const nonZero = Object.fromEntries(Object.entries(report.counters).filter(([, v]) => v !== 0));
  assert.deepEqual(summedCounters(windows), nonZero);
  for (const w of windows) assert.deepEqual(w.capture?.drops, { kernel: 0, interface: 0, agent: 0 });
  assert.equal(windows.reduce((n, w) => n + (w.capture?.received ?? 0), 0), 2011);
  assert.ok(status.length >= 1, 'at least one heartbeat');
  const last = status[status.length - 1]!;
  assert.equal(last['schema'], 'pcap-analyzer/status@1');
  assert.deepEqual((last['capture'] as Record<string, unknown>)['drops'], { kernel: 0, interface: 0, agent: 0 });
  for (const m of mine) {
    assert.equal(m.msgId, m.body['id'], 'Nats-Msg-Id is the message id');
    assert.equal(m.redelivered, false);
  }
  assert.equal(new Set(mine.map((m) => m.msgId)).size, mine.length, 'no duplicates');

  // A second run of the same replay re-sends the same ids: JetStream drops them.
  const again = await runReplay(nats, 'plain', SYNSCAN, [], config);
  assert.equal(again.code, 0, again.stderr);
  const after2 = (await readStream(nats.url, 'PCAP_ANALYZER', 'reader-2')).filter((m) => m.subject.match(/^pcap\.v1\.plain\.(window|finding)$/));
  assert.equal(after2.length, windows.length + findings.length);
});

test('findings do not depend on replay speed: --speed top and --speed 20 publish the same', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const config = configFile('speed');
  const top = await runReplay(nats, 'fast', IODINE, ['--speed', 'top'], config);
  assert.equal(top.code, 0, top.stderr);
  const started = Date.now();
  const paced = await runReplay(nats, 'paced', IODINE, ['--speed', '20'], config);
  assert.equal(paced.code, 0, paced.stderr);
  assert.ok(Date.now() - started >= 1000, 'a 24 s capture at 20x takes at least 1.2 s');
  const messages = await readStream(nats.url, 'PCAP_ANALYZER');
  const findingsOf = (sensor: string): Finding[] => messages.filter((m) => m.subject === `pcap.v1.${sensor}.finding`).map((m) => m.body['finding'] as Finding);
  const windowsOf = (sensor: string): WindowSummary[] => messages.filter((m) => m.subject === `pcap.v1.${sensor}.window`).map((m) => plain(m.body['window'] as WindowSummary));
  assert.ok(findingsOf('fast').some((f) => f.type === 'dns_tunneling'));
  assert.deepEqual(findingsOf('paced'), findingsOf('fast'));
  assert.deepEqual(windowsOf('paced'), windowsOf('fast'));
});

test('NATS stopped for 10 s mid-replay: every window and finding arrives exactly once, as without the outage', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const config = configFile('outage');
  const report = analyzeJson(SYNSCAN, config);
  // Realtime replay of 23 s; NATS goes away at 3 s and comes back at 13 s.
  const httpPort = await freePort();
  const agent = spawnAgent(['--replay', SYNSCAN, '--speed', 'realtime', '--sensor', 'outage', '--nats', nats.url, '--listen', `127.0.0.1:${httpPort}`, '--data-dir', join(work, 'outage'), '--config', config]);
  t.after(() => { agent.child.kill('SIGKILL'); });
  const scrape = async (): Promise<Map<string, number>> => parseMetrics(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
  // NATS goes away once windows are being published, and comes back once more windows were
  // closed (and spooled) while it was away: events, not wall-clock times.
  await waitFor('a window published', async () => metricValue(await scrape(), 'pcap_analyzer_publish_total', 'result="ok"') > 0 || undefined, 60_000, 100);
  await nats.stop();
  await waitFor('the agent to notice', () => /disconnected from NATS; spooling/.test(agent.stderr()) || undefined, 60_000, 100);
  const windowsAtOutage = metricValue(await scrape(), 'pcap_analyzer_windows_total');
  await waitFor('three windows closed during the outage', async () => {
    const m = await scrape();
    return (metricValue(m, 'pcap_analyzer_windows_total') >= windowsAtOutage + 3 && metricValue(m, 'pcap_analyzer_spool_messages') > 0) || undefined;
  }, 60_000, 100);
  await nats.start();
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  assert.match(agent.stderr(), /disconnected from NATS; spooling/);
  assert.match(agent.stderr(), /reconnected to NATS/);
  const stored = (await readStream(nats.url, 'PCAP_ANALYZER')).filter((m) => m.subject.startsWith('pcap.v1.outage.'));
  const { windows, findings } = byKind(stored);
  const ids = stored.filter((m) => !m.subject.endsWith('.status')).map((m) => m.msgId);
  assert.equal(new Set(ids).size, ids.length, 'no duplicates');
  assert.deepEqual(windows.map(plain), report.windows);
  assert.deepEqual(findings, report.findings);
  assert.ok(stored.every((m) => !m.redelivered));
});

test('NATS down for the whole run with a small spool: bounded memory, overflow counted, /readyz degraded, no crash', async () => {
  const deadPort = await freePort();
  const httpPort = await freePort();
  const config = configFile('bounded', 'spool:\n  memoryMessages: 50\n  memoryBytes: 200000\n  fileBytes: 300000\n');
  const agent = spawnAgent(['--replay', SYNSCAN, '--loop', '--sensor', 'bounded', '--nats', `nats://127.0.0.1:${deadPort}`, '--listen', `127.0.0.1:${httpPort}`, '--data-dir', join(work, 'bounded'), '--config', config]);
  try {
    const metricsUrl = `http://127.0.0.1:${httpPort}/metrics`;
    const scrape = async (): Promise<Map<string, number>> => parseMetrics(await (await fetch(metricsUrl)).text());
    await waitFor('spool overflow', async () => metricValue(await scrape(), 'pcap_analyzer_spool_overflow_total') > 0 || undefined, 60_000, 250);
    // RSS is compared over an amount of work, not of time: a slow machine does the same work, later.
    // Warm-up: 20,000 more messages overflowed (tables and heaps reach their working size).
    const overflowAfter = async (n: number): Promise<Map<string, number>> => {
      const from = metricValue(await scrape(), 'pcap_analyzer_spool_overflow_total');
      return waitFor(`${n} more messages overflowed`, async () => { const m = await scrape(); return metricValue(m, 'pcap_analyzer_spool_overflow_total') >= from + n ? m : undefined; }, 120_000, 250);
    };
    const first = await overflowAfter(20_000);
    // RSS sampled while 40,000 more messages overflow. It wanders by tens of MB with the garbage
    // collector (more on a busy machine, where collections come late), without a trend; an unbounded
    // spool would grow by the messages dropped (1-5 KB each: 40-200 MB). The floor (the smallest
    // sample) of the last quarter against that of the first is the trend, not the wander.
    const rss: number[] = [];
    const from = metricValue(first, 'pcap_analyzer_spool_overflow_total');
    const second = await waitFor('40000 more messages overflowed', async () => {
      const m = await scrape();
      rss.push(metricValue(m, 'process_resident_memory_bytes'));
      return metricValue(m, 'pcap_analyzer_spool_overflow_total') >= from + 40_000 ? m : undefined;
    }, 120_000, 250);
    assert.ok(rss.length >= 8, `${rss.length} RSS samples`);
    const quarter = Math.floor(rss.length / 4);
    const floorFirst = Math.min(...rss.slice(0, quarter));
    const floorLast = Math.min(...rss.slice(-quarter));
    assert.ok(metricValue(second, 'pcap_analyzer_windows_total') > metricValue(first, 'pcap_analyzer_windows_total'), 'still analyzing');
    assert.ok(metricValue(second, 'pcap_analyzer_spool_overflow_total') > metricValue(first, 'pcap_analyzer_spool_overflow_total'), 'overflow keeps being counted');
    assert.ok(floorLast - floorFirst < 40 * 1024 * 1024,
      `RSS floor grew by ${((floorLast - floorFirst) / 1048576).toFixed(1)} MB over 40,000 overflowed messages with NATS down (samples ${rss.map((x) => (x / 1048576).toFixed(0)).join(' ')} MB)`);
    assert.equal(metricValue(second, 'pcap_analyzer_nats_connected'), 0);
    assert.ok(metricValue(second, 'pcap_analyzer_spool_bytes') <= 200_000 + 300_000 + 65536);
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    assert.equal(ready.status, 503);
    const body = await ready.json() as { state: string; reasons: string[] };
    assert.equal(body.state, 'degraded');
    assert.match(body.reasons.join(' '), /spool/);
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status, 200);
  } finally {
    agent.child.kill('SIGTERM');
  }
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  assert.match(agent.stderr(), /NATS|nats/);
});

test('SIGTERM during a replay publishes the final, partial window: the windows hold every packet read', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const config = configFile('term');
  // Looped, so the stop always comes during the replay, however slow the machine.
  const agent = spawnAgent(['--replay', SYNSCAN, '--loop', '--speed', 'realtime', '--sensor', 'term', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'term'), '--config', config]);
  t.after(() => { agent.child.kill('SIGKILL'); });
  // Stop once a window is out; the stop then publishes the open one.
  // Counted from the stream's own state (no consumer to keep alive while the machine is busy).
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor('a window published', async () => {
      const info = await jsm.streams.info('PCAP_ANALYZER', { subjects_filter: 'pcap.v1.term.window' }).catch(() => undefined);
      return (info?.state.subjects?.['pcap.v1.term.window'] ?? 0) >= 1 || undefined;
    }, 60_000, 200);
  } finally {
    await nc.close();
  }
  agent.child.kill('SIGTERM');
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  const stopped = agent.stderr().split('\n').filter((l) => l.includes('"msg":"stopped"')).map((l) => JSON.parse(l) as { packets: number; windows: number; reason: string })[0];
  assert.ok(stopped, agent.stderr());
  assert.equal(stopped.reason, 'SIGTERM');
  const { windows } = byKind((await readStream(nats.url, 'PCAP_ANALYZER')).filter((m) => m.subject.startsWith('pcap.v1.term.')));
  assert.ok(windows.length >= 2, `${windows.length} windows`);
  assert.equal(windows.length, stopped.windows, 'every window the capture thread closed was published');
  const total = windows.reduce((n, w) => n + w.packets, 0);
  assert.ok(total > 0, `${total} packets analyzed before the stop`);
  // The window open at the stop is closed and published: no packet read is missing from the windows.
  assert.equal(total, stopped.packets, 'the windows add up to every packet the capture thread read');
});

test('start-up errors: one line and exit 2; unreachable NATS is not fatal', async () => {
  const badConfig = join(work, 'bad.yaml');
  writeFileSync(badConfig, 'nats:\n  maxInFlite: 3\n');
  const cases: Array<[string[], RegExp]> = [
    [['--config', badConfig, '--replay', SYNSCAN], /^pcap-analyzer: config nats\.maxInFlite: unknown key/],
    [['--replay', SYNSCAN, '--speed', 'warp'], /^pcap-analyzer: config capture\.speed: "warp" is not top, realtime or a number/],
    [[], /^pcap-analyzer: agent needs a source: --interface NAME/],
    [['--replay', SYNSCAN, '--interface', 'lo'], /takes one source/],
    [['--replay', join(work, 'missing.pcap'), '--listen', ''], /^pcap-analyzer: cannot replay .*missing\.pcap: no such file or directory/],
    [['--interface', 'nosuchif0', '--listen', ''], /^pcap-analyzer: .*nosuchif0.*(No such device|doesn't exist)/i],
    [['--interface', 'lo', '--bpf', 'tcp port', '--listen', ''], /^pcap-analyzer: .*(syntax error|BPF)/i],
  ];
  for (const [args, expected] of cases) {
    const agent = spawnAgent([...args, '--nats', 'nats://127.0.0.1:1', '--data-dir', join(work, 'errors')]);
    const { code } = await agent.exited;
    assert.equal(code, 2, `${args.join(' ')}: ${agent.stderr()}`);
    const lines = agent.stderr().trim().split('\n').filter((l) => l.startsWith('pcap-analyzer:'));
    assert.equal(lines.length, 1, agent.stderr());
    assert.match(lines[0]!, expected);
  }
  // Unreachable NATS at start: the agent spools and finishes the replay.
  const agent = spawnAgent(['--replay', join(SHARED_PCAPS, 'ppa_tcp_handshake.pcapng'), '--nats', `nats://127.0.0.1:${await freePort()}`, '--listen', '', '--data-dir', join(work, 'unreachable'), '--config', configFile('unreachable', '', 1)]);
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
});

test('SIGHUP reloads analyzer thresholds from the config file; a bad file is rejected and the agent carries on', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const config = configFile('hup');
  const agent = spawnAgent(['--replay', SYNSCAN, '--speed', '1', '--sensor', 'hup', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'hup'), '--config', config]);
  await waitFor('capturing', () => /"msg":"capturing"/.test(agent.stderr()) || undefined);
  writeFileSync(config, 'windows:\n  seconds: 1\nanalyzers:\n  port_scan:\n    minPorts: 5000\n    minPortsSmall: 0\n');
  agent.child.kill('SIGHUP');
  t.after(() => { agent.child.kill('SIGKILL'); });
  await waitFor('the reload', () => /SIGHUP: analyzer thresholds reloaded/.test(agent.stderr()) || undefined, 20_000);
  writeFileSync(config, 'analyzers:\n  port_scan:\n    minPorts: lots\n');
  agent.child.kill('SIGHUP');
  await waitFor('the rejection', () => /SIGHUP: configuration rejected, keeping the current one/.test(agent.stderr()) || undefined, 20_000);
  assert.match(agent.stderr(), /analyzers\.port_scan\.minPorts: expected a number/);
  // The replay runs to its end: the scan's 867 ports fall in the window at 20:24:25, 9 s into the
  // capture (realtime), well after the reload; with the default threshold it is a finding.
  const { code } = await agent.exited;
  assert.equal(code, 0, agent.stderr());
  const { findings, windows } = byKind((await readStream(nats.url, 'PCAP_ANALYZER')).filter((m) => m.subject.startsWith('pcap.v1.hup.')));
  assert.ok(windows.some((w) => w.start.startsWith('2010-07-04T20:24:25')), 'the scan\'s window was published');
  assert.ok(findings.length > 0, 'the other analyzers still report');
  assert.equal(findings.filter((f) => f.type === 'port_scan').length, 0, 'the raised threshold (5,000 ports, no small scans) was in force');
});
