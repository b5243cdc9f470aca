/**
 * The deployment files (Dockerfile, .dockerignore, docker-compose.yml and its dev override,
 * deploy/prometheus, deploy/k8s, deploy/*.sh|mjs) and docs/deployment.md and docs/alerting.md, which describe them:
 *
 * - real tools from Debian: `docker-compose config -q` for every profile combination with and
 *   without the dev override; `promtool check config`, `check rules` and `test rules`;
 * - consistency: every environment variable the compose file, the Dockerfile and the
 *   Kubernetes manifests set is one the code reads, with a value the config validator
 *   accepts; every port, health path, secret, hostname and command name they use exists;
 * - the Dockerfile itself: non-root runtime, HEALTHCHECK, no curl or wget, capabilities;
 * - the real programs with the compose environment: NATS in operator mode with the
 *   credentials deploy/make-secrets.mjs writes, the collector and a replaying agent answering
 *   the health paths, the image's healthcheck script, and the metrics the alerts use;
 * - the image's entrypoint as a non-root user under a container-like bounding set: live
 *   capture with NET_RAW only, promiscuous included (root only; skipped otherwise).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync, chmodSync, chownSync, constants as fsConstants, copyFileSync, existsSync, mkdirSync, mkdtempSync,
  readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { load as loadYaml, loadAll as loadAllYaml } from 'js-yaml';
import { DEFAULT_CONFIG, LEGACY_ENV, envName, resolveConfig } from '../common/config.js';
import { OPEN_PATHS } from '../collector/http/app.js';
import { CLI, REPO_ROOT, SHARED_PCAPS } from './helpers/paths.js';
import { freePort, parseMetrics, spawnCli, waitFor, type AgentProcess } from './helpers/agent-process.js';
import { NATS_SERVER_BIN, startNatsServer, type NatsServerHandle } from './helpers/nats-server.js';

// ---------------------------------------------------------------------------------------
// Small helpers: YAML shapes, files, commands.

type YamlMap = { [key: string]: unknown };
const isMap = (v: unknown): v is YamlMap => typeof v === 'object' && v !== null && !Array.isArray(v);
function asMap(v: unknown, what: string): YamlMap {
  assert.ok(isMap(v), `${what}: expected a mapping`);
  return v;
}
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const asStrings = (v: unknown): string[] => asList(v).map((x) => String(x));

const repo = (...parts: string[]): string => join(REPO_ROOT, ...parts);
const readRepo = (...parts: string[]): string => readFileSync(repo(...parts), 'utf8');
const yamlFile = (...parts: string[]): YamlMap => asMap(loadYaml(readRepo(...parts)), parts.join('/'));

function which(command: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    const path = join(dir, command);
    try { accessSync(path, fsConstants.X_OK); return path; } catch { /* next */ }
  }
  return undefined;
}

function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): { status: number | null; out: string } {
  const r = spawnSync(command, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? { ...process.env }, encoding: 'utf8', timeout: 120_000 });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync gives null output when the process could not start
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Compose's variable interpolation with no variables set: `${X:-d}` and `${X-d}` give d, `$$` gives `$`. */
function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole: string, _name?: string, op?: string, dflt?: string) => {
      if (whole === '$$') return '$';
      if (op !== undefined && op.endsWith('-')) return dflt ?? '';
      return '';
    });
}

/** Every configuration leaf path. */
function leafPaths(node: YamlMap, prefix = ''): string[] {
  return Object.entries(node).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return isMap(value) ? leafPaths(value, path) : [path];
  });
}

/** The environment variables the code reads: PCAP_ANALYZER_<key> for every key, and the legacy names. */
const KNOWN_ENV = new Map<string, string>([
  ...leafPaths(DEFAULT_CONFIG as unknown as YamlMap).map((path): [string, string] => [envName(path), path]),
  ...Object.entries(LEGACY_ENV),
]);

function configValue(path: string): unknown {
  return path.split('.').reduce<unknown>((node, part) => (isMap(node) ? node[part] : undefined), DEFAULT_CONFIG as unknown as YamlMap);
}

/** The commands `pcap-analyzer --help` lists. */
function cliCommands(): Set<string> {
  const r = run(process.execPath, [CLI, '--help']);
  assert.equal(r.status, 0, r.out);
  const block = r.out.split('\nCommands:\n')[1] ?? '';
  const names = [...block.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 4, `no commands found in --help:\n${r.out}`);
  return new Set(names);
}

/** A capture filter that leaves out ports leaves out the agent's own: NATS's and its metrics port. */
function assertOwnTrafficFilter(where: string, env: Record<string, string>, httpPort: number): void {
  const bpf = env[envName('capture.bpf')];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (bpf === undefined || bpf === '') return;
  const natsPort = Number(new URL(env[envName('nats.servers')]!).port);
  const ports = [...bpf.matchAll(/\bnot port (\d+)/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  assert.deepEqual(ports, [natsPort, httpPort].sort((x, y) => x - y), `${where}: ${envName('capture.bpf')}="${bpf}"`);
}

/** HOST:PORT of a listen value. */
function listenPort(listen: string): number {
  const m = /:(\d+)$/.exec(listen);
  assert.ok(m, `"${listen}" has no port`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------
// The compose file as a model: services with interpolated environments.

interface Service {
  name: string;
  raw: YamlMap;
  env: Record<string, string>;
  profiles: string[];
  ours: boolean;
}

function composeServices(file: string): Map<string, Service> {
  const doc = yamlFile(file);
  const out = new Map<string, Service>();
  for (const [name, value] of Object.entries(asMap(doc['services'], `${file} services`))) {
    const raw = asMap(value, `${file} service ${name}`);
    const env: Record<string, string> = {};
    const environment = raw['environment'];
    if (isMap(environment)) {
      for (const [k, v] of Object.entries(environment)) {
        assert.ok(typeof v === 'string', `${file} ${name}: ${k} must be a quoted string (YAML 1.1 would read it as ${typeof v})`);
        env[k] = interpolate(v);
      }
    } else {
      for (const entry of asStrings(environment)) { const eq = entry.indexOf('='); env[entry.slice(0, eq)] = interpolate(entry.slice(eq + 1)); }
    }
    const image = interpolate(String(raw['image'] ?? ''));
    out.set(name, { name, raw, env, profiles: asStrings(raw['profiles']), ours: raw['build'] !== undefined || image.startsWith('pcap-analyzer') });
  }
  return out;
}

/** The URL in a `node -e "fetch('...')"` health check. */
function healthUrl(service: Service): URL {
  const hc = asMap(service.raw['healthcheck'], `${service.name} healthcheck`);
  const testCmd = asStrings(hc['test']).join(' ');
  const m = /https?:\/\/[^'"\s)]+/.exec(testCmd);
  assert.ok(m, `${service.name}: no URL in its health check: ${testCmd}`);
  return new URL(m[0]);
}

// ---------------------------------------------------------------------------------------
// The Dockerfile as stages of instructions.

interface Instruction { op: string; args: string }
interface Stage { name: string; base: string; body: Instruction[] }

function dockerfile(): { args: Map<string, string>; stages: Stage[] } {
  const text = readRepo('Dockerfile').replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(trimmed);
    assert.ok(m, `Dockerfile: cannot read "${trimmed}"`);
    const op = m[1]!;
    const rest = m[2]!.replace(/\s+/g, ' ').trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      args.set(k!, v ?? '');
    } else if (op === 'FROM') {
      const f = /^(\S+)(?: AS (\S+))?$/i.exec(rest);
      assert.ok(f, `Dockerfile: FROM ${rest}`);
      const base = f[1]!.replace(/^\$\{(\w+)\}$/, (_w, name: string) => args.get(name) ?? '');
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      stages.push({ name: f[2] ?? String(stages.length), base, body: [] });
    } else {
      assert.ok(stages.length > 0, `Dockerfile: ${op} before FROM`);
      stages[stages.length - 1]!.body.push({ op, args: rest });
    }
  }
  return { args, stages };
}

/** ENV instructions of a stage and the stages it derives from. */
function stageEnv(stages: Stage[], stage: Stage): Record<string, string> {
  const parent = stages.find((s) => s.name === stage.base);
  const env: Record<string, string> = parent ? stageEnv(stages, parent) : {};
  for (const ins of stage.body.filter((i) => i.op === 'ENV')) {
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
}

/** Packages an `apt-get install` in this RUN line installs. */
function aptPackages(run: string): string[] {
  return [...run.matchAll(/apt-get install ([^&;|]*)/g)].flatMap((m) => m[1]!.split(' ').filter((w) => w !== '' && !w.startsWith('-')));
}

/** Whether .dockerignore lets a path into the build context (Docker's rules: last match wins, a match on a parent counts). */
function inBuildContext(path: string): boolean {
  const patterns = readRepo('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const toRegex = (glob: string): RegExp => new RegExp(`^${glob.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '.*')}$`);
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const re = toRegex(negate ? p.slice(1) : p);
    if (prefixes.some((prefix) => re.test(prefix))) included = negate;
  }
  return included;
}

// ---------------------------------------------------------------------------------------
// Real tools.

const DOCKER_COMPOSE = which('docker-compose');
const PROMTOOL = which('promtool');
const PROFILES = ['replay', 'monitoring', 'sidecar'];

/** docker-compose with no variables from the machine (only the defaults in the file count). */
function compose(args: string[]): { status: number | null; out: string } {
  return run(DOCKER_COMPOSE!, args, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() } });
}

describe('docker-compose config (Debian docker-compose)', { skip: DOCKER_COMPOSE ? false : 'docker-compose is not installed (apt-get install docker-compose)' }, () => {
  const combinations = PROFILES.reduce<string[][]>((sets, p) => [...sets, ...sets.map((s) => [...s, p])], [[]]);
  for (const files of [['docker-compose.yml'], ['docker-compose.yml', 'docker-compose.dev.yml']]) {
    for (const profiles of combinations) {
      const label = `${files.join(' + ')}${profiles.length ? ` --profile ${profiles.join(' --profile ')}` : ''}`;
      test(`config -q: ${label}`, () => {
        const r = compose([...files.flatMap((f) => ['-f', f]), ...profiles.flatMap((p) => ['--profile', p]), 'config', '-q']);
        assert.equal(r.status, 0, r.out);
      });
    }
  }

  test('config -q does reject a broken file (the check is not a no-op)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-compose-'));
    try {
      const broken = readRepo('docker-compose.yml').replace('    cap_drop: [ALL]\n', '    cap_dorp: [ALL]\n');
      const path = join(dir, 'docker-compose.yml');
      writeFileSync(path, broken);
      const r = compose(['-f', path, 'config', '-q']);
      assert.notEqual(r.status, 0, 'docker-compose accepted cap_dorp');
      assert.match(r.out, /cap_dorp/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('Prometheus (Debian promtool)', { skip: PROMTOOL ? false : 'promtool is not installed (apt-get install prometheus)' }, () => {
  test('promtool check config deploy/prometheus/prometheus.yml', () => {
    const r = run(PROMTOOL!, ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  test('promtool check rules deploy/prometheus/alerts.yml', () => {
    const r = run(PROMTOOL!, ['check', 'rules', 'deploy/prometheus/alerts.yml']);
    assert.equal(r.status, 0, r.out);
  });

  test('promtool test rules: every alert fires on synthetic trouble and stays silent on healthy series', () => {
    const r = run(PROMTOOL!, ['test', 'rules', 'deploy/prometheus/alerts.test.yml']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  test('promtool test rules fails when a threshold is changed (the unit tests bite)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pa-prom-'));
    try {
      copyFileSync(repo('deploy/prometheus/alerts.test.yml'), join(dir, 'alerts.test.yml'));
      const mutated = readRepo('deploy/prometheus/alerts.yml').replace('> 0.01', '> 0.05').replace('< 65', '< 45');
      writeFileSync(join(dir, 'alerts.yml'), mutated);
      const r = run(PROMTOOL!, ['test', 'rules', join(dir, 'alerts.test.yml')]);
      assert.notEqual(r.status, 0, r.out);
      assert.match(r.out, /PcapCaptureDropRatioHigh/);
      assert.match(r.out, /PcapHealthScoreLow/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

// ---------------------------------------------------------------------------------------
// Alert rules: structure, unit-test coverage, documentation.

interface Rule { alert: string; expr: string; labels: YamlMap; annotations: YamlMap }

function alertRules(): Rule[] {
  const doc = yamlFile('deploy/prometheus/alerts.yml');
  return asList(doc['groups']).flatMap((g) => asList(asMap(g, 'group')['rules'])).map((r) => {
    const rule = asMap(r, 'rule');
    return { alert: String(rule['alert']), expr: String(rule['expr']), labels: asMap(rule['labels'] ?? {}, 'labels'), annotations: asMap(rule['annotations'] ?? {}, 'annotations') };
  });
}

test('alerts: the ones an operator needs, each with severity, summary, description and a runbook line in docs/alerting.md', () => {
  const rules = alertRules();
  const names = rules.map((r) => r.alert);
  for (const needed of ['PcapAgentDown', 'PcapSensorDown', 'PcapCaptureDropRatioHigh', 'PcapSpoolBacklogGrowing', 'PcapCollectorConsumerLag',
    'PcapRetransmissionRateHigh', 'PcapRttP99High', 'PcapDnsFailureRatioHigh', 'PcapHealthScoreLow', 'PcapCriticalSecurityFinding']) {
    assert.ok(names.includes(needed), `alerts.yml has no ${needed}`);
  }
  assert.equal(new Set(names).size, names.length, 'duplicate alert names');
  const alerting = readRepo('docs/alerting.md');
  assert.match(alerting, /^# Alerting\n/, 'docs/alerting.md has no "# Alerting" title');
  for (const r of rules) {
    assert.match(String(r.labels['severity']), /^(warning|critical)$/, `${r.alert}: severity`);
    assert.ok(String(r.annotations['summary'] ?? '').length > 10, `${r.alert}: summary`);
    assert.ok(String(r.annotations['description'] ?? '').length > 30, `${r.alert}: description`);
    assert.match(alerting, new RegExp(`\\b${r.alert}\\b[^\\n]*\\S`), `docs/alerting.md has no runbook line for ${r.alert}`);
  }
});

test('alerts: every alert is unit-tested firing and silent', () => {
  const tests = asList(yamlFile('deploy/prometheus/alerts.test.yml')['tests']).map((t) => asMap(t, 'test'));
  const checks = tests.flatMap((t) => asList(t['alert_rule_test']).map((c) => asMap(c, 'alert_rule_test')));
  for (const { alert } of alertRules()) {
    const mine = checks.filter((c) => c['alertname'] === alert);
    assert.ok(mine.some((c) => asList(c['exp_alerts']).length > 0), `${alert} is never expected to fire`);
    assert.ok(mine.some((c) => asList(c['exp_alerts']).length === 0), `${alert} is never expected to stay silent`);
  }
});

/** Metric names the alert expressions use (`__name__=~` regexes kept as patterns). */
function alertMetrics(): { names: Set<string>; patterns: RegExp[] } {
  const names = new Set<string>();
  const patterns: RegExp[] = [];
  for (const { expr } of alertRules()) {
    let rest = expr;
    for (const m of expr.matchAll(/__name__=~"([^"]+)"/g)) { patterns.push(new RegExp(`^(?:${m[1]})$`)); rest = rest.replace(m[0], ''); }
    for (const m of rest.matchAll(/\b(pcap_analyzer_[a-z0-9_]*[a-z0-9])\b/g)) names.add(m[1]!);
  }
  return { names, patterns };
}

// ---------------------------------------------------------------------------------------
// Consistency of compose, Dockerfile, Kubernetes, config and code.

describe('docker-compose.yml agrees with the code', () => {
  const services = composeServices('docker-compose.yml');
  const dev = composeServices('docker-compose.dev.yml');
  const doc = yamlFile('docker-compose.yml');
  const { stages } = dockerfile();
  const runtimeEnv = stageEnv(stages, stages.find((s) => s.name === 'runtime')!);
  const ours = [...services.values()].filter((s) => s.ours);
  const agents = ours.filter((s) => asStrings(s.raw['command'])[0] === 'agent');

  test('services by profile: nats, collector and the host agent by default; replay, monitoring and sidecar on demand', () => {
    const byProfile = (p: string | undefined): string[] => [...services.values()].filter((s) => (p === undefined ? s.profiles.length === 0 : s.profiles.includes(p))).map((s) => s.name).sort();
    assert.deepEqual(byProfile(undefined), ['agent', 'collector', 'nats']);
    assert.deepEqual(byProfile('replay'), ['replay']);
    assert.deepEqual(byProfile('monitoring'), ['prometheus']);
    assert.deepEqual(byProfile('sidecar'), ['app', 'app-sensor']);
  });

  test('every environment variable set for our image is one the code reads, with a value it accepts', () => {
    for (const [file, list] of [['docker-compose.yml', ours], ['docker-compose.dev.yml', [...dev.values()]]] as const) {
      for (const s of list) {
        for (const name of Object.keys(s.env)) assert.ok(KNOWN_ENV.has(name), `${file} ${s.name}: ${name} is not read by the code (not PCAP_ANALYZER_<key> of a config key, nor a legacy name)`);
        const base = services.get(s.name)?.env ?? {};
        assert.doesNotThrow(() => resolveConfig({ env: { ...runtimeEnv, ...base, ...s.env } }), `${file} ${s.name}: the environment is refused by the config`);
      }
    }
  });

  test('the collector keeps the Python seed\'s variables, with the code\'s defaults', () => {
    const env = services.get('collector')!.env;
    for (const name of ['DATA_DIR', 'LOG_LEVEL', 'MAX_UPLOAD_SIZE_MB', 'MAX_QUEUE_SIZE', 'REPORT_TTL_HOURS', 'API_TOKEN_FILE']) assert.ok(name in env, `collector: ${name} missing`);
    for (const name of ['LOG_LEVEL', 'MAX_UPLOAD_SIZE_MB', 'MAX_QUEUE_SIZE', 'REPORT_TTL_HOURS']) {
      assert.equal(env[name], String(configValue(LEGACY_ENV[name]!)), `collector: ${name} default differs from ${LEGACY_ENV[name]}`);
    }
    assert.equal(env['DATA_DIR'], '/data');
  });

  test('no secret in the environment: tokens, passwords and credentials come from /run/secrets files', () => {
    for (const s of ours) {
      for (const [name, value] of Object.entries(s.env)) {
        assert.ok(!['API_TOKEN', 'DATABASE_URL', envName('nats.token'), envName('nats.password'), envName('collector.apiToken'), envName('collector.databaseUrl')].includes(name), `${s.name}: ${name} puts a secret in the environment`);
        if (/_FILE$/.test(name) && /(TOKEN|CREDS)/.test(name)) assert.match(value, /^\/run\/secrets\//, `${s.name}: ${name}`);
      }
    }
  });

  test('every /run/secrets file is mounted from a declared secret that deploy/make-secrets.mjs writes', () => {
    const secrets = asMap(doc['secrets'], 'secrets');
    const dir = mkdtempSync(join(tmpdir(), 'pa-secrets-'));
    try {
      const r = run(process.execPath, [repo('deploy/make-secrets.mjs'), '--dir', dir]);
      assert.equal(r.status, 0, r.out);
      for (const s of ours) {
        for (const [name, value] of Object.entries(s.env).filter(([, v]) => v.startsWith('/run/secrets/'))) {
          const secret = value.slice('/run/secrets/'.length);
          assert.ok(asStrings(s.raw['secrets']).includes(secret), `${s.name}: ${name}=${value} but the service does not mount secret ${secret}`);
          const file = String(asMap(secrets[secret], `secret ${secret}`)['file']);
          assert.match(file, /^\.\/deploy\/secrets\/[^/]+$/, `secret ${secret}: ${file}`);
          const written = join(dir, 'secrets', file.split('/').pop()!);
          assert.ok(existsSync(written), `make-secrets.mjs does not write ${file}`);
          assert.equal(statSync(written).mode & 0o777, 0o644, `${file}: must be readable by the container user`);
          assert.ok(existsSync(repo('deploy/secrets', `${file.split('/').pop()!}.example`)), `no ${file}.example`);
        }
      }
      assert.equal(statSync(join(dir, 'secrets')).mode & 0o777, 0o700, 'deploy/secrets must be private to its owner');
      assert.ok(existsSync(join(dir, 'nats', 'auth.conf')));
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  test('ports and health paths: listen addresses, published ports, health checks, Dockerfile EXPOSE and Prometheus targets agree', () => {
    const collector = services.get('collector')!;
    const collectorPort = listenPort(collector.env[envName('collector.listen')]!);
    assert.ok(asStrings(collector.raw['ports']).some((p) => p.endsWith(`:${collectorPort}`)), 'collector port not published');
    const url = healthUrl(collector);
    assert.equal(Number(url.port), collectorPort);
    assert.equal(url.pathname, '/api/health');
    for (const a of agents) {
      const port = listenPort(a.env[envName('http.listen')] ?? runtimeEnv[envName('http.listen')]!);
      const u = healthUrl(a);
      assert.equal(Number(u.port), port, `${a.name}: health check port`);
      assert.equal(u.pathname, '/healthz', `${a.name}: health path`);
      assertOwnTrafficFilter(`${a.name}`, a.env, port);
    }
    const expose = stages.at(-1)!.body.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(' ').map(Number));
    assert.ok(expose.includes(collectorPort) && expose.includes(listenPort(runtimeEnv[envName('http.listen')]!)), `EXPOSE ${expose.join(' ')}`);
    // The routes exist in the code (they are also asked for real in the run below).
    assert.match(readRepo('collector/http/app.ts'), /app\.get\('\/api\/health'/);
    assert.match(readRepo('agent/sensor/http.ts'), /path === '\/healthz'/);
    assert.match(readRepo('agent/sensor/http.ts'), /path === '\/readyz'/);
    assert.match(readRepo('collector/http/app.ts'), /app\.get\('\/metrics'/);
    assert.ok(OPEN_PATHS.has('/metrics'), 'Prometheus scrapes the collector without a token');

    // Prometheus targets.
    const prom = yamlFile('deploy/prometheus/prometheus.yml');
    const jobs = new Map(asList(prom['scrape_configs']).map((j) => { const job = asMap(j, 'job'); return [String(job['job_name']), job]; }));
    const staticTargets = (job: string): string[] => asList(asMap(jobs.get(job), job)['static_configs']).flatMap((c) => asStrings(asMap(c, 'static')['targets']));
    assert.deepEqual(staticTargets('pcap-collector'), [`collector:${collectorPort}`]);
    assert.deepEqual(staticTargets('pcap-agent'), [`host.docker.internal:${listenPort(services.get('agent')!.env[envName('http.listen')]!)}`]);
    assert.ok(asStrings(services.get('prometheus')!.raw['extra_hosts']).includes('host.docker.internal:host-gateway'));
    const dns = asList(asMap(jobs.get('pcap-agent-containers'), 'containers job')['dns_sd_configs']).map((c) => asMap(c, 'dns_sd'));
    for (const d of dns) {
      for (const name of asStrings(d['names'])) {
        const target = [...services.values()].find((s) => s.name === name);
        assert.ok(target, `Prometheus looks up ${name}, which is no service`);
        const sensor = target.ours ? target : [...services.values()].find((s) => s.raw['network_mode'] === `service:${name}`);
        assert.ok(sensor, `${name}: no agent in that network namespace`);
        assert.equal(Number(d['port']), listenPort(sensor.env[envName('http.listen')]!), `${name}: scrape port`);
      }
    }
    assert.deepEqual(asStrings(prom['rule_files']), ['alerts.yml']);
    const promVolumes = asStrings(services.get('prometheus')!.raw['volumes']);
    assert.ok(promVolumes.includes('./deploy/prometheus:/etc/prometheus:ro'));
    assert.ok(asStrings(services.get('prometheus')!.raw['command']).includes('--config.file=/etc/prometheus/prometheus.yml'));
  });

  test('hostnames resolve: NATS URLs and scrape targets name services on a shared network; the host agent uses NATS\'s published port', () => {
    const networksOf = (s: Service): Set<string> => {
      const mode = s.raw['network_mode'];
      if (typeof mode === 'string' && mode.startsWith('service:')) return networksOf(services.get(mode.slice(8))!);
      const n = s.raw['networks'];
      return new Set(isMap(n) ? Object.keys(n) : asStrings(n));
    };
    const shared = (a: Service, b: Service): boolean => [...networksOf(a)].some((n) => networksOf(b).has(n));
    const nats = services.get('nats')!;
    for (const s of ours) {
      const url = new URL(s.env[envName('nats.servers')]!);
      assert.equal(url.port, '4222');
      if (s.raw['network_mode'] === 'host') {
        assert.equal(url.hostname, '127.0.0.1', `${s.name}: a host-network agent reaches NATS on the host's published port`);
        assert.ok(asStrings(nats.raw['ports']).includes('127.0.0.1:4222:4222'), 'NATS 4222 published on 127.0.0.1 only');
      } else {
        assert.equal(url.hostname, 'nats');
        assert.ok(shared(s, nats), `${s.name} shares no network with nats`);
      }
    }
    const prometheus = services.get('prometheus')!;
    for (const name of ['collector', 'replay', 'app']) assert.ok(shared(prometheus, services.get(name)!), `prometheus cannot reach ${name}`);
    const networks = asMap(doc['networks'], 'networks');
    assert.equal(asMap(networks['backend'], 'backend')['internal'], true, 'backend must be internal');
    assert.notEqual(asMap(networks['frontend'], 'frontend')['internal'], true);
    for (const s of [...services.values()].filter((x) => asList(x.raw['ports']).length > 0)) {
      assert.ok([...networksOf(s)].some((n) => asMap(networks[n], n)['internal'] !== true), `${s.name} publishes ports but is only on internal networks`);
    }
    // NATS: monitoring port of the health check = nats.conf's http; config and store mounted.
    const conf = readRepo('deploy/nats/nats.conf');
    assert.match(conf, /^http: 0\.0\.0\.0:8222$/m);
    assert.match(conf, /^listen: 0\.0\.0\.0:4222$/m);
    assert.match(conf, /^include \.\/auth\.conf$/m);
    assert.match(asStrings(asMap(nats.raw['healthcheck'], 'nats hc')['test']).join(' '), /http:\/\/127\.0\.0\.1:8222\/healthz/);
    assert.deepEqual(asStrings(nats.raw['command']), ['nats-server', '--config', '/etc/nats/nats.conf', '--jetstream', '--store_dir', '/data']);
    assert.ok(asStrings(nats.raw['volumes']).includes('./deploy/nats:/etc/nats:ro'));
    assert.ok(asStrings(nats.raw['volumes']).includes('nats-data:/data'));
  });

  test('commands exist in the CLI; the host agent is confined to NET_RAW; the collector and replay get no capability', () => {
    const commands = cliCommands();
    for (const s of [...ours, ...dev.values()]) {
      const command = asStrings(s.raw['command'])[0];
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      assert.ok(command !== undefined && commands.has(command), `${s.name}: command "${command}" is not a pcap-analyzer command (${[...commands].join(', ')})`);
    }
    for (const s of ours) {
      assert.deepEqual(asStrings(s.raw['cap_drop']), ['ALL'], `${s.name}: cap_drop`);
      assert.equal(s.raw['read_only'], true, `${s.name}: read-only root filesystem`);
      assert.ok(asStrings(s.raw['tmpfs']).some((t) => t.startsWith('/tmp')), `${s.name}: tmpfs /tmp`);
      assert.ok(asStrings(s.raw['volumes']).some((v) => /^[a-z-]+:\/data$/.test(v)), `${s.name}: /data on a named volume`);
      assert.ok(isMap(asMap(asMap(s.raw['deploy'], `${s.name} deploy`)['resources'], 'resources')['limits']), `${s.name}: resource limits`);
      assert.ok(isMap(asMap(s.raw['depends_on'], `${s.name} depends_on`)['nats']), `${s.name}: depends on nats`);
      assert.equal(asMap(asMap(s.raw['depends_on'], 'depends_on')['nats'], 'nats')['condition'], 'service_healthy');
      const caps = asStrings(s.raw['cap_add']);
      const nnp = asStrings(s.raw['security_opt']).includes('no-new-privileges:true');
      if (caps.length > 0) {
        assert.deepEqual(caps, ['NET_RAW'], `${s.name}: only NET_RAW`);
        assert.ok(!nnp, `${s.name}: no-new-privileges would disable the file capabilities live capture needs`);
      } else {
        assert.ok(nnp, `${s.name}: no capability needed, so no-new-privileges`);
      }
    }
    const agent = services.get('agent')!;
    assert.equal(agent.raw['network_mode'], 'host');
    assert.deepEqual(asStrings(agent.raw['cap_add']), ['NET_RAW']);
    assert.equal(services.get('app-sensor')!.raw['network_mode'], 'service:app');
    const replay = services.get('replay')!;
    assert.ok(asStrings(replay.raw['volumes']).includes('./captures:/captures:ro'));
    assert.equal(replay.env[envName('capture.replay')], '/captures');
    assert.ok(asStrings(services.get('collector')!.raw['volumes']).includes('pcap-data:/data'));
  });
});

describe('Dockerfile', () => {
  const { args, stages } = dockerfile();
  const runtime = stages.at(-1)!;
  const runs = (s: Stage): string[] => s.body.filter((i) => i.op === 'RUN').map((i) => i.args);
  const jsonArray = (s: Stage, op: string): string[] => {
    const ins = s.body.filter((i) => i.op === op).at(-1);
    assert.ok(ins, `${s.name}: no ${op}`);
    const value = JSON.parse(ins.args.replace(/^CMD /, '')) as unknown;
    assert.ok(Array.isArray(value), `${op} must be an exec-form JSON array`);
    return value.map(String);
  };

  test('stages: Node 20 Debian slim everywhere; the builder has the toolchain, npm ci, tsc and prunes dev dependencies', () => {
    assert.equal(args.get('NODE_IMAGE'), 'node:20-bookworm-slim');
    const names = stages.map((s) => s.name);
    for (const s of stages) assert.ok(s.base === 'node:20-bookworm-slim' || names.includes(s.base), `${s.name} FROM ${s.base}`);
    assert.equal(runtime.name, 'runtime');
    assert.equal(runtime.base, 'node:20-bookworm-slim', 'runtime starts from the slim base, not from the builder');
    const all = stages.flatMap(runs).join('\n');
    const buildPackages = stages.filter((s) => s !== runtime).flatMap(runs).flatMap(aptPackages);
    for (const p of ['python3', 'make', 'g++', 'libpcap-dev']) assert.ok(buildPackages.includes(p), `builder lacks ${p}`);
    assert.match(all, /npm ci\b/);
    assert.match(all, /npx tsc -p tsconfig\.build\.json/);
    assert.match(all, /npm prune --omit=dev/);
    assert.deepEqual(JSON.parse(readRepo('tsconfig.build.json').replace(/^\s*\/\/.*$/gm, '')), { extends: './tsconfig.json', include: ['cli', 'agent', 'collector', 'common'] });
  });

  test('runtime: only libpcap0.8 and tini stay, no curl or wget, setcap with libcap2-bin purged in the same layer', () => {
    const lines = runs(runtime);
    const packages = lines.flatMap(aptPackages).sort();
    assert.deepEqual(packages, ['libcap2-bin', 'libpcap0.8', 'tini']);
    for (const l of lines) {
      assert.doesNotMatch(l, /\b(curl|wget)\b/, 'no curl or wget in the runtime image');
      if (aptPackages(l).includes('libcap2-bin')) {
        assert.match(l, /setcap cap_net_raw,cap_net_admin\+p \/app\/libexec\/capture-caps/);
        assert.match(l, /apt-get purge -y --auto-remove libcap2-bin/);
        assert.match(l, /install -o root -g pcap -m 0750 \/usr\/bin\/setpriv \/app\/libexec\/capture-caps/);
        assert.match(l, /rm -rf \/var\/lib\/apt\/lists/);
      }
    }
    assert.ok(lines.some((l) => l.includes('setcap')), 'runtime uses setcap');
    assert.ok(!lines.some((l) => /setcap[^&]*\/node\b/.test(l)), 'no file capabilities on node itself (see deploy/docker-entrypoint.sh)');
  });

  test('runtime: non-root user pcap owning /data, HEALTHCHECK through node, tini entrypoint, CMD a CLI command', () => {
    const lines = runs(runtime).join('\n');
    assert.match(lines, /useradd --uid 10001 --gid pcap --home-dir \/data --no-create-home/);
    assert.match(lines, /install -d -o pcap -g pcap -m 0750 \/data/);
    const users = runtime.body.filter((i) => i.op === 'USER');
    assert.equal(users.at(-1)?.args, 'pcap');
    const hc = runtime.body.find((i) => i.op === 'HEALTHCHECK');
    assert.ok(hc, 'no HEALTHCHECK');
    assert.match(hc.args, /CMD \["node", "\/app\/deploy\/healthcheck\.mjs"\]/);
    assert.deepEqual(jsonArray(runtime, 'ENTRYPOINT'), ['/usr/bin/tini', '--', '/app/deploy/docker-entrypoint.sh']);
    const cmd = jsonArray(runtime, 'CMD');
    assert.ok(cliCommands().has(cmd[0]!), `CMD ${cmd.join(' ')}`);
    const copies = runtime.body.filter((i) => i.op === 'COPY').map((i) => i.args).join('\n');
    assert.match(copies, /deploy\/docker-entrypoint\.sh deploy\/healthcheck\.mjs/);
    assert.match(runtime.body.find((i) => i.op === 'WORKDIR')?.args ?? '', /^\/app$/);
    const mode = statSync(repo('deploy/docker-entrypoint.sh')).mode;
    assert.ok(mode & 0o111, 'deploy/docker-entrypoint.sh must be executable (COPY keeps the mode)');
  });

  test('ENV: only variables the code reads, with values it accepts; servers listen on every interface inside containers', () => {
    for (const stage of stages) {
      const env = stageEnv(stages, stage);
      for (const name of Object.keys(env)) assert.ok(KNOWN_ENV.has(name), `Dockerfile ${stage.name}: ENV ${name} is not read by the code`);
      assert.doesNotThrow(() => resolveConfig({ env }));
    }
    const env = stageEnv(stages, runtime);
    assert.equal(env[envName('http.listen')], '0.0.0.0:9465');
    assert.equal(env[envName('collector.listen')], '0.0.0.0:8000');
    assert.equal(env['DATA_DIR'], '/data');
  });

  test('.dockerignore: everything COPY takes is in the build context; secrets, data and .git are not', () => {
    for (const stage of stages) {
      for (const ins of stage.body.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
        const sources = ins.args.split(' ').filter((w) => !w.startsWith('--')).slice(0, -1);
        for (const src of sources) {
          // A glob may match nothing (build-ca.cr[t]: an optional file); a plain path must exist.
          const optional = /[*?[]/.test(src);
          assert.ok(optional || existsSync(repo(src)), `COPY ${src}: no such file`);
          const path = optional ? src.replace(/\[([^\]])[^\]]*\]/g, '$1') : src;
          assert.ok(inBuildContext(path.replace(/\/$/, '')), `COPY ${src}: excluded by .dockerignore`);
        }
      }
    }
    // The optional build CA (npm behind a TLS-inspecting proxy) goes into the deps stage only, and
    // the runtime stage copies nothing from the build stages but node_modules and dist.
    const caStages = stages.filter((st) => st.body.some((i) => i.op === 'COPY' && i.args.includes('build-ca')));
    assert.deepEqual(caStages.map((st) => st.name), ['deps']);
    const fromBuild = runtime.body.filter((i) => i.op === 'COPY' && i.args.startsWith('--from')).map((i) => i.args);
    assert.deepEqual(fromBuild, ['--from=builder /app/node_modules ./node_modules', '--from=builder /app/dist ./dist']);
    assert.match(runs(stages.find((st) => st.name === 'deps')!).join('\n'), /rm -f build-ca\.crt/);
    for (const path of ['deploy/secrets/api_token', 'deploy/secrets/nats_sensor_host.creds', 'deploy/nats/auth.conf', '.git/config', 'node_modules/x', 'dist/agent/cli.js', 'data/pcap_analyzer.db', 'captures/a.pcap', 'test/deploy.test.ts']) {
      assert.ok(!inBuildContext(path), `${path} would be sent to the Docker daemon`);
    }
  });
});

test('deploy/healthcheck.mjs skips the value of every CLI option that takes one (cli/main.ts)', () => {
  const cli = readRepo('cli/main.ts');
  const valued = [...cli.matchAll(/^\s+'?([a-z-]+)'?: \{ type: 'string'/gm)].map((m) => m[1]!).sort();
  assert.ok(valued.includes('listen') && valued.includes('config'), valued.join(' '));
  const known = /const VALUED = new Set\(\[([^\]]*)\]\)/.exec(readRepo('deploy/healthcheck.mjs'));
  assert.ok(known, 'VALUED not found in deploy/healthcheck.mjs');
  assert.deepEqual([...known[1]!.matchAll(/'([a-z-]+)'/g)].map((m) => m[1]!).sort(), valued);
});

describe('Kubernetes examples agree with the code', () => {
  interface Container { file: string; kind: string; c: YamlMap; volumes: YamlMap[]; pod: YamlMap }
  const containers: Container[] = [];
  const docs: Array<{ file: string; doc: YamlMap }> = [];
  for (const file of readdirSync(repo('deploy/k8s')).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const d of loadAllYaml(readRepo('deploy/k8s', file))) {
      if (!isMap(d)) continue;
      docs.push({ file, doc: d });
      const spec = asMap(asMap(asMap(d['spec'] ?? {}, 'spec')['template'] ?? {}, 'template')['spec'] ?? {}, 'pod spec');
      for (const c of asList(spec['containers']).map((x) => asMap(x, 'container'))) {
        containers.push({ file, kind: String(d['kind']), c, volumes: asList(spec['volumes']).map((v) => asMap(v, 'volume')), pod: spec });
      }
    }
  }
  const ours = containers.filter((x) => String(x.c['image']).startsWith('pcap-analyzer'));
  const envOf = (c: YamlMap): Record<string, string> => Object.fromEntries(asList(c['env']).map((e) => asMap(e, 'env')).map((e) => [String(e['name']), e['value'] === undefined ? '' : String(e['value'])]));

  test('an agent DaemonSet on the host network, an agent sidecar, a collector Deployment with a PVC and a Service', () => {
    const kinds = docs.map((d) => `${d.file}:${String(d.doc['kind'])}`).sort();
    assert.deepEqual(kinds, ['agent-daemonset.yaml:DaemonSet', 'agent-sidecar.yaml:Deployment', 'collector.yaml:Deployment', 'collector.yaml:PersistentVolumeClaim', 'collector.yaml:Service']);
    const ds = containers.find((x) => x.kind === 'DaemonSet')!;
    assert.equal(ds.pod['hostNetwork'], true);
    assert.equal(ds.pod['dnsPolicy'], 'ClusterFirstWithHostNet');
    const sidecar = containers.filter((x) => x.file === 'agent-sidecar.yaml');
    assert.equal(sidecar.length, 2, 'the app and the agent in one pod');
  });

  test('commands, environment, probes, ports and secret mounts', () => {
    const commands = cliCommands();
    assert.equal(ours.length, 3);
    for (const { file, c, volumes } of ours) {
      const where = `${file} ${String(c['name'])}`;
      const command = asStrings(c['args'])[0]!;
      assert.ok(commands.has(command), `${where}: ${command}`);
      const env = envOf(c);
      for (const name of Object.keys(env)) assert.ok(KNOWN_ENV.has(name), `${where}: ${name} is not read by the code`);
      assert.doesNotThrow(() => resolveConfig({ env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')) }), where);
      const ports = new Map(asList(c['ports']).map((p) => asMap(p, 'port')).map((p) => [String(p['name']), Number(p['containerPort'])]));
      const listen = command === 'agent' ? env[envName('http.listen')]! : env[envName('collector.listen')]!;
      if (command === 'agent') assertOwnTrafficFilter(where, env, listenPort(listen));
      const probes = ['startupProbe', 'readinessProbe', 'livenessProbe'].filter((p) => c[p] !== undefined).map((p) => [p, asMap(asMap(c[p], p)['httpGet'], `${p}.httpGet`)] as const);
      assert.ok(probes.some(([p]) => p === 'livenessProbe'), `${where}: liveness probe`);
      for (const [p, get] of probes) {
        assert.equal(ports.get(String(get['port'])), listenPort(listen), `${where}: ${p} port`);
        const allowed = command === 'agent' ? (p === 'livenessProbe' ? ['/healthz'] : ['/readyz']) : ['/api/health'];
        assert.ok(allowed.includes(String(get['path'])), `${where}: ${p} path ${String(get['path'])}`);
      }
      const mounts = asList(c['volumeMounts']).map((m) => asMap(m, 'mount'));
      for (const [name, value] of Object.entries(env).filter(([, v]) => v.startsWith('/run/secrets/'))) {
        const mount = mounts.find((m) => m['mountPath'] === value);
        assert.ok(mount, `${where}: ${name}=${value} is not mounted`);
        const volume = volumes.find((v) => v['name'] === mount['name']);
        assert.ok(volume && isMap(volume['secret']), `${where}: ${value} does not come from a Secret`);
      }
      assert.ok(mounts.some((m) => m['mountPath'] === env['DATA_DIR']), `${where}: DATA_DIR ${env['DATA_DIR']} is not a volume`);
      const sc = asMap(c['securityContext'], `${where} securityContext`);
      assert.equal(sc['readOnlyRootFilesystem'], true);
      assert.deepEqual(asStrings(asMap(sc['capabilities'], 'capabilities')['drop']), ['ALL']);
      if (command === 'agent') {
        assert.deepEqual(asStrings(asMap(sc['capabilities'], 'capabilities')['add']), ['NET_RAW'], `${where}: NET_RAW only`);
        assert.equal(sc['allowPrivilegeEscalation'], true, `${where}: no_new_privs would disable the file capabilities`);
      } else {
        assert.equal(sc['allowPrivilegeEscalation'], false);
        assert.equal(asMap(c['readinessProbe'], 'readiness')['httpGet'] !== undefined, true);
      }
    }
    const collector = ours.find((x) => asStrings(x.c['args'])[0] === 'collector')!;
    assert.ok(collector.volumes.some((v) => isMap(v['persistentVolumeClaim'])), 'collector data on a PVC');
    const daemonset = ours.find((x) => x.kind === 'DaemonSet')!;
    assert.ok(daemonset.c['readinessProbe'] !== undefined, 'the DaemonSet agent has a readiness probe on /readyz');
    const service = docs.find((d) => d.doc['kind'] === 'Service')!.doc;
    const sp = asMap(asList(asMap(service['spec'], 'spec')['ports'])[0], 'service port');
    assert.equal(sp['targetPort'], 'http');
    assert.equal(Number(sp['port']), listenPort(envOf(collector.c)[envName('collector.listen')]!));
  });
});

test('docs/deployment.md: the deployment sections, mirroring the files; the README points to it', () => {
  const readme = readRepo('README.md');
  assert.ok(readme.includes('](docs/deployment.md)'), 'README does not link docs/deployment.md');
  assert.ok(readme.includes('](docs/alerting.md)'), 'README does not link docs/alerting.md');
  const deployment = readRepo('docs/deployment.md');
  const at = (heading: string): number => { const i = deployment.indexOf(`\n## ${heading}\n`); assert.ok(i >= 0, `docs/deployment.md has no "## ${heading}"`); return i; };
  const section = (h: string): string => deployment.slice(at(h)).split('\n## ')[1] ?? '';
  const compose = section('Run with Docker Compose');
  for (const word of ['make-secrets.mjs', '--profile replay', '--profile monitoring', '--profile sidecar', 'docker-compose.dev.yml', 'pcap-data', 'NET_RAW', '/api/health', '/healthz']) {
    assert.ok(compose.includes(word), `"Run with Docker Compose" does not mention ${word}`);
  }
  assert.match(compose, /[Bb]ackup/);
  assert.match(compose, /[Rr]estore/);
  const sidecar = section('Deploy as a sidecar');
  for (const word of ['network_mode: "service:', 'deploy/k8s/agent-sidecar.yaml', 'deploy/k8s/agent-daemonset.yaml', 'deploy/k8s/collector.yaml']) assert.ok(sidecar.includes(word), `"Deploy as a sidecar" does not mention ${word}`);
});

// ---------------------------------------------------------------------------------------
// The real programs with the compose environment.

const SYNSCAN = join(SHARED_PCAPS, 'ppa_synscan.pcapng'); // 2,011 packets over 23 s

function stop(p: AgentProcess): Promise<{ code: number | null }> {
  p.child.kill('SIGTERM');
  return p.exited;
}

describe('the compose stack without Docker: NATS with generated credentials, collector, replaying agent', { skip: existsSync(NATS_SERVER_BIN) ? false : `${NATS_SERVER_BIN} is not installed (apt-get install nats-server)` }, () => {
  const services = composeServices('docker-compose.yml');
  const { stages } = dockerfile();
  const runtimeEnv = stageEnv(stages, stages.at(-1)!);
  let work = '';
  let nats: NatsServerHandle | undefined;
  const procs: AgentProcess[] = [];

  before(() => { work = mkdtempSync(join(tmpdir(), 'pa-deploy-')); });
  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) { p.child.kill('SIGKILL'); await p.exited; }
    await nats?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** A service's environment as its container would have it, with paths and addresses moved to this test's. */
  function envFor(name: string, moves: Record<string, string>): Record<string, string> {
    return { ...runtimeEnv, ...services.get(name)!.env, ...moves };
  }

  test('replay agent → NATS (operator mode, agent credentials) → collector (collector credentials); health paths, healthcheck script and alert metrics', async () => {
    // Secrets and the NATS authorization, as a user would make them.
    mkdirSync(join(work, 'nats'));
    copyFileSync(repo('deploy/nats/nats.conf'), join(work, 'nats', 'nats.conf'));
    const made = run(process.execPath, [repo('deploy/make-secrets.mjs'), '--dir', work]);
    assert.equal(made.status, 0, made.out);
    // Compose's secret names map to the files make-secrets wrote.
    const secretFiles = asMap(yamlFile('docker-compose.yml')['secrets'], 'secrets');
    for (const [secret, spec] of Object.entries(secretFiles)) {
      const file = String(asMap(spec, secret)['file']).split('/').pop()!;
      assert.ok(existsSync(join(work, 'secrets', file)), `${secret}: ${file} not written`);
    }
    const secretPath = (value: string): string => {
      const secret = value.slice('/run/secrets/'.length);
      return join(work, 'secrets', String(asMap(secretFiles[secret], secret)['file']).split('/').pop()!);
    };

    nats = await startNatsServer({ args: ['-c', join(work, 'nats', 'nats.conf'), '-m', String(await freePort())] });

    // Without credentials, the operator-mode server refuses the agent (the auth is real).
    const anonymous = spawnCli(['agent'], { env: { ...runtimeEnv, DATA_DIR: join(work, 'anon'), [envName('nats.servers')]: nats.url, [envName('http.listen')]: '', [envName('capture.replay')]: join(REPO_ROOT, 'test/fixtures/sample-loopback.pcap'), [envName('shutdown.seconds')]: '1' } });
    procs.push(anonymous);
    const anonExit = await anonymous.exited;
    assert.equal(anonExit.code, 0, anonymous.stderr());
    assert.match(anonymous.stderr(), /Authorization Violation|authorization violation|AUTHORIZATION_VIOLATION/i);

    const collectorPort = await freePort();
    const collectorEnv = envFor('collector', { [envName('collector.listen')]: `0.0.0.0:${collectorPort}`, [envName('nats.servers')]: nats.url, DATA_DIR: join(work, 'collector-data') });
    for (const [k, v] of Object.entries(services.get('collector')!.env)) if (v.startsWith('/run/secrets/')) collectorEnv[k] = secretPath(v);
    const collector = spawnCli(['collector'], { env: collectorEnv });
    procs.push(collector);
    const base = `http://127.0.0.1:${collectorPort}`;
    await waitFor('collector /api/health', async () => (await fetch(`${base}/api/health`)).ok || undefined, 20_000);

    const agentPort = await freePort();
    const agentEnv = envFor('replay', { [envName('http.listen')]: `0.0.0.0:${agentPort}`, [envName('nats.servers')]: nats.url, [envName('capture.replay')]: SYNSCAN, DATA_DIR: join(work, 'replay-data') });
    for (const [k, v] of Object.entries(services.get('replay')!.env)) if (v.startsWith('/run/secrets/')) agentEnv[k] = secretPath(v);
    assert.equal(agentEnv[envName('capture.speed')], 'realtime', 'the compose default pacing');
    const agent = spawnCli([asStrings(services.get('replay')!.raw['command'])[0]!], { env: agentEnv });
    procs.push(agent);
    const agentBase = `http://127.0.0.1:${agentPort}`;
    await waitFor('agent /readyz 200', async () => (await fetch(`${agentBase}/readyz`)).status === 200 || undefined, 20_000);
    assert.equal((await fetch(`${agentBase}/healthz`)).status, 200);

    // The image's HEALTHCHECK script finds each process, resolves its config from its
    // environment and asks the right path.
    for (const [p, path] of [[collector, '/api/health'], [agent, '/healthz']] as const) {
      const hc = run(process.execPath, [repo('deploy/healthcheck.mjs'), '--pid', String(p.child.pid)]);
      assert.equal(hc.status, 0, hc.out);
      assert.ok(hc.out.includes(path), hc.out);
    }

    // Data flows through the authenticated NATS: the collector lists the sensor with its windows.
    const token = readFileSync(join(work, 'secrets', 'api_token'), 'utf8').trim();
    assert.equal((await fetch(`${base}/api/sensors`)).status, 401, 'API_TOKEN_FILE is in force');
    const sensorId = agentEnv[envName('sensor.id')]!;
    await waitFor('the collector to store a window of sensor replay', async () => {
      const res = await fetch(`${base}/api/sensors/${sensorId}/windows?from=0&to=4000000000`, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) return undefined;
      const body = await res.json() as { windows?: unknown[] };
      return (body.windows?.length ?? 0) > 0 || undefined;
    }, 30_000, 250);

    // Every metric the alerts use is exported by the real agent or the real collector.
    const exported = new Set<string>();
    for (const url of [`${agentBase}/metrics`, `${base}/metrics`]) {
      const text = await (await fetch(url)).text();
      for (const m of text.matchAll(/^# TYPE (\S+)/gm)) exported.add(m[1]!);
      assert.ok(parseMetrics(text).size > 0);
    }
    const { names, patterns } = alertMetrics();
    for (const name of names) assert.ok(exported.has(name), `alerts use ${name}, which neither /metrics exports`);
    for (const re of patterns) {
      const hits = [...exported].filter((n) => re.test(n));
      assert.ok(hits.length >= 2, `${re.source} matches ${hits.join(', ') || 'nothing'}`);
    }

    assert.equal((await stop(agent)).code, 0, agent.stderr());
    assert.equal((await stop(collector)).code, 0, collector.stderr());
    const hcGone = run(process.execPath, [repo('deploy/healthcheck.mjs'), '--pid', String(agent.child.pid)]);
    assert.equal(hcGone.status, 1, 'unhealthy once the process is gone');
    const logs = `${agent.stderr()}\n${collector.stderr()}`;
    assert.doesNotMatch(logs, /Permissions Violation/i, 'the generated permissions cover what agent and collector do');
  });
});

// ---------------------------------------------------------------------------------------
// The entrypoint's capabilities, as in a container: non-root, a bounding set like
// cap_drop ALL + cap_add NET_RAW, the image's capture-caps helper.

function capsSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (setcap, setpriv, a veth pair)';
  for (const tool of ['setcap', 'setpriv', 'ip']) if (!which(tool) && !existsSync(`/usr/sbin/${tool}`) && !existsSync(`/sbin/${tool}`)) return `${tool} is not installed`;
  if (!existsSync(NATS_SERVER_BIN)) return 'nats-server is not installed';
  return false;
}

describe('deploy/docker-entrypoint.sh: live capture as the non-root user with NET_RAW only', { skip: capsSkip() }, () => {
  const setcap = which('setcap') ?? (existsSync('/usr/sbin/setcap') ? '/usr/sbin/setcap' : '/sbin/setcap');
  const setpriv = which('setpriv')!;
  const veth = `pa-dt${process.pid % 100000}`;
  let app = '';
  let nats: NatsServerHandle | undefined;

  before(() => {
    // The image's layout: <app>/deploy/docker-entrypoint.sh, <app>/bin, <app>/libexec/capture-caps.
    app = mkdtempSync(join(tmpdir(), 'pa-entry-'));
    chmodSync(app, 0o755);
    mkdirSync(join(app, 'deploy'));
    mkdirSync(join(app, 'libexec'));
    copyFileSync(repo('deploy/docker-entrypoint.sh'), join(app, 'deploy', 'docker-entrypoint.sh'));
    chmodSync(join(app, 'deploy', 'docker-entrypoint.sh'), 0o755);
    symlinkSync(repo('bin'), join(app, 'bin'));
    copyFileSync(setpriv, join(app, 'libexec', 'capture-caps'));
    chmodSync(join(app, 'libexec', 'capture-caps'), 0o755);
    const r = run(setcap, ['cap_net_raw,cap_net_admin+p', join(app, 'libexec', 'capture-caps')]);
    assert.equal(r.status, 0, r.out);
    mkdirSync(join(app, 'data'));
    chownSync(join(app, 'data'), 65534, 65534);
    run('ip', ['link', 'del', veth]);
    const v = run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
    assert.equal(v.status, 0, v.out);
    assert.equal(run('ip', ['link', 'set', veth, 'up']).status, 0);
    assert.equal(run('ip', ['link', 'set', `${veth}p`, 'up']).status, 0);
  });
  after(async () => {
    run('ip', ['link', 'del', veth]);
    await nats?.close();
    if (app) rmSync(app, { recursive: true, force: true });
  });

  /** Runs the entrypoint as uid 65534 with the given bounding set, as Docker would. */
  function entry(bounding: string, args: string[], extra: string[] = []): AgentProcess {
    const argv = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', `--bounding-set=${bounding}`, ...extra, join(app, 'deploy', 'docker-entrypoint.sh'), ...args];
    const child = spawn(setpriv, argv, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', [envName('shutdown.seconds')]: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const started = Date.now();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started })));
    return { child, stdout: () => out, stderr: () => err, exited };
  }

  const promiscuity = (): number => Number(/promiscuity (\d+)/.exec(run('ip', ['-d', 'link', 'show', veth]).out)?.[1] ?? NaN);

  test('bounding set {NET_RAW}: the agent captures (promiscuous) with NET_RAW effective and ambient, nothing else', async () => {
    nats = await startNatsServer();
    const port = await freePort();
    const p = entry('-all,+net_raw', ['agent', '--interface', veth, '--nats', nats.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(app, 'data'), '--sensor', 'caps']);
    try {
      await waitFor('/readyz 200', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 || undefined, 20_000);
      const status = readFileSync(`/proc/${p.child.pid}/status`, 'utf8');
      assert.match(status, /^Uid:\s+65534\b/m);
      assert.match(status, /^CapEff:\s+0000000000002000$/m, 'NET_RAW only, effective');
      assert.match(status, /^CapAmb:\s+0000000000002000$/m);
      assert.equal(promiscuity(), 1, 'promiscuous mode with NET_RAW alone');
    } finally {
      assert.equal((await stop(p)).code, 0, p.stderr());
    }
    assert.equal(promiscuity(), 0);
  });

  test('no capability in the bounding set: the entrypoint runs node plainly; live capture fails with the CAP_NET_RAW message, replay works', async () => {
    const live = entry('-all', ['agent', '--interface', veth, '--nats', nats!.url, '--listen', '', '--data-dir', join(app, 'data')]);
    const { code } = await live.exited;
    assert.equal(code, 2, live.stderr());
    assert.match(live.stderr(), /CAP_NET_RAW/);
    const version = entry('-all', ['agent', '--version']);
    assert.equal((await version.exited).code, 0, version.stderr());
    assert.match(version.stdout(), /^\d+\.\d+\.\d+/);
  });

  test('no-new-privileges: the entrypoint says why capture will fail instead of dying in the helper', async () => {
    const p = entry('-all,+net_raw', ['agent', '--version'], ['--no-new-privs']);
    assert.equal((await p.exited).code, 0, p.stderr());
    assert.match(p.stderr(), /no-new-privileges/);
  });

  test('the collector runs under no_new_privs with no capability, even with NET_RAW in the bounding set: the helper cannot raise one for it or its analyses', async () => {
    const port = await freePort();
    mkdirSync(join(app, 'data', 'collector'));
    chownSync(join(app, 'data', 'collector'), 65534, 65534);
    const p = entry('-all,+net_raw', ['collector', '--listen', `127.0.0.1:${port}`, '--nats', nats!.url, '--data-dir', join(app, 'data', 'collector')]);
    try {
      await waitFor('collector /api/health', async () => (await fetch(`http://127.0.0.1:${port}/api/health`)).status > 0 || undefined, 20_000);
      const status = readFileSync(`/proc/${p.child.pid}/status`, 'utf8');
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.match(status, /^CapEff:\s+0{16}$/m);
      assert.match(status, /^CapPrm:\s+0{16}$/m);
      // no_new_privs is inherited by every child and makes exec ignore file capabilities (the
      // test above shows the helper failing under it).
    } finally {
      assert.equal((await stop(p)).code, 0, p.stderr());
    }
  });
});
