/**
 * The typed-array building blocks of the analyzer engine v2
 * (agent/analyzers/lib): each checked against a plain reference (a Map with
 * LRU order, SeriesRing, Suppressor) on long seeded random sequences, plus the
 * edge cases named in their doc comments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../common/config.js';
import { Networks, parseIPv4, parseIPv6 } from '../agent/analyzers/lib/networks.js';
import { HostTable } from '../agent/analyzers/lib/host-table.js';
import { KeyTable, hashWords } from '../agent/analyzers/lib/key-table.js';
import { BucketReducer } from '../agent/analyzers/lib/time-buckets.js';
import { SeriesRing } from './helpers/reference-series-ring.js';
import { FirstSight } from '../agent/analyzers/lib/first-sight.js';
import { SuppressionTable } from '../agent/analyzers/lib/suppression.js';
import { Suppressor } from './helpers/reference-suppressor.js';
import { mulberry32 } from './helpers/fuzz-lib.js';
import { Quantiles } from '../agent/analyzers/lib/quantiles.js';

const v4 = (s: string): Uint32Array => parseIPv4(s)!;
const v6 = (s: string): Uint32Array => parseIPv6(s)!;
const networks = new Networks(buildConfig(undefined).networks.internal);

test('HostTable: interns IPv4 and IPv6 hosts into stable ids, with flags and names', () => {
  const hosts = new HostTable(16, networks, false);
  const a = hosts.intern(4, v4('10.1.2.3'));
  assert.equal(a, 0);
  assert.ok(hosts.inserted);
  assert.equal(hosts.intern(4, v4('10.1.2.3')), a);
  assert.ok(!hosts.inserted);
  assert.equal(hosts.intern(4, Uint32Array.of(v4('10.1.2.3')[0]!, 7, 8, 9)), a, 'IPv4 ignores words 1..3');
  // Same first word, other version: another host.
  const six = hosts.intern(6, Uint32Array.of(v4('10.1.2.3')[0]!, 0, 0, 0));
  assert.notEqual(six, a);
  assert.equal(hosts.name(six), 'a01:203::');
  assert.equal(hosts.version(six), 6);
  assert.equal(hosts.version(a), 4);
  assert.equal(hosts.name(a), '10.1.2.3');
  assert.ok(hosts.isInternal(a) && !hosts.isLoopback(a) && !hosts.isSpecial(a) && !hosts.isIgnored(a));

  const cases: Array<[number, Uint32Array, string, { internal: boolean; loopback: boolean; special: boolean }]> = [
    [4, v4('8.8.8.8'), '8.8.8.8', { internal: false, loopback: false, special: false }],
    [4, v4('127.0.0.1'), '127.0.0.1', { internal: false, loopback: true, special: false }],
    [4, v4('224.0.0.251'), '224.0.0.251', { internal: false, loopback: false, special: true }],
    [4, v4('255.255.255.255'), '255.255.255.255', { internal: false, loopback: false, special: true }],
    [4, v4('169.254.1.1'), '169.254.1.1', { internal: false, loopback: false, special: true }],
    [4, v4('0.0.0.0'), '0.0.0.0', { internal: false, loopback: false, special: true }],
    [6, v6('fd12:3456::1'), 'fd12:3456::1', { internal: true, loopback: false, special: false }],
    [6, v6('2001:db8::1'), '2001:db8::1', { internal: false, loopback: false, special: false }],
    [6, v6('::1'), '::1', { internal: false, loopback: true, special: false }],
    [6, v6('ff02::fb'), 'ff02::fb', { internal: false, loopback: false, special: true }],
    [6, v6('fe80::1:2'), 'fe80::1:2', { internal: false, loopback: false, special: true }],
    [6, v6('::'), '::', { internal: false, loopback: false, special: true }],
  ];
  for (const [version, words, name, f] of cases) {
    const id = hosts.intern(version, words);
    assert.equal(hosts.name(id), name);
    assert.equal(hosts.version(id), version);
    assert.deepEqual({ internal: hosts.isInternal(id), loopback: hosts.isLoopback(id), special: hosts.isSpecial(id) }, f, name);
    assert.equal(hosts.isIgnored(id), f.loopback, `${name}: loopback is ignored without includeLoopback`);
    assert.equal(hosts.find(version, words), id);
    assert.equal(hosts.generation[id], 1);
    for (let i = 0; i < (version === 6 ? 4 : 1); i++) assert.equal(hosts.addressWord(id, i), words[i]);
  }
  assert.equal(hosts.size, 2 + cases.length);
  assert.equal(hosts.find(4, v4('1.1.1.1')), -1);
  assert.equal(hosts.size, 2 + cases.length, 'find does not insert');
  const withLoopback = new HostTable(4, networks, true);
  assert.ok(!withLoopback.isIgnored(withLoopback.intern(4, v4('127.0.0.1'))));
});

test('HostTable: full, the least recently interned or touched host goes; its id gets a new generation', () => {
  const hosts = new HostTable(3, networks, false);
  const a = hosts.intern(4, v4('192.0.2.1'));
  const b = hosts.intern(4, v4('192.0.2.2'));
  const c = hosts.intern(6, v6('2001:db8::3'));
  assert.deepEqual([a, b, c], [0, 1, 2]);
  hosts.intern(4, v4('192.0.2.1')); // a is now the newest
  hosts.touch(b); // then b
  assert.equal(hosts.find(6, v6('2001:db8::3')), c, 'find does not refresh c');
  const generationOfC = hosts.generation[c]!;
  const d = hosts.intern(4, v4('10.9.9.9'));
  assert.equal(d, c, 'the least recently used id (c) is reused');
  assert.equal(hosts.generation[d], generationOfC + 1);
  assert.equal(hosts.evicted, 1);
  assert.equal(hosts.find(6, v6('2001:db8::3')), -1);
  assert.equal(hosts.name(d), '10.9.9.9');
  assert.ok(hosts.isInternal(d) && hosts.version(d) === 4, 'flags follow the new host');
  assert.equal(hosts.size, 3);
  const e = hosts.intern(6, v6('2001:db8::3'));
  assert.equal(e, a, 'then a, interned before b was touched');
  assert.equal(hosts.generation[a], 2);
  assert.equal(hosts.generation[b], 1);
  assert.equal(hosts.evicted, 2);
});

/** KeyTable against a Map whose insertion order is the LRU order. */
class ReferenceTable {
  readonly map = new Map<string, number>();
  /** id -> key, to pick a live key at random in O(1). */
  readonly ids = new Map<number, string>();
  set(k: string, id: number): void { this.map.set(k, id); this.ids.set(id, k); }
  delete(k: string): void { this.ids.delete(this.map.get(k)!); this.map.delete(k); }
  clear(): void { this.map.clear(); this.ids.clear(); }
  touch(k: string): void { const id = this.map.get(k)!; this.map.delete(k); this.map.set(k, id); }
  oldest(): string { return this.map.keys().next().value as string; }
}

function checkKeyTable(seed: number, capacity: number, width: number, keySpace: number, steps: number): void {
  const random = mulberry32(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const keyText = (words: ArrayLike<number>): string => Array.from({ length: width }, (_, i) => words[i]).join(',');
  const tableKey = (id: number): string => Array.from({ length: width }, (_, i) => table.keyWord(id, i)).join(',');
  // What onEvict saw: the id and its key, still readable then.
  let evictedIds: Array<[number, string]> = [];
  const table = new KeyTable(capacity, width, (id) => { evictedIds.push([id, tableKey(id)]); });
  const ref = new ReferenceTable();
  const fillRandom = (): string => {
    // Words from a small space, high words too: many keys share words and index positions.
    const n = int(keySpace);
    for (let i = 0; i < width; i++) table.key[i] = i === 0 ? n : (((n * 2654435761) >>> (i * 7)) & 3) * 0x40000000;
    return keyText(table.key);
  };
  const fill = (k: string): void => { k.split(',').forEach((w, i) => { table.key[i] = Number(w); }); };
  const lruOrder = (): string[] => {
    const out: string[] = [];
    for (let id = table.oldest(); id >= 0; id = table.newer(id)) out.push(tableKey(id));
    return out;
  };
  let evictions = 0;
  for (let step = 0; step < steps; step++) {
    if (step === steps >> 1) {
      table.clear();
      ref.clear();
    }
    const r = random();
    if (r < 0.45) {
      const k = fillRandom();
      const known = ref.map.get(k);
      let expectedVictim: number | undefined;
      let victimKey = '';
      if (known === undefined && ref.map.size === capacity) { victimKey = ref.oldest(); expectedVictim = ref.map.get(victimKey); }
      evictedIds = [];
      const id = table.findOrInsert();
      if (known !== undefined) {
        assert.equal(id, known);
        assert.ok(!table.inserted);
        ref.touch(k);
      } else {
        assert.ok(table.inserted);
        if (expectedVictim !== undefined) {
          assert.deepEqual(evictedIds, [[expectedVictim, victimKey]]);
          assert.equal(id, expectedVictim, 'the evicted id is reused');
          ref.delete(victimKey);
          evictions++;
        } else {
          assert.deepEqual(evictedIds, []);
        }
        assert.ok(!ref.ids.has(id), 'a live id is never handed out twice');
        ref.set(k, id);
      }
      assert.equal(tableKey(id), k);
    } else if (r < 0.7) {
      const k = fillRandom();
      assert.equal(table.find(), ref.map.get(k) ?? -1);
    } else if (r < 0.8) {
      const id = int(capacity);
      const k = ref.ids.get(id);
      if (k === undefined) { assert.ok(!table.isLive(id)); continue; }
      table.remove(id);
      ref.delete(k);
      assert.ok(!table.isLive(id));
      fill(k);
      assert.equal(table.find(), -1);
    } else if (r < 0.9) {
      const id = int(capacity);
      const k = ref.ids.get(id);
      if (k === undefined) continue;
      table.touch(id);
      ref.touch(k);
    } else if (r < 0.905) {
      // Remove some ids (a third of a small table, about 20 of a large one) while walking the LRU list.
      const p = Math.min(1 / 3, 20 / Math.max(1, ref.map.size));
      for (let id = table.oldest(); id >= 0;) {
        const next = table.newer(id);
        if (random() < p) {
          const k = tableKey(id);
          assert.equal(ref.map.get(k), id);
          table.remove(id);
          ref.delete(k);
        }
        id = next;
      }
    } else if (r < 0.91) {
      assert.deepEqual(lruOrder(), [...ref.map.keys()]);
    }
    assert.equal(table.size, ref.map.size);
    assert.equal(table.evicted, evictions);
  }
  // Every live key is still reachable through the index, and nothing else is.
  assert.deepEqual(lruOrder(), [...ref.map.keys()]);
  for (const [k, id] of ref.map) { fill(k); assert.equal(table.find(), id, k); }
  for (let n = 0; n < keySpace; n++) {
    const k = fillRandom();
    assert.equal(table.find(), ref.map.get(k) ?? -1);
  }
  assert.ok(evictions > steps / 100, `seed ${seed}: only ${evictions} evictions`);
}

test('KeyTable: equals a Map with LRU order on long random sequences (collisions, removes while iterating, evictions)', () => {
  checkKeyTable(1, 64, 3, 200, 60_000);
  checkKeyTable(2, 1, 1, 4, 5_000);
  checkKeyTable(3, 5, 2, 12, 20_000);
  checkKeyTable(4, 1000, 1, 2500, 60_000);
  checkKeyTable(5, 37, 4, 100, 40_000);
});

test('KeyTable: the index stays short-probed after many removals (backward shift, no tombstones)', () => {
  const table = new KeyTable(1024, 2);
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 1024; i++) { table.key[0] = round * 1024 + i; table.key[1] = 7; table.findOrInsert(); }
    for (let id = table.oldest(); id >= 0;) { const next = table.newer(id); if (table.keyWord(id, 0) % 3 !== 0) table.remove(id); id = next; }
  }
  // 200 rounds of inserts and removals; every remaining key is found, every removed one is not.
  let live = 0;
  for (let id = table.oldest(); id >= 0; id = table.newer(id)) {
    live++;
    table.key[0] = table.keyWord(id, 0); table.key[1] = 7;
    assert.equal(table.find(), id);
  }
  assert.equal(live, table.size);
  table.key[0] = 199 * 1024 + 1; table.key[1] = 7;
  assert.equal(table.find(), -1);
  assert.equal(table.keyHash(), hashWords(Uint32Array.of(199 * 1024 + 1, 7), 2), 'hashWords is the table hash');
  const small = new KeyTable(4, 1);
  small.key[0] = 5;
  small.remove(small.findOrInsert());
  assert.throws(() => small.remove(0), /not a live id/);
  assert.throws(() => small.remove(3), /not a live id/);
  assert.throws(() => new KeyTable(0, 1), RangeError);
});

/** Times: mostly forward, with jumps back, long gaps, and negative values. */
function randomTime(random: () => number, now: number): number {
  const r = random();
  if (r < 0.7) return now + random() * 3;
  if (r < 0.85) return now - random() * 40;
  if (r < 0.95) return now + random() * 200;
  return now + (random() - 0.5) * 5000;
}

test('BucketReducer: exactly SeriesRing sums, per key, on random adds and queries', () => {
  for (const [seed, lookback, buckets, series] of [[11, 60, 10, 2], [12, 300, 6, 4], [13, 7, 7, 1], [14, 1, 3, 3], [15, 10, 1, 2]] as const) {
    const random = mulberry32(seed);
    const keys = 7;
    const reducer = new BucketReducer(keys, lookback, buckets, series);
    const rings = Array.from({ length: keys }, () => new SeriesRing(lookback, buckets, series));
    const now = new Float64Array(keys).fill(-50);
    for (let step = 0; step < 40_000; step++) {
      const id = Math.floor(random() * keys);
      const ring = rings[id]!;
      const r = random();
      if (r < 0.6) {
        const t = randomTime(random, now[id]!);
        now[id] = Math.max(now[id]!, t);
        const s = Math.floor(random() * series);
        // Fractional amounts too: the same additions in the same order give the same doubles.
        const n = random() < 0.5 ? Math.floor(random() * 1500) : random() * 10;
        reducer.add(id, t, s, n);
        ring.add(t, s, n);
      } else if (r < 0.995) {
        const t = randomTime(random, now[id]!);
        const b = random() < 0.5 ? reducer.boundaryAt(t) : reducer.bucketOf(t) + Math.floor(random() * 3);
        assert.equal(reducer.boundaryAt(t), ring.boundaryAt(t));
        assert.equal(reducer.bucketOf(t), ring.bucketOf(t));
        for (let s = 0; s < series; s++) assert.equal(reducer.sumBefore(id, s, b), ring.sumBefore(s, b), `seed ${seed} step ${step}`);
        assert.equal(reducer.newestBucket(id), ring.newestBucket);
      } else {
        reducer.clear(id);
        rings[id] = new SeriesRing(lookback, buckets, series);
        assert.equal(reducer.newestBucket(id), -Infinity);
      }
    }
    assert.equal(reducer.bucketSeconds, rings[0]!.bucketSeconds);
  }
});

test('BucketReducer: merging keys of two reducers equals one ring fed with both in time order', () => {
  const lookback = 60;
  const buckets = 10;
  const series = 2;
  for (let seed = 21; seed < 61; seed++) {
    const random = mulberry32(seed);
    const a = new BucketReducer(3, lookback, buckets, series);
    const b = new BucketReducer(5, lookback, buckets, series);
    const adds: Array<{ t: number; s: number; n: number; into: 'a' | 'b' }> = [];
    let ta = random() * 100;
    let tb = random() * 100;
    const count = Math.floor(random() * 200);
    for (let i = 0; i < count; i++) {
      const s = Math.floor(random() * series);
      const n = Math.floor(random() * 1000);
      // Each side in time order, with pauses longer than the look-back now and then.
      if (random() < 0.5) { ta += random() < 0.05 ? random() * 200 : random() * 4; a.add(1, ta, s, n); adds.push({ t: ta, s, n, into: 'a' }); } else { tb += random() < 0.05 ? random() * 200 : random() * 4; b.add(4, tb, s, n); adds.push({ t: tb, s, n, into: 'b' }); }
    }
    const ring = new SeriesRing(lookback, buckets, series);
    for (const x of [...adds].sort((p, q) => p.t - q.t)) ring.add(x.t, x.s, x.n);
    a.mergeFrom(b, 4, 1);
    assert.equal(a.newestBucket(1), ring.newestBucket);
    if (ring.newestBucket === -Infinity) continue;
    for (let bound = ring.newestBucket; bound <= ring.newestBucket + buckets + 2; bound++) {
      for (let s = 0; s < series; s++) assert.equal(a.sumBefore(1, s, bound), ring.sumBefore(s, bound), `seed ${seed} b ${bound}`);
    }
    for (let s = 0; s < series; s++) assert.equal(a.sumBefore(0, s, ring.newestBucket + 1), 0, 'other keys untouched');
  }
  assert.throws(() => new BucketReducer(1, 60, 10, 2).mergeFrom(new BucketReducer(1, 60, 6, 2), 0, 0), /differ/);
  assert.equal(BucketReducer.bytesPerKey(10, 2), 11 * 3 * 8 + 8);
});

test('FirstSight: a key is admitted on its second sight within the horizon', () => {
  const fs = new FirstSight(1024, 10);
  assert.ok(!fs.admit(12345, 100), 'first sight');
  assert.ok(fs.admit(12345, 105), 'second sight within the horizon');
  assert.equal(fs.firstSeen, 100);
  assert.ok(!fs.admit(12345, 106), 'its slot was freed on admission: a third sight starts over');
  assert.ok(!fs.admit(999, 0));
  assert.ok(!fs.admit(999, 10.5), 'too late: recorded anew');
  assert.ok(fs.admit(999, 20.5), 'exactly the horizon later still counts');
  assert.ok(!fs.admit(-7, 50));
  assert.ok(fs.admit(-7, 45), 'time going backwards counts as within');
  assert.equal(fs.admitted, 3);
  assert.equal(fs.overwritten, 0);

  const one = new FirstSight(1, 10);
  assert.ok(!one.admit(1, 0));
  assert.ok(!one.admit(2, 1), 'a colliding key overwrites');
  assert.equal(one.overwritten, 1);
  assert.ok(!one.admit(1, 2), 'the first key was forgotten');
  assert.ok(one.admit(1, 3));
  one.clear();
  assert.ok(!one.admit(1, 4));

  // Hashes spread over the slots (any capacity, not only powers of two).
  const random = mulberry32(3);
  const wide = new FirstSight(1000, 1);
  const hits = new Uint32Array(1000);
  for (let i = 0; i < 100_000; i++) { wide.admit((random() * 4294967296) | 0, i); hits[wide.slot]!++; }
  assert.ok(Math.min(...hits) > 50 && Math.max(...hits) < 160, `${Math.min(...hits)}..${Math.max(...hits)}`);
  // Sequential hashes too (keys hashed poorly by a caller).
  const seq = new FirstSight(64, 1);
  const seen = new Set<number>();
  for (let h = 0; h < 64; h++) { seq.admit(h, 0); seen.add(seq.slot); }
  assert.ok(seen.size > 32, `${seen.size} slots of 64`);
});

test('SuppressionTable: the same decisions and evictions as Suppressor on a random sequence', () => {
  for (const [seed, capacity, keySpace, seconds] of [[31, 8, 20, 600], [32, 1, 3, 10], [33, 50, 60, 30]] as const) {
    const random = mulberry32(seed);
    const table = new SuppressionTable(seconds, capacity, 2);
    const oracle = new Suppressor(seconds, capacity);
    let now = 0;
    for (let step = 0; step < 30_000; step++) {
      const r = random();
      now += r < 0.9 ? random() * seconds / 10 : r < 0.97 ? -random() * seconds : random() * seconds * 3;
      const k = Math.floor(random() * keySpace);
      table.key[0] = k;
      table.key[1] = k % 3;
      assert.equal(table.allow(now), oracle.allow(`${k}/${k % 3}`, now), `seed ${seed} step ${step}`);
      assert.equal(table.evicted, oracle.evicted);
    }
    assert.ok(table.size <= capacity);
  }
  // Suppressor's own test case.
  const s = new SuppressionTable(600, 2, 1);
  const allow = (k: number, now: number): boolean => { s.key[0] = k; return s.allow(now); };
  assert.ok(allow(1, 0));
  assert.ok(!allow(1, 599.9));
  assert.ok(allow(2, 10));
  assert.ok(allow(1, 600));
  assert.ok(allow(3, 700), 'a third key evicts the oldest');
  assert.equal(s.evicted, 1);
  assert.ok(allow(2, 701), '2 was evicted, so it may report again');
});


/** Nearest-rank quantile of sorted values; the median of an even count is the mean of the middle two (as Quantiles documents). */
function referenceQuantile(sorted: readonly number[], q: number): number {
  const n = sorted.length;
  if (q === 0.5 && n % 2 === 0) return (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
}

test('Quantiles: exact up to 65,536 samples, within 0.5 % past it, and exact again after clear() of a window in bucket mode', () => {
  const random = mulberry32(7);
  const q = new Quantiles();
  const check = (values: number[], exact: boolean, what: string): void => {
    const sorted = [...values].sort((a, b) => a - b);
    const s = q.summary();
    assert.equal(s.count, values.length, `${what}: count`);
    for (const [name, p] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]] as const) {
      const want = referenceQuantile(sorted, p);
      const got = s[name];
      assert.ok(got !== null && Number.isFinite(got), `${what}: ${name} is a number (${got})`);
      if (exact) assert.ok(Math.abs(got - want) <= 1e-9, `${what}: ${name} ${got} = ${want}`);
      else assert.ok(Math.abs(got - want) <= want * 0.005 + 1e-9, `${what}: ${name} ${got} within 0.5 % of ${want}`);
    }
    assert.ok(Math.abs(s.max! - sorted.at(-1)!) <= 1e-9, `${what}: max`);
  };
  const draw = (n: number): number[] => Array.from({ length: n }, () => 0.0001 + random() * 0.5);
  const windows: Array<[number, boolean]> = [[10, true], [65_536, true], [70_000, false], [10, true], [1000, true], [100_000, false], [65_536, true]];
  for (const [n, exact] of windows) {
    q.clear();
    const values = draw(n);
    for (const v of values) q.add(v);
    check(values, exact, `${n} samples after a window of another size`);
  }
});
