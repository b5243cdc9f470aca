/**
 * Counts and durations read right: the wording helpers themselves, and every
 * shared capture's finding summaries and text and HTML reports, which use them
 * (no "1 bursts", no "after 0.0 ms"). Also what the health score rates, with
 * the security findings beside it, in both reports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { DEFAULT_CONFIG } from '../common/config.js';
import { HEALTH_SCOPE, type Report } from '../common/report.js';
import { escapeHtml, renderHtml } from '../common/report-html.js';
import { renderText } from '../common/report-text.js';
import { duration, noun, plural } from '../common/wording.js';
import { REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

test('plural and noun: the singular for exactly one', () => {
  assert.equal(plural(1, 'burst'), '1 burst');
  assert.equal(plural(0, 'burst'), '0 bursts');
  assert.equal(plural(2, 'burst'), '2 bursts');
  assert.equal(plural(1.5, 'packet'), '1.5 packets');
  assert.equal(plural(1, 'DNS query', 'DNS queries'), '1 DNS query');
  assert.equal(plural(3, 'DNS query', 'DNS queries'), '3 DNS queries');
  assert.equal(noun(1, 'flow was', 'flows were'), 'flow was');
  assert.equal(noun(4, 'flow was', 'flows were'), 'flows were');
});

test('duration: the unit that shows the value, never a nonzero value as zero', () => {
  const cases: Array<[number, string]> = [
    [0, '0 s'], [0.000031, '31 µs'], [0.0000004, '0.4 µs'], [0.0009997, '1 ms'], [0.00425, '4.25 ms'], [0.0627, '62.7 ms'],
    [0.2027, '203 ms'], [0.9997, '1 s'], [1, '1 s'], [1.5, '1.5 s'], [4.376571, '4.38 s'], [3612.5, '3,613 s'], [-0.002, '-2 ms'],
  ];
  for (const [seconds, text] of cases) assert.equal(duration(seconds), text, String(seconds));
  assert.equal(duration(Number.NaN), '-');
});

/** A count of one with a plural noun after it (up to two describing words between): "1 bursts", "1 ICMP destination-unreachable messages". */
const ONE_PLURAL = /(?<![\d.,])1 (?:(?!(?:without|of|in|on|to|from|and|over|per|by|with|at|for|the|a)\b)[A-Za-z][\w/-]+ ){0,2}(?:bursts|packets|messages|queries|gaps|retransmissions|segments|responses|ACKs|SYNs|times|connections|hosts|ports|sources|attempts|sessions|subdomains|bytes|flows|conversations|findings|streams|windows|points)\b/;
/** A duration shown as zero: "after 0.0 ms", "0 ms". */
const ZERO_DURATION = /(?<![\d.,])0(?:\.0+)? ?(?:µs|ms)\b/;

const captures = [
  ...readdirSync(SHARED_PCAPS).filter((f) => /\.(pcap|pcapng|cap)(\.gz)?$/.test(f)).sort().map((f) => join(SHARED_PCAPS, f)),
  join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap'),
];

test('every shared capture: summaries and the text and HTML reports say "1 burst", never "0.0 ms"', { timeout: 300_000 }, async () => {
  let summaries = 0;
  for (const file of captures) {
    const { report } = await analyzeCapture(file, DEFAULT_CONFIG);
    for (const f of report.findings) {
      summaries++;
      assert.doesNotMatch(f.summary, ONE_PLURAL, `${file}: ${f.summary}`);
      assert.doesNotMatch(f.summary, ZERO_DURATION, `${file}: ${f.summary}`);
    }
    for (const [format, text] of [['text', renderText(report)], ['html', renderHtml(report)]] as const) {
      const line = text.split('\n').find((l) => ONE_PLURAL.test(l) || ZERO_DURATION.test(l));
      assert.equal(line, undefined, `${file} ${format}: ${line}`);
    }
  }
  assert.ok(summaries > 100, `${summaries} summaries checked`);
});

test('the sample capture: the two sentences of the issue, reworded', async () => {
  const { report } = await analyzeCapture(join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap'), DEFAULT_CONFIG);
  const summaries = report.findings.map((f) => f.summary);
  assert.ok(summaries.some((s) => s.startsWith('1 burst of traffic: up to 26 packets in 100 ms')), summaries.join('\n'));
  // The RST came 31 µs after the SYN (evidence.waitedSeconds 0.000031): said in µs.
  const refused = report.findings.find((f) => f.type === 'failed_handshake')!;
  assert.equal(refused.evidence['waitedSeconds'], 0.000031);
  assert.match(refused.summary, /\(SYN answered by RST after 31 µs\)\.$/);
  assert.ok(summaries.includes('1 ICMP destination-unreachable message (port 1).'), summaries.join('\n'));
});

async function synscan(): Promise<Report> {
  return (await analyzeCapture(join(SHARED_PCAPS, 'ppa_synscan.pcapng'), DEFAULT_CONFIG)).report;
}

test('a critical port scan scoring "excellent": the text report shows the security findings and what the score rates', async () => {
  const report = await synscan();
  assert.equal(report.healthScore!.class, 'excellent', 'the case of the issue: 90, excellent, with a critical scan');
  const lines = renderText(report).split('\n');
  const at = lines.findIndex((l) => l.startsWith('Health  '));
  assert.equal(lines[at], 'Health  90 / 100 excellent');
  assert.equal(lines[at + 1], '  security findings  1 critical, 0 warning');
  const scope = [];
  for (let i = at + 2; lines[i]!.startsWith('  ') && !lines[i]!.startsWith('  component'); i++) scope.push(lines[i]!.trim());
  assert.equal(scope.join(' '), HEALTH_SCOPE);
});

test('the HTML report: the security findings and what the score rates beside the score box', async () => {
  const report = await synscan();
  const html = renderHtml(report);
  const health = /<section id="health">([\s\S]*?)<\/section>/.exec(html)?.[1] ?? '';
  const box = health.indexOf('class="score hc-excellent"');
  const scope = health.indexOf('id="health-scope"');
  const components = health.indexOf('<table class="components"');
  assert.ok(box >= 0 && box < scope && scope < components, 'score box, then security findings and scope, then the components');
  assert.match(health, /data-security="critical">1 critical</);
  assert.match(health, /data-security="warning">0 warning</);
  assert.ok(health.includes(escapeHtml(HEALTH_SCOPE)));
});
