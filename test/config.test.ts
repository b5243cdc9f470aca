import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { ConfigError } from '../common/errors.js';
import { DEFAULT_CONFIG, buildConfig, envName, loadConfig, maskSecrets, maskUrlCredentials, resolveConfig } from '../common/config.js';
import { REPO_ROOT } from './helpers/paths.js';

test('config.yaml documents exactly the built-in defaults', () => {
  const documented = loadYaml(readFileSync(join(REPO_ROOT, 'config.yaml'), 'utf8'));
  assert.deepEqual(documented, DEFAULT_CONFIG);
  assert.deepEqual(loadConfig(join(REPO_ROOT, 'config.yaml')), DEFAULT_CONFIG);
});

test('a partial file overrides only what it names, and the result is frozen', () => {
  const config = buildConfig({ flows: { maxFlows: 1000, timeouts: { udp: 5 } } });
  assert.equal(config.flows.maxFlows, 1000);
  assert.equal(config.flows.timeouts.udp, 5);
  assert.equal(config.flows.timeouts.tcpEstablished, DEFAULT_CONFIG.flows.timeouts.tcpEstablished);
  assert.ok(Object.isFrozen(config.flows.timeouts));
  assert.throws(() => { (config.flows as { maxFlows: number }).maxFlows = 1; }, TypeError);
});

const rejects = (document: unknown, key: string, message: RegExp): void => {
  assert.throws(() => buildConfig(document), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.key, key);
    assert.match(err.message, message);
    return true;
  });
};

test('unknown keys are errors naming the key path', () => {
  rejects({ flows: { maxFlow: 10 } }, 'flows.maxFlow', /unknown key \(known: maxFlows, timeouts/);
  rejects({ nonsense: true }, 'nonsense', /unknown key/);
});

test('wrong types and out-of-range values name the key', () => {
  rejects({ flows: { maxFlows: 'many' } }, 'flows.maxFlows', /expected a number, got "many"/);
  rejects({ flows: { maxFlows: 3 } }, 'flows.maxFlows', /out of range \[16, /);
  rejects({ flows: { timeouts: { udp: -1 } } }, 'flows.timeouts.udp', /out of range/);
  rejects({ flows: { timeouts: 5 } }, 'flows.timeouts', /expected a mapping, got 5/);
  rejects({ logging: { redact: 'yes' } }, 'logging.redact', /expected true or false/);
  rejects({ logging: { level: 'loud' } }, 'logging.level', /"loud" is not one of trace, debug/);
  rejects([1, 2], '(root)', /expected a mapping, got a list/);
});

test('files: unreadable and invalid YAML are ConfigErrors with the position', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read .*missing.yaml: no such file or directory/);
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'flows:\n  maxFlows: [1,\n');
  assert.throws(() => loadConfig(broken), /broken.yaml is not valid YAML at line \d+, column \d+/);
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '');
  assert.deepEqual(loadConfig(empty), DEFAULT_CONFIG);
});

test('environment: PCAP_ANALYZER_<PATH> overrides the file, flags override both, and errors name the variable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'nats:\n  maxInFlight: 10\nwindows:\n  seconds: 5\n');
  const config = resolveConfig({
    path: file,
    env: {
      PCAP_ANALYZER_NATS_MAX_IN_FLIGHT: '20',
      PCAP_ANALYZER_NATS_SERVERS: 'nats://a:4222, nats://b:4222',
      PCAP_ANALYZER_CAPTURE_PROMISCUOUS: 'false',
      PCAP_ANALYZER_ANALYZERS_TCP_WINDOW_LOW_WINDOW: '4096',
      PCAP_ANALYZER_ANALYZERS_BRUTE_FORCE_PORTS: '[22, 3389]',
      DATA_DIR: '/var/lib/pa',
      LOG_LEVEL: 'debug',
    },
    overrides: { 'nats.maxInFlight': 30, 'capture.replay': undefined },
  });
  assert.equal(config.windows.seconds, 5);
  assert.equal(config.nats.maxInFlight, 30);
  assert.deepEqual(config.nats.servers, ['nats://a:4222', 'nats://b:4222']);
  assert.equal(config.capture.promiscuous, false);
  assert.equal(config.analyzers.tcp_window.lowWindow, 4096);
  assert.deepEqual(config.analyzers.brute_force.ports, [22, 3389]);
  assert.equal(config.dataDir, '/var/lib/pa');
  assert.equal(config.logging.level, 'debug');
  assert.equal(envName('analyzers.tcp_window.zeroWindowPeriod'), 'PCAP_ANALYZER_ANALYZERS_TCP_WINDOW_ZERO_WINDOW_PERIOD');
  assert.throws(() => resolveConfig({ env: { PCAP_ANALYZER_STATUS_SECONDS: 'often' } }),
    (err: unknown) => err instanceof ConfigError && err.key === 'status.seconds' && /PCAP_ANALYZER_STATUS_SECONDS: expected a number, got "often"/.test(err.message));
  assert.throws(() => resolveConfig({ env: { PCAP_ANALYZER_CAPTURE_SPEED: 'fast' } }), /config capture.speed: "fast" is not top, realtime or a number/);
  assert.throws(() => resolveConfig({ env: { LOG_LEVEL: 'loud' } }), /config logging.level: "loud" is not one of/);
});

test('secrets are masked when the configuration is printed', () => {
  const config = resolveConfig({ env: { PCAP_ANALYZER_NATS_TOKEN: 's3cret-token', PCAP_ANALYZER_NATS_PASSWORD: 'hunter2' } });
  assert.equal(config.nats.token, 's3cret-token');
  const masked = maskSecrets(config);
  assert.equal(masked.nats.token, '********');
  assert.equal(masked.nats.password, '********');
  assert.equal(masked.nats.user, '');
  assert.doesNotMatch(JSON.stringify(masked), /s3cret|hunter2/);
});

test('detector allow-lists: addresses or CIDR blocks and ports, checked at load, from a file or the environment', () => {
  const c = buildConfig({ analyzers: { lateral_movement: { allowHosts: ['10.1.2.3', '192.168.0.0/16', 'fd00::/8'], allowPorts: [22, 3389] } } });
  assert.deepEqual(c.analyzers.lateral_movement.allowHosts, ['10.1.2.3', '192.168.0.0/16', 'fd00::/8']);
  assert.deepEqual(c.analyzers.lateral_movement.allowPorts, [22, 3389]);
  assert.deepEqual(c.analyzers.port_scan.allowHosts, [], 'empty by default: nothing is vouched for');
  rejects({ analyzers: { port_scan: { allowHosts: ['10.0.0.0/33'] } } }, 'analyzers.port_scan.allowHosts[0]', /the prefix must be 0\.\.32/);
  rejects({ analyzers: { flood: { allowHosts: ['10.0.0.1', 'jump-host'] } } }, 'analyzers.flood.allowHosts[1]', /"jump-host" is not an IPv4 address/);
  rejects({ analyzers: { flood: { allowHosts: [5] } } }, 'analyzers.flood.allowHosts[0]', /expected an address or CIDR block as a string, got 5/);
  rejects({ analyzers: { brute_force: { allowPorts: [70000] } } }, 'analyzers.brute_force.allowPorts[0]', /expected a port number 0-65535, got 70000/);
  rejects({ analyzers: { brute_force: { allowPorts: ['ssh'] } } }, 'analyzers.brute_force.allowPorts[0]', /expected a port number/);
  rejects({ analyzers: { dns_tunneling: { allowPorts: [53] } } }, 'analyzers.dns_tunneling.allowPorts', /unknown key/);
  // brute_force's sessions rule: a coefficient of variation needs two sessions; limits are not negative.
  rejects({ analyzers: { brute_force: { minSessions: 1 } } }, 'analyzers.brute_force.minSessions', /1 is out of range \[2, 1000000\]/);
  rejects({ analyzers: { brute_force: { maxSizeCv: -0.1 } } }, 'analyzers.brute_force.maxSizeCv', /out of range/);
  rejects({ analyzers: { brute_force: { maxSessionSeconds: 0 } } }, 'analyzers.brute_force.maxSessionSeconds', /out of range/);
  const fromEnv = resolveConfig({ env: { PCAP_ANALYZER_ANALYZERS_PORT_SCAN_ALLOW_PORTS: '22, 443', PCAP_ANALYZER_ANALYZERS_PORT_SCAN_ALLOW_HOSTS: '10.9.0.0/16' } });
  assert.deepEqual(fromEnv.analyzers.port_scan.allowPorts, [22, 443]);
  assert.deepEqual(fromEnv.analyzers.port_scan.allowHosts, ['10.9.0.0/16']);
});

test('credentials inside URLs are masked: user password, lone token, password parameters; the rest kept', () => {
  assert.equal(maskUrlCredentials('nats://u:p%40ss@h:4222'), 'nats://u:********@h:4222');
  assert.equal(maskUrlCredentials('tls://s3cret@h:4222'), 'tls://********@h:4222');
  assert.equal(maskUrlCredentials('postgres://pa@db/pa?sslmode=require&password=x1'), 'postgres://pa@db/pa?sslmode=require&password=********');
  assert.equal(maskUrlCredentials('nats://h:4222'), 'nats://h:4222');
  assert.equal(maskUrlCredentials('not a url: a@b'), 'not a url: a@b');
});

test('thresholds rising with severity: a list or pair in the wrong order names its key; equal values are allowed', () => {
  rejects({ analyzers: { tcp: { retransmissionCount: [10, 100, 50] } } }, 'analyzers.tcp.retransmissionCount', /must not decrease/);
  rejects({ analyzers: { dns: { warning: 2, critical: 1 } } }, 'analyzers.dns.critical', /1 is below analyzers\.dns\.warning \(2\)/);
  rejects({ analyzers: { jitter: { critical: 0.01 } } }, 'analyzers.jitter.critical', /below analyzers\.jitter\.warning/);
  assert.deepEqual(buildConfig({ analyzers: { tcp: { retransmissionRate: [3, 3, 3] } } }).analyzers.tcp.retransmissionRate, [3, 3, 3]);
});
