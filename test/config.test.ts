import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { ConfigError } from '../common/errors.js';
import { DEFAULT_CONFIG, buildConfig, loadConfig } from '../common/config.js';
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
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read .*missing.yaml: ENOENT/);
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'flows:\n  maxFlows: [1,\n');
  assert.throws(() => loadConfig(broken), /broken.yaml is not valid YAML at line \d+, column \d+/);
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '');
  assert.deepEqual(loadConfig(empty), DEFAULT_CONFIG);
});
