import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors.js';
import { buildConfig } from '../common/config.js';
import { Networks, isLoopback, parseIPv4, parseIPv6 } from '../agent/analyzers/lib/networks.js';
import { Suppressor } from '../agent/analyzers/lib/suppressor.js';
import { BoundedMap, BucketCounter } from '../agent/analyzers/lib/bounded-map.js';

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

test('suppression: once per period of packet time per key, bounded', () => {
  const s = new Suppressor(600, 2);
  assert.ok(s.allow('a', 0));
  assert.ok(!s.allow('a', 599.9));
  assert.ok(s.allow('b', 10));
  assert.ok(s.allow('a', 600));
  assert.ok(s.allow('c', 700), 'a third key evicts the oldest');
  assert.equal(s.evicted, 1);
  assert.ok(s.allow('b', 701), 'b was evicted, so it may report again');
});

test('bounded map: least recently used goes first, counted', () => {
  const evicted: string[] = [];
  const m = new BoundedMap<string, number>(3, (k) => evicted.push(k));
  for (const k of ['a', 'b', 'c']) m.set(k, 1);
  m.get('a');
  m.set('d', 1);
  assert.deepEqual(evicted, ['b']);
  assert.equal(m.evicted, 1);
  assert.equal(m.size, 3);
  assert.equal(m.peek('b'), undefined);
});

test('bucket counter: sums over the look-back only, gaps clear old buckets', () => {
  const c = new BucketCounter(60, 6);
  c.add(0, 5);
  c.add(30, 2);
  assert.equal(c.sum(59), 7);
  assert.equal(c.sum(65), 2, 'the bucket of t=0 has left the look-back');
  assert.equal(c.sum(95), 0);
  c.add(1000, 1);
  assert.equal(c.sum(1000), 1, 'a long gap clears everything');
  c.add(995, 4);
  assert.equal(c.sum(1000), 5, 'a packet earlier than the current bucket counts in it');
  const negative = new BucketCounter(10, 5);
  negative.add(-3, 1);
  assert.equal(negative.sum(-1), 1);
});

test('BoundedMap: LRU order and evictions equal a plain Map reference on a random sequence', () => {
  class Reference {
    readonly map = new Map<string, number>();
    readonly evicted: string[] = [];
    constructor(private readonly cap: number) {}
    get(k: string): void { const v = this.map.get(k); if (v !== undefined) { this.map.delete(k); this.map.set(k, v); } }
    set(k: string, v: number): void {
      this.map.delete(k);
      this.map.set(k, v);
      while (this.map.size > this.cap) { const oldest = this.map.keys().next().value as string; this.map.delete(oldest); this.evicted.push(oldest); }
    }
  }
  let seed = 7;
  const random = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
  const evicted: string[] = [];
  const map = new BoundedMap<string, number>(500, (k) => evicted.push(k));
  const reference = new Reference(500);
  for (let i = 0; i < 100_000; i++) {
    const key = `k${Math.floor(random() * 3000)}`;
    const r = random();
    if (r < 0.5) { map.set(key, i); reference.set(key, i); } else if (r < 0.8) { map.get(key); reference.get(key); } else { map.delete(key); reference.map.delete(key); }
  }
  assert.deepEqual([...map.entries()].map(([k]) => k), [...reference.map.keys()]);
  assert.deepEqual(evicted, reference.evicted);
});
