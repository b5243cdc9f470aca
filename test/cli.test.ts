/** The command line as a user runs it: real child processes, exit codes, stdout and stderr. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import type { Report } from '../common/report.js';
import { CLI, REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';

const SAMPLE = join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap');

function cli(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('npx pcap-analyzer runs the package bin from the repository root', () => {
  const r = spawnSync('npx', ['--no-install', 'pcap-analyzer', 'analyze', SAMPLE, '--format', 'json'],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as Report).capture.packets, 36);
});

test('the sample capture: text summary with the figures tshark gives', () => {
  const r = cli(['analyze', SAMPLE]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /packets\s+36 /);
  // tshark -Y tcp|udp|dns|icmp|icmpv6 on this file: 22, 6, 4, 5, 4; tcp.stream 3, udp.stream 2.
  for (const [name, n] of [['tcp', 22], ['udp', 6], ['dns', 4], ['icmp', 5], ['icmpv6', 4], ['tcp.streams', 3], ['udp.streams', 2]] as const) {
    assert.match(r.stdout, new RegExp(`\\n  ${name.replace('.', '\\.')}\\s+${n}\\n`), name);
  }
  assert.match(r.stdout, /tcp\s+\[::1\]:\d+ -> \[::1\]:18080 +10 pkts/);
  assert.equal(r.stderr, '');
});

test('JSON report has the documented shape', () => {
  const r = cli(['analyze', SAMPLE, '--format', 'json']);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.equal(report.schema, 'pcap-analyzer/report@1');
  assert.deepEqual(Object.keys(report).slice(0, 7), ['schema', 'source', 'capture', 'counters', 'flows', 'windows', 'findings']);
  assert.deepEqual(report.source, { path: SAMPLE, format: 'pcap', compressed: false, linkTypes: ['EN10MB'] });
  for (const key of ['packets', 'bytes', 'first', 'last', 'durationSeconds', 'truncatedRecords', 'decodeErrors']) {
    assert.ok(key in report.capture, key);
  }
  assert.match(report.capture.first!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  for (const key of ['frames', 'eth', 'vlan', 'ip', 'ipv6', 'tcp', 'udp', 'icmp', 'icmpv6', 'dns', 'ip.fragments', 'tcp.streams', 'udp.streams']) {
    assert.equal(typeof report.counters[key], 'number', key);
  }
  const flow = report.flows[0]!;
  assert.deepEqual(Object.keys(flow).slice(0, 10), ['proto', 'client', 'clientPort', 'server', 'serverPort', 'packets', 'bytes', 'first', 'last', 'state']);
  assert.ok(report.flows.every((f, i) => i === 0 || report.flows[i - 1]!.bytes >= f.bytes), 'flows sorted by bytes');
  assert.ok(report.windows.length >= 1, 'at least one window');
  assert.ok(Array.isArray(report.findings));
});

/** The lines of a JSON report's list `name`: its opening line, one line per element, and its closing line. */
function listLines(text: string, name: 'windows' | 'findings'): string[] {
  const lines = text.split('\n');
  const open = lines.indexOf(`  "${name}": [`);
  assert.ok(open >= 0, `no "${name}": [ line`);
  const close = lines.findIndex((l, i) => i > open && /^  \],?$/.test(l));
  assert.ok(close > open, `no end of "${name}"`);
  return lines.slice(open + 1, close);
}

test('JSON report: each window and each finding is one line of valid JSON, equal to the parsed report\'s element', () => {
  const r = cli(['analyze', join(SHARED_PCAPS, 'ppa_synscan.pcapng'), '--format', 'json']);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.ok(report.windows.length >= 2 && report.findings.length >= 2, `${report.windows.length} windows, ${report.findings.length} findings`);
  for (const name of ['windows', 'findings'] as const) {
    const items: unknown[] = report[name];
    const lines = listLines(r.stdout, name);
    assert.equal(lines.length, items.length, `${name}: one line per element`);
    lines.forEach((line, i) => {
      assert.match(line, /^ {4}\{/, `${name}[${i}] starts its own line`);
      const last = i === lines.length - 1;
      assert.equal(line.endsWith(','), !last, `${name}[${i}]: a comma after every element but the last`);
      assert.deepEqual(JSON.parse(last ? line : line.slice(0, -1)), items[i], `${name}[${i}] is the element, whole`);
    });
  }
});

test('the same file twice gives byte-identical JSON', () => {
  assert.equal(cli(['analyze', SAMPLE, '--format', 'json']).stdout, cli(['analyze', SAMPLE, '--format', 'json']).stdout);
});

test('stdin (-) gives the same counters as the path', () => {
  const fromPath = JSON.parse(cli(['analyze', SAMPLE, '--format', 'json']).stdout) as Report;
  const r = cli(['analyze', '-', '--format', 'json'], readFileSync(SAMPLE));
  assert.equal(r.status, 0, r.stderr);
  const fromStdin = JSON.parse(r.stdout) as Report;
  assert.equal(fromStdin.source.path, '-');
  assert.deepEqual(fromStdin.counters, fromPath.counters);
  assert.deepEqual(fromStdin.flows, fromPath.flows);
});

test('--out writes the report to a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const out = join(dir, 'report.json');
  const r = cli(['analyze', SAMPLE, '--format', 'json', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal((JSON.parse(readFileSync(out, 'utf8')) as Report).capture.packets, 36);
});

const usageError = (args: string[], pattern: RegExp): void => {
  const r = cli(args);
  assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
};

test('usage errors: exit 2 with one line', () => {
  usageError(['analyze'], /analyze: needs a capture file/);
  usageError(['analyze', SAMPLE, '--format', 'xml'], /--format: must be one of text, json, csv, html, not "xml"/);
  usageError(['analyze', SAMPLE, '--bogus'], /--bogus: unknown option; see pcap-analyzer --help/);
  usageError(['frobnicate'], /frobnicate: unknown command; see pcap-analyzer --help/);
  usageError(['analyze', '/nonexistent/file.pcap'], /cannot open \/nonexistent\/file.pcap: no such file/);
  usageError(['analyze', REPO_ROOT], /is a directory/);
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const config = join(dir, 'bad.yaml');
  writeFileSync(config, 'flows:\n  maxFlows: lots\n');
  usageError(['analyze', SAMPLE, '--config', config], /config flows.maxFlows: expected a number, got "lots"/);
  usageError(['analyze', SAMPLE, '--out', '/nonexistent/dir/out.json'], /--out \/nonexistent\/dir\/out.json: cannot write it: no such file or directory/);
});

test('--help and --version', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /analyze FILE/);
  const version = cli(['--version']);
  assert.equal(version.status, 0);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test('a progress bar on stderr when it is a terminal and the file is large; never otherwise', { skip: !existsSync('/usr/bin/script') && 'needs script(1) for a pseudo-terminal' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const big = join(dir, 'big.pcap');
  const made = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'make-large-capture.mjs'), big, '--size', '70M', '--pcaps', SHARED_PCAPS], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  // script(1) gives the command a pseudo-terminal, as a user's shell would.
  const tty = spawnSync('script', ['-qec', `${process.execPath} ${CLI} analyze ${big} --out /dev/null`, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(tty.status, 0, tty.stdout);
  assert.match(tty.stdout, /\[#+-*\] +\d+%/);
  const quiet = spawnSync('script', ['-qec', `${process.execPath} ${CLI} analyze ${big} --out /dev/null --no-progress`, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
  assert.doesNotMatch(quiet.stdout, /%/);
  const piped = cli(['analyze', big, '--out', '/dev/null']);
  assert.equal(piped.status, 0);
  assert.equal(piped.stderr, '', 'no bar when stderr is not a terminal');
  rmSync(dir, { recursive: true, force: true });
});

test('config prints the effective configuration: file < environment < flags, secrets masked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pa-cli-'));
  try {
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'sensor:\n  id: from-file\nstatus:\n  seconds: 7\n');
    const r = spawnSync(process.execPath, [CLI, 'config', '--config', file, '--nats', 'nats://a:1,nats://b:2', '--speed', '5'], {
      encoding: 'utf8',
      env: { ...process.env, PCAP_ANALYZER_SENSOR_ID: 'from-env', PCAP_ANALYZER_NATS_PASSWORD: 'pw-secret', DATA_DIR: '/srv/pa' },
    });
    assert.equal(r.status, 0, r.stderr);
    const printed = loadYaml(r.stdout) as Record<string, Record<string, unknown>>;
    assert.equal(printed['sensor']!['id'], 'from-env');
    assert.equal(printed['status']!['seconds'], 7);
    assert.deepEqual(printed['nats']!['servers'], ['nats://a:1', 'nats://b:2']);
    assert.equal(printed['nats']!['password'], '********');
    assert.equal(printed['capture']!['speed'], '5');
    assert.equal(printed['dataDir'], '/srv/pa');
    assert.doesNotMatch(r.stdout, /pw-secret/);
    // The memory plan follows as YAML comments: the flow table at its configured size, then a total.
    assert.match(r.stdout, /^# Preallocated at start with this configuration \(memory\.budgetMB 200\):$/m);
    assert.match(r.stdout, /^#   flow table +65,536 flows +\d+\.\d MB$/m);
    assert.match(r.stdout, /^#     ended conversations +16,384 conversations +1\.3 MB$/m);
    assert.match(r.stdout, /^#   total +\d+\.\d MB$/m);
    const bad = spawnSync(process.execPath, [CLI, 'config'], { encoding: 'utf8', env: { ...process.env, PCAP_ANALYZER_FLOWS_MAX_FLOWS: 'lots' } });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'pcap-analyzer: config flows.maxFlows: PCAP_ANALYZER_FLOWS_MAX_FLOWS: expected a number, got "lots"\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
