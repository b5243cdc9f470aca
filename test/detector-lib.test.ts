import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors.js';
import { buildConfig } from '../common/config.js';
import { Networks, isLoopback, parseIPv4, parseIPv6 } from '../agent/analyzers/lib/networks.js';
import { AllowList, thresholdsCrossed } from '../agent/analyzers/lib/allow-list.js';
import { MAX, MIN, SUM, WindowCounts } from '../agent/analyzers/lib/flood-window.js';

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


test('allow-lists: listed hosts (blocks or addresses, IPv4 and IPv6) and ports match, nothing else; an empty list is inactive', () => {
  const v4 = (s: string): Uint32Array => parseIPv4(s)!;
  const v6 = (s: string): Uint32Array => parseIPv6(s)!;
  const allow = new AllowList({ allowHosts: ['10.20.0.0/16', '192.0.2.7', '2001:db8:1::/48'], allowPorts: [22, 65535] }, 'analyzers.lateral_movement');
  assert.ok(allow.active);
  assert.ok(allow.host(4, v4('10.20.3.4')) && allow.host(4, v4('192.0.2.7')) && allow.host(6, v6('2001:db8:1:ff::1')));
  assert.ok(!allow.host(4, v4('10.21.0.1')) && !allow.host(4, v4('192.0.2.8')) && !allow.host(6, v6('2001:db8:2::1')));
  assert.ok(allow.port(22) && allow.port(65535) && !allow.port(23) && !allow.port(0));
  const none = new AllowList({ allowHosts: [], allowPorts: [] }, 'analyzers.flood');
  assert.ok(!none.active && !none.host(4, v4('0.0.0.0')) && !none.port(0));
  assert.throws(() => new AllowList({ allowHosts: ['10.0.0.0/8', 'x'] }, 'analyzers.flood'), (e: unknown) => e instanceof ConfigError && e.key === 'analyzers.flood.allowHosts[1]');
});

test('thresholds crossed: each measured figure beside the setting it reached, rounded to 3 decimals', () => {
  assert.equal(thresholdsCrossed([
    { measured: 'distinctPorts', value: 120, setting: 'minPorts', limit: 100 },
    { measured: 'failureRatio', value: 0.95238, setting: 'minFailureRatio', limit: 0.8 },
    { measured: 'intervalCv', value: 0.0412, setting: 'maxIntervalCv', limit: 0.1, op: '<=' },
  ]), 'distinctPorts 120 >= minPorts 100; failureRatio 0.952 >= minFailureRatio 0.8; intervalCv 0.041 <= maxIntervalCv 0.1');
  assert.equal(thresholdsCrossed([]), '');
});

test('window counts (flood): entries grow up to their cap, merge by key whatever the partition (sum, min, max), and empty at take', () => {
  const modes = [MIN, SUM, MAX];
  const put = (t: WindowCounts, a: number, b: number, order: number, n: number, last: number): number => {
    t.key[0] = a;
    t.key[1] = b;
    const e = t.findOrInsert();
    if (e < 0) return e;
    const v = t.values;
    if (order < v[e * 3]!) v[e * 3] = order;
    v[e * 3 + 1] += n;
    if (last > v[e * 3 + 2]!) v[e * 3 + 2] = last;
    return e;
  };
  // One table over 3,000 events on 500 keys, and the same events split over three tables by key parity and index.
  const one = new WindowCounts(2, modes, 10_000, 4);
  const parts = [new WindowCounts(2, modes, 10_000), new WindowCounts(2, modes, 10_000), new WindowCounts(2, modes, 10_000)];
  for (let i = 0; i < 3000; i++) {
    const k = (i * 7919) % 500;
    put(one, k, 0x80000000 + k, i, 1 + (i % 3), i * 0.5);
    put(parts[(k + i) % 3]!, k, 0x80000000 + k, i, 1 + (i % 3), i * 0.5);
  }
  assert.equal(one.size, 500);
  const merged = new WindowCounts(2, modes, Infinity);
  for (const p of parts) assert.equal(merged.absorb(p.take()), 0);
  assert.equal(parts[0]!.size, 0, 'take empties the table');
  const byKey = (t: { keys: Uint32Array; values: Float64Array }): Map<string, number[]> => {
    const m = new Map<string, number[]>();
    for (let e = 0; e < t.keys.length / 2; e++) m.set(`${t.keys[2 * e]}/${t.keys[2 * e + 1]}`, [...t.values.subarray(3 * e, 3 * e + 3)]);
    return m;
  };
  assert.deepEqual(byKey(merged.take()), byKey(one.take()));
  // Reused after take; past the cap an insert fails, an existing key still counts.
  const capped = new WindowCounts(2, modes, 3, 2);
  for (let k = 0; k < 3; k++) assert.ok(put(capped, k, k, k, 1, k) >= 0);
  assert.equal(put(capped, 9, 9, 9, 1, 9), -1);
  assert.equal(put(capped, 1, 1, 0, 1, 5), 1);
  assert.deepEqual([...capped.values.subarray(3, 6)], [0, 2, 5]);
  capped.take();
  assert.ok(put(capped, 9, 9, 9, 1, 9) >= 0 && capped.size === 1);
});
