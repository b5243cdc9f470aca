/**
 * `analyze`'s default text report, as a user sees it: the CLI run as a child
 * process on shared captures, its stdout read line by line (80 columns), and
 * under a real pseudo-terminal (`script`) for colours and NO_COLOR.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Report } from '../common/report.js';
import { TEXT_WIDTH, renderText } from '../common/report-text.js';
import { CLI, SHARED_PCAPS } from './helpers/paths.js';

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng');
const RETRANSMISSIONS = join(SHARED_PCAPS, 'ppa_tcp_retransmissions.pcapng');
const IPV6 = join(SHARED_PCAPS, 'arkime_v6.pcap');

const ANSI = /\x1b\[[0-9;]*m/g;

function analyze(file: string, format = 'text', env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(process.execPath, [CLI, 'analyze', file, '--format', format], { encoding: 'utf8', timeout: 120_000, env });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** The CLI under a pseudo-terminal: stdout is a TTY, as in an interactive shell. */
function analyzeOnTty(file: string, env: NodeJS.ProcessEnv): string {
  const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} analyze ${JSON.stringify(file)} --no-progress`;
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 120_000, env });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\r\n/g, '\n');
}

function assertFits(text: string, what: string): void {
  for (const line of text.replace(ANSI, '').split('\n')) {
    assert.ok(line.length <= TEXT_WIDTH, `${what}: ${line.length} columns: ${line}`);
    assert.equal(line, line.trimEnd(), `${what}: trailing blanks: ${JSON.stringify(line)}`);
  }
}

/** The lines of one section: from its heading to the next blank line. */
function section(text: string, heading: RegExp): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  assert.ok(start >= 0, `section ${heading} is in the report`);
  const end = lines.indexOf('', start);
  return lines.slice(start, end < 0 ? undefined : end);
}

test('a SYN scan: the text report names the scan, its severity and its source', () => {
  const text = analyze(SYNSCAN);
  const json = JSON.parse(analyze(SYNSCAN, 'json')) as Report;
  const scan = json.findings.find((f) => f.type === 'port_scan');
  assert.ok(scan, 'the JSON report has the scan');
  assert.equal(scan.severity, 'critical');
  assert.equal(scan.host, '172.16.0.8');

  const findings = section(text, /^Findings /);
  assert.match(findings[0]!, new RegExp(`^Findings  ${json.findings.length} \\(1 critical, `));
  // The most severe type comes first, with its count, then its example: severity, window, source, summary.
  assert.equal(findings[1], '  port_scan  1 (1 critical)');
  assert.match(findings[2]!, /^ {4}critical 2010-07-04 20:24:\d0 {2}172\.16\.0\.8$/);
  assert.match(findings.slice(3).join(' '), /172\.16\.0\.8 probed 1000 ports on 64\.13\.134\.52/);
  // Every type is listed with its count.
  const perType = new Map<string, number>();
  for (const f of json.findings) perType.set(f.type, (perType.get(f.type) ?? 0) + 1);
  for (const [type, n] of perType) assert.ok(findings.some((l) => l.startsWith(`  ${type}  ${n} (`)), type);
  // Types with more findings than examples say how many were left out.
  const handshakes = perType.get('failed_handshake')!;
  assert.ok(handshakes > 3);
  assert.ok(findings.includes(`    ... ${handshakes - 3} more (all of them: --format json, csv or html)`));
  assert.doesNotMatch(text, ANSI, 'no colours when stdout is not a terminal');
  assertFits(text, 'synscan');
});

test('a retransmission capture: the health score and each of its components', () => {
  const text = analyze(RETRANSMISSIONS);
  const json = JSON.parse(analyze(RETRANSMISSIONS, 'json')) as Report;
  const health = section(text, /^Health /);
  assert.equal(health[0], `Health  ${json.healthScore!.score} / 100 ${json.healthScore!.class}`);
  assert.equal(health[0], 'Health  75 / 100 good');
  // The security findings and what the score rates, then the component table.
  assert.equal(health[1], '  security findings  0 critical, 0 warning');
  const head = health.findIndex((l) => l.startsWith('  component '));
  assert.equal(health.length, head + 1 + json.healthScore!.components.length);
  // 5 of the 6 segments were retransmissions: the component takes its whole weight.
  assert.match(health[head + 1]!, /^ {2}retransmissions {2}83\.33 % +25 +25$/);
  for (const c of json.healthScore!.components) {
    assert.ok(health.some((l) => new RegExp(`^  ${c.name} +\\S.* +${c.penalty} +${c.weight}$`).test(l)), c.name);
  }
  assertFits(text, 'retransmissions');
});

test('latency percentiles and the worst windows match the JSON report; IPv6 flows fit 80 columns', () => {
  const text = analyze(IPV6);
  const json = JSON.parse(analyze(IPV6, 'json')) as Report;
  const latency = section(text, /^Latency \(ms\)$/);
  const rtt = json.stats!['tcp.analysis.ack_rtt']!;
  const dns = json.stats!['dns.time']!;
  assert.ok(rtt.count > 0 && dns.count > 0);
  const ms = (s: number | null): string => { const v = s! * 1000; return v < 100 ? v.toFixed(2) : v.toFixed(0); };
  assert.match(latency.find((l) => l.includes('tcp.analysis.ack_rtt'))!,
    new RegExp(`^  TCP RTT tcp\\.analysis\\.ack_rtt +${rtt.count} +${ms(rtt.p50)} +${ms(rtt.p90)} +${ms(rtt.p99)} +${ms(rtt.max)}$`));
  assert.match(latency.find((l) => l.includes('dns.time'))!,
    new RegExp(`^  DNS response dns\\.time +${dns.count} +${ms(dns.p50)} +${ms(dns.p90)} +${ms(dns.p99)} +${ms(dns.max)}$`));

  const worst = section(text, /^Worst windows by health/);
  const lowest = [...json.windows].sort((a, b) => a.healthScore! - b.healthScore!)[0]!;
  assert.match(worst[2]!, new RegExp(`^  ${lowest.start.slice(0, 10)} ${lowest.start.slice(11, 19)} +${lowest.healthScore} +${lowest.packets} `));
  const scores = worst.slice(2).map((l) => Number(l.split(/ +/)[3]));
  assert.deepEqual(scores, [...scores].sort((a, b) => a - b), 'worst first');
  assert.ok(text.includes('  tcp [3ffe:507:0:1:200:86ff:fe05:80da]:1022 ->'), 'a long IPv6 flow is wrapped, not cut');
  assertFits(text, 'IPv6');
});

test('colours on a terminal only, and never with NO_COLOR', () => {
  const onTty = analyzeOnTty(SYNSCAN, { ...process.env, NO_COLOR: '' });
  assert.match(onTty, /\x1b\[31mcritical/, 'critical in red on a terminal');
  assert.match(onTty, /\x1b\[1mFindings\x1b\[0m/);
  assertFits(onTty, 'coloured');
  const noColor = analyzeOnTty(SYNSCAN, { ...process.env, NO_COLOR: '1' });
  assert.doesNotMatch(noColor, ANSI);
  assert.equal(noColor, onTty.replace(ANSI, ''), 'the same text without colours');
});

test('control characters from a capture never reach the terminal', () => {
  const report = JSON.parse(analyze(SYNSCAN, 'json')) as Report;
  const crafted: Report = {
    ...report,
    findings: [{ ...report.findings[0]!, type: 'dns_tunneling', summary: 'name \x1b]0;owned\x07 with \x1b[2J escapes' }],
  };
  for (const color of [false, true]) {
    const text = renderText(crafted, { color });
    assert.ok(text.includes('name ?]0;owned? with ?[2J escapes'));
    assert.doesNotMatch(text.replace(ANSI, ''), /[\x00-\x09\x0b-\x1f\x7f]/);
  }
});
