import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors.js';
import { buildConfig } from '../common/config.js';
import { Networks, isLoopback, parseIPv4, parseIPv6 } from '../agent/analyzers/lib/networks.js';

test('networks.internal: RFC 1918 and ULA by default, IPv4 and IPv6 prefixes', () => {
  const n = new Networks(buildConfig(undefined).networks.internal);
  const v4 = (s: string): Uint32Array => parseIPv4(s)!;
  const v6 = (s: string): Uint32Array => parseIPv6(s)!;
  for (const a of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1']) assert.ok(n.isInternal(4, v4(a)), a);
  for (const a of ['172.15.255.255', '172.32.0.0', '8.8.8.8', '192.169.0.1', '127.0.0.1']) assert.ok(!n.isInternal(4, v4(a)), a);
  assert.ok(n.isInternal(6, v6('fd12:3456::1')));
  assert.ok(!n.isInternal(6, v6('2001:db8::1')));
  assert.ok(!n.isInternal(6, v4('10.0.0.1')), 'an IPv4 block never matches an IPv6 address');
  assert.ok(isLoopback(4, v4('127.8.9.1')) && isLoopback(6, v6('::1')) && !isLoopback(6, v6('::2')));
  assert.ok(new Networks(['0.0.0.0/0']).isInternal(4, v4('1.2.3.4')));
  assert.ok(new Networks(['192.0.2.7']).isInternal(4, v4('192.0.2.7')) && !new Networks(['192.0.2.7']).isInternal(4, v4('192.0.2.8')));
});

test('networks.internal: a bad block is a config error naming the entry', () => {
  assert.throws(() => new Networks(['10.0.0.0/8', '300.1.1.1/8']), (e: unknown) => e instanceof ConfigError && e.key === 'networks.internal[1]');
  assert.throws(() => new Networks(['10.0.0.0/33']), /prefix must be 0..32/);
  assert.throws(() => new Networks(['fe80::1::2/64']), /is not an IPv6 address/);
  assert.throws(() => buildConfig({ networks: { internal: [10] } }), /networks.internal\[0\]: expected a string/);
});

