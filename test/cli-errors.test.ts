/**
 * Exit codes and messages as the README promises them, through real child
 * processes: bad input and environment problems are exit 2 with one line
 * naming the setting and what to do; flags and settings are never silently
 * ignored; no library text, error codes, secrets or deprecation warnings on
 * the terminal.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import type { Report } from '../common/report.js';
import { BAD_PCAPS, CLI, REPO_ROOT } from './helpers/paths.js';
import { freePort, spawnCli, waitFor } from './helpers/agent-process.js';
import { startNatsServer } from './helpers/nats-server.js';
import { readStream } from './helpers/stream-reader.js';
import { PG_ADMIN_URL, postgresAvailable } from './helpers/postgres.js';

const SAMPLE = join(REPO_ROOT, 'test', 'fixtures', 'sample-loopback.pcap');
const NO_NATS = 'nats://127.0.0.1:1';

let work: string;
before(() => { work = mkdtempSync(join(tmpdir(), 'pa-cli-errors-')); });
after(() => { rmSync(work, { recursive: true, force: true }); });

interface Run { status: number | null; stdout: string; stderr: string }

/** The CLI with the machine's own settings cleared (they must not leak in), plus `env`. */
function cli(args: string[], env: Record<string, string> = {}, input?: Buffer): Run {
  const cleared = { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' };
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...cleared, ...env }, input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2 and a stderr of exactly one `pcap-analyzer:` line matching `pattern`: no JSON log line, stack or library text before it. */
function assertOneLine(r: Run, pattern: RegExp): string {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^pcap-analyzer: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(lines[0]!, /internal error|\bE(NOENT|ISDIR|NOTDIR|EXIST|ACCES|PERM|ADDRINUSE|CONNREFUSED)\b/, 'no bare error code');
  return lines[0]!;
}

test('agent --replay of a file analyze rejects: exit 2 with the reader\'s message, as analyze', () => {
  for (const [name, message] of [['bad_magic.pcap', /unknown file format: magic 0xdeadbeef .*\(at byte offset 0\)/], ['empty.pcap', /empty input: no capture file header \(at byte offset 0\)/]] as const) {
    const analyze = cli(['analyze', join(BAD_PCAPS, name)]);
    assertOneLine(analyze, message);
    const agent = cli(['agent', '--replay', join(BAD_PCAPS, name), '--nats', NO_NATS, '--listen', '', '--data-dir', join(work, 'replay-bad')]);
    assertOneLine(agent, message);
  }
});

test('agent --replay DIR whose second file is unreadable: the first is published, then exit 2 naming the file', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.close());
  const dir = join(work, 'replay-dir');
  mkdirSync(dir);
  copyFileSync(SAMPLE, join(dir, 'a.pcap'));
  copyFileSync(join(BAD_PCAPS, 'bad_magic.pcap'), join(dir, 'b.pcap'));
  const agent = spawnCli(['agent', '--replay', dir, '--sensor', 'halfbad', '--nats', nats.url, '--listen', '', '--data-dir', join(work, 'halfbad')]);
  const { code } = await agent.exited;
  assert.equal(code, 2, agent.stderr());
  const lines = agent.stderr().trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^pcap-analyzer: .*b\.pcap: unknown file format: magic 0xdeadbeef/);
  const windows = (await readStream(nats.url, 'PCAP_ANALYZER')).filter((m) => m.subject === 'pcap.v1.halfbad.window');
  const packets = windows.reduce((n, m) => n + (m.body['window'] as { packets: number }).packets, 0);
  assert.equal(packets, 36, 'every packet of a.pcap was published before the replay stopped');
});

test('a data directory that is a file: exit 2 naming dataDir and what to do, for the agent and the collector', () => {
  const file = join(work, 'not-a-dir');
  writeFileSync(file, 'x');
  for (const dataDir of [file, join(file, 'sub')]) {
    assertOneLine(cli(['agent', '--replay', SAMPLE, '--nats', NO_NATS, '--listen', '', '--data-dir', dataDir]),
      /config dataDir: cannot use .*not-a-dir.* as the data directory: it or a parent is a file, not a directory; point --data-dir \(DATA_DIR\) at a directory/);
    assertOneLine(cli(['collector', '--nats', NO_NATS, '--listen', '127.0.0.1:0', '--data-dir', dataDir]),
      /config dataDir: cannot use .*not-a-dir.* as the data directory: it or a parent is a file, not a directory; point --data-dir/);
  }
});

test('collector: PostgreSQL refusing the connection is exit 2 naming collector.databaseUrl, without the password', async () => {
  const port = await freePort(); // nothing listens there
  const line = assertOneLine(cli(['collector', '--nats', NO_NATS, '--listen', '127.0.0.1:0', '--data-dir', join(work, 'pg-closed'),
    '--database-url', `postgres://pa:s3cret-pw@127.0.0.1:${port}/test`]),
  /config collector\.databaseUrl: PostgreSQL at postgres:\/\/pa@127\.0\.0\.1:\d+\/test: cannot open the database: connection refused; start PostgreSQL, or fix the host and port in the URL/);
  assert.doesNotMatch(line, /s3cret-pw/);
});

test('collector: a PostgreSQL role that does not exist is exit 2 naming collector.databaseUrl', async (t) => {
  const skip = await postgresAvailable();
  if (skip) { t.skip(skip); return; }
  const url = new URL(PG_ADMIN_URL);
  url.username = 'pa_no_such_role';
  url.password = '';
  assertOneLine(cli(['collector', '--nats', NO_NATS, '--listen', '127.0.0.1:0', '--data-dir', join(work, 'pg-role'), '--database-url', url.toString()]),
    /config collector\.databaseUrl: PostgreSQL at .*: cannot open the database: .*"pa_no_such_role".*; fix the user or password in the URL, or create the role/);
});

test('collector start: no deprecation warning, only JSON log lines on stderr', async () => {
  const port = await freePort();
  const collector = spawnCli(['collector', '--nats', NO_NATS, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'quiet-collector')],
    { env: { API_TOKEN: '', API_TOKEN_FILE: '', DATABASE_URL: '', DATA_DIR: '' } });
  await waitFor('collector listening', () => /"msg":"collector listening"/.test(collector.stderr()) || undefined);
  collector.child.kill('SIGTERM');
  assert.equal((await collector.exited).code, 0, collector.stderr());
  assert.doesNotMatch(collector.stderr(), /FSTDEP|Deprecation|--trace-warnings/);
  for (const line of collector.stderr().trimEnd().split('\n')) assert.doesNotThrow(() => JSON.parse(line), line);
});

test('a start-up error after the publisher started is one line: no JSON "publisher closed" before it, the reason in words', async () => {
  const busy: Server = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = busy.address() as { port: number };
    const agent = spawnCli(['agent', '--replay', SAMPLE, '--nats', NO_NATS, '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'busy')]);
    const { code } = await agent.exited;
    assert.equal(code, 2, agent.stderr());
    assert.doesNotMatch(agent.stderr(), /publisher closed/);
    assert.match(agent.stderr(), /\npcap-analyzer: http\.listen 127\.0\.0\.1:\d+: the port is in use .*; choose another --listen \(http\.listen\), or empty to serve none\n$/);
  } finally {
    busy.close();
  }
});

test('--bpf: refused for analyze and for a replay, where nothing would apply it', () => {
  assertOneLine(cli(['analyze', SAMPLE, '--bpf', 'tcp']),
    /--bpf: a capture filter applies to live capture only .*tcpdump -r FILE -w - 'EXPR' \| pcap-analyzer analyze -/);
  assertOneLine(cli(['agent', '--replay', SAMPLE, '--bpf', 'tcp port', '--nats', NO_NATS, '--listen', '', '--data-dir', join(work, 'bpf')]),
    /capture\.bpf: "tcp port" cannot filter a replay: a capture filter applies to live capture only/);
  assertOneLine(cli(['agent', '--replay', SAMPLE, '--nats', NO_NATS, '--listen', '', '--data-dir', join(work, 'bpf')], { PCAP_ANALYZER_CAPTURE_BPF: 'tcp' }),
    /capture\.bpf: "tcp" cannot filter a replay/);
});

test('flags a command does not take are refused, naming the command that takes them', () => {
  assertOneLine(cli(['analyze', SAMPLE, '--sensor', 'x']), /^pcap-analyzer: --sensor: not an option of analyze \(it is one of agent\); see pcap-analyzer --help$/);
  assertOneLine(cli(['analyze', SAMPLE, '--loop']), /--loop: not an option of analyze/);
  assertOneLine(cli(['analyze', SAMPLE, '--nats', 'nats://x:4222']), /--nats: not an option of analyze \(it is one of agent and collector\)/);
  assertOneLine(cli(['agent', '--replay', SAMPLE, '--database-url', 'postgres://h/db']), /--database-url: not an option of agent \(it is one of collector\)/);
  assertOneLine(cli(['collector', '--replay', SAMPLE]), /--replay: not an option of collector \(it is one of agent\)/);
  assertOneLine(cli(['collector', '--format', 'json']), /--format: not an option of collector \(it is one of analyze\)/);
});

/** `config`'s YAML output as a mapping. */
function printed(r: Run): Record<string, Record<string, unknown>> {
  assert.equal(r.status, 0, r.stderr);
  return loadYaml(r.stdout) as Record<string, Record<string, unknown>>;
}

test('config: --database-url applies; --listen sets the key of the command named, and without one is refused', () => {
  assert.equal(printed(cli(['config', '--database-url', 'postgres://db.example/pa']))['collector']!['databaseUrl'], '********');
  const collector = printed(cli(['config', 'collector', '--listen', '10.0.0.1:8000']));
  assert.equal(collector['collector']!['listen'], '10.0.0.1:8000');
  assert.equal(collector['http']!['listen'], '127.0.0.1:9465');
  const agent = printed(cli(['config', 'agent', '--listen', '10.0.0.1:9999']));
  assert.equal(agent['http']!['listen'], '10.0.0.1:9999');
  assert.equal(agent['collector']!['listen'], '127.0.0.1:8000');
  assertOneLine(cli(['config', '--listen', '10.0.0.1:8000']), /config: --listen sets http\.listen for agent and collector\.listen for collector; say which/);
  assertOneLine(cli(['config', 'collector', '--sensor', 'x']), /--sensor: not an option of collector/);
});

test('config masks credentials inside URLs, not only secret keys', () => {
  const r = cli(['config', '--nats', 'nats://u:pw-in-url@nats1:4222,nats://tok3n-in-url@nats2:4222']);
  assert.deepEqual(printed(r)['nats']!['servers'], ['nats://u:********@nats1:4222', 'nats://********@nats2:4222']);
  assert.doesNotMatch(r.stdout, /pw-in-url|tok3n-in-url/);
});

test('a PCAP_ANALYZER_* variable that names no key is exit 2, like an unknown key in the file', () => {
  assertOneLine(cli(['config'], { PCAP_ANALYZER_FLOWZ: '3' }),
    /^pcap-analyzer: config PCAP_ANALYZER_FLOWZ: no configuration key has this variable; every key of config\.yaml is PCAP_ANALYZER_<PATH>/);
  assertOneLine(cli(['analyze', SAMPLE], { PCAP_ANALYZER_FLOWS_MAX_FLOW: '3' }), /PCAP_ANALYZER_FLOWS_MAX_FLOW: .*did you mean PCAP_ANALYZER_FLOWS_MAX_FLOWS\?/);
  // The test suite's own variables are not configuration.
  assert.equal(cli(['config'], { PCAP_ANALYZER_TEST_ANYTHING: '1' }).status, 0);
});

test('thresholds in the wrong order are refused, naming the key', () => {
  const reversed = join(work, 'reversed.yaml');
  writeFileSync(reversed, 'analyzers:\n  tcp:\n    retransmissionRate: [5, 3, 1]\n');
  assertOneLine(cli(['analyze', SAMPLE, '--config', reversed]),
    /config analyzers\.tcp\.retransmissionRate: \[5, 3, 1\] must not decrease \(info, warning, critical thresholds\); e\.g\. \[1, 3, 5\]/);
  assertOneLine(cli(['config'], { PCAP_ANALYZER_ANALYZERS_RTT_CRITICAL: '0.05' }),
    /config analyzers\.rtt\.critical: 0\.05 is below analyzers\.rtt\.warning \(0\.1\)/);
});

test('usage errors in our words with a --help hint: misspelt option, negative speed, -v', () => {
  assertOneLine(cli(['analyze', SAMPLE, '--fromat', 'json']), /^pcap-analyzer: --fromat: unknown option \(did you mean --format\?\); see pcap-analyzer --help$/);
  assertOneLine(cli(['agent', '--replay', SAMPLE, '--speed', '-2']), /config capture\.speed: "-2" is not top, realtime or a number/);
  assertOneLine(cli(['analyze', SAMPLE, '--out']), /--out: needs a value; see pcap-analyzer --help/);
  assertOneLine(cli(['analyse', SAMPLE]), /analyse: unknown command \(did you mean analyze\?\); see pcap-analyzer --help/);
  const version = cli(['-v']);
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test('file problems in words, not ENOENT or EISDIR: --out, --replay, --config', () => {
  assertOneLine(cli(['analyze', SAMPLE, '--out', work]), /--out .*: cannot write it: is a directory; give --out a file in a writable directory/);
  assertOneLine(cli(['analyze', SAMPLE, '--out', join(work, 'no', 'such', 'dir', 'r.json')]), /cannot write it: no such file or directory/);
  assertOneLine(cli(['agent', '--replay', join(work, 'missing.pcap'), '--nats', NO_NATS, '--listen', '', '--data-dir', join(work, 'enoent')]),
    /cannot replay .*missing\.pcap: no such file or directory; check --replay \(capture\.replay\)/);
  assertOneLine(cli(['analyze', SAMPLE, '--config', join(work, 'missing.yaml')]), /cannot read .*missing\.yaml: no such file or directory; check the --config path/);
  assertOneLine(cli(['analyze', SAMPLE, '--config', work]), /cannot read .*: is a directory; check the --config path/);
});

test('--out without --format follows the extension: .json, .csv, .html and .htm; text otherwise', () => {
  const cases: Array<[string, (text: string) => boolean]> = [
    ['r.json', (text) => (JSON.parse(text) as Report).capture.packets === 36],
    ['r.csv', (text) => text.startsWith('# flows\nproto,client,')],
    ['r.html', (text) => text.startsWith('<!DOCTYPE html>')],
    ['r.HTM', (text) => text.startsWith('<!DOCTYPE html>')],
    ['r.txt', (text) => text.startsWith('PCAP Analyzer report for ')],
    ['report', (text) => text.startsWith('PCAP Analyzer report for ')],
  ];
  for (const [name, check] of cases) {
    const out = join(work, name);
    const r = cli(['analyze', SAMPLE, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const text = readFileSync(out, 'utf8');
    assert.ok(check(text), `${name}: ${text.slice(0, 80)}`);
  }
  // An explicit --format wins over the extension.
  const out = join(work, 'explicit.html');
  assert.equal(cli(['analyze', SAMPLE, '--out', out, '--format', 'json']).status, 0);
  assert.equal((JSON.parse(readFileSync(out, 'utf8')) as Report).capture.packets, 36);
});

test('standard input is "standard input" in the text and HTML reports (the JSON keeps "-")', () => {
  const input = readFileSync(SAMPLE);
  const text = cli(['analyze', '-'], {}, input);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^PCAP Analyzer report for standard input\n/);
  const html = cli(['analyze', '-', '--format', 'html'], {}, input);
  assert.match(html.stdout, /<title>PCAP Analyzer report: standard input<\/title>/);
  assert.doesNotMatch(html.stdout, /<code>-<\/code>/);
  assert.equal((JSON.parse(cli(['analyze', '-', '--format', 'json'], {}, input).stdout) as Report).source.path, '-');
});

test('a sensor id NATS could not carry (wildcards, spaces) is refused, not silently changed; dots (node names) are kept', () => {
  for (const id of ['web 1', 'x*', 'y>']) {
    assertOneLine(cli(['agent', '--replay', SAMPLE, '--sensor', id, '--nats', NO_NATS, '--listen', '', '--data-dir', join(work, 'sensor')]),
      /config sensor\.id: ".*" is not a sensor id: any characters but "\*", ">" and spaces/);
  }
  assertOneLine(cli(['config'], { PCAP_ANALYZER_SENSOR_ID: 'rack 1' }), /config sensor\.id: "rack 1"/);
  assert.equal(printed(cli(['config', 'agent', '--sensor', 'ip-10-0-1-5.ec2.internal']))['sensor']!['id'], 'ip-10-0-1-5.ec2.internal');
});
