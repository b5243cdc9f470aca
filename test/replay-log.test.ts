/**
 * A flow-sharded worker's replay log (agent/analyzers/lib/replay-log.ts):
 * bounded per window (the oldest half dropped when full, counted), its parts
 * share the worker's buffers with the coordinator, and the buffers of a part
 * come back to the worker only once the coordinator marked it replayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../common/config.js';
import { ReplayLog, endReplay, replayInOrder, type ReplayLogPart } from '../agent/analyzers/lib/replay-log.js';
import { analyzeCapture } from '../agent/analyze/analyze.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { goldenCases } from './helpers/golden.js';
import { shardableConfig } from './helpers/shardable.js';

/** Record `order` with word 0 = order, and bytes `order % 7 + 1` long of value `order & 255` (offset in word 1). */
function addRecord(log: ReplayLog, order: number): void {
  const n = log.maxBytes > 0 ? order % 7 + 1 : 0;
  const r = log.add(order, order / 10, n);
  log.ints[r] = order;
  for (let i = 0; i < n; i++) log.bytes[log.byteOffset + i] = order & 255;
}

/** The orders of a part's records, each checked against its words and bytes. */
function ordersOf(part: ReplayLogPart, width: number, withBytes: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; 2 * i < part.times.length; i++) {
    const order = part.times[2 * i]!;
    assert.equal(part.times[2 * i + 1], order / 10);
    assert.equal(part.ints[i * width], order);
    if (withBytes) {
      const at = part.ints[i * width + 1]!;
      for (let k = 0; k < order % 7 + 1; k++) assert.equal(part.bytes[at + k], order & 255, `record ${order}, byte ${k}`);
    }
    out.push(order);
  }
  return out;
}

test('a replay log keeps every record of a window within its bound, in order, with its bytes', () => {
  const log = new ReplayLog({ width: 2, maxRecords: 1000, maxBytes: 8000, offsetWord: 1, initialRecords: 2, initialBytes: 4 });
  for (let o = 0; o < 600; o++) addRecord(log, o);
  const part = log.take();
  assert.deepEqual(ordersOf(part, 2, true), Array.from({ length: 600 }, (_, i) => i));
  assert.equal(part.dropped, 0);
  assert.equal(log.length, 0);
});

test('a full replay log drops its oldest half: the most recent records stay, the dropped are counted', () => {
  for (const withBytes of [false, true]) {
    const log = withBytes
      ? new ReplayLog({ width: 2, maxRecords: 1 << 20, maxBytes: 64, offsetWord: 1 })
      : new ReplayLog({ width: 2, maxRecords: 16 });
    for (let o = 0; o < 1000; o++) addRecord(log, o);
    const part = log.take();
    const kept = ordersOf(part, 2, withBytes);
    // The most recent, without a gap, ending with the last.
    assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => 1000 - kept.length + i));
    assert.equal(part.dropped + kept.length, 1000);
    if (withBytes) assert.ok(part.bytes.length <= 64 && part.bytes.length > 64 / 2 - 7, `${part.bytes.length} bytes kept`);
    else assert.ok(kept.length >= 8 && kept.length <= 16, `${kept.length} records kept`);
    // The next window starts with nothing dropped.
    addRecord(log, 1000);
    assert.equal(log.take().dropped, 0);
  }
});

test('a replay log part shares the worker\'s buffers; they are written again only once the coordinator marked the part replayed', () => {
  const log = new ReplayLog({ width: 2, maxRecords: 64 });
  for (let o = 0; o < 10; o++) addRecord(log, o);
  const first = log.take();
  // What a worker thread's message gives the coordinator: views of the same memory.
  const received = structuredClone(first);
  assert.ok(received.ints.buffer instanceof SharedArrayBuffer);
  for (let o = 10; o < 20; o++) addRecord(log, o);
  const second = log.take();
  assert.notEqual(second.ints.buffer, first.ints.buffer, 'not replayed yet: other buffers');
  assert.deepEqual(endReplay([received], {}), {}, 'nothing dropped: no notReplayed');
  // The window being written when the mark came keeps its buffers; the next one takes the replayed part's.
  for (let o = 20; o < 30; o++) addRecord(log, o);
  assert.notEqual(log.take().ints.buffer, first.ints.buffer);
  for (let o = 30; o < 40; o++) addRecord(log, o);
  const fourth = log.take();
  assert.equal(fourth.ints.buffer, first.ints.buffer, 'replayed: its buffers are reused');
  assert.deepEqual(ordersOf(fourth, 2, false), Array.from({ length: 10 }, (_, i) => 30 + i));
  assert.deepEqual(ordersOf(second, 2, false), Array.from({ length: 10 }, (_, i) => 10 + i), 'the unreplayed part is intact');
  // Never marked: never written again, however many windows follow.
  for (let w = 0; w < 10; w++) { addRecord(log, 100 + w); log.take(); }
  assert.deepEqual(ordersOf(second, 2, false), Array.from({ length: 10 }, (_, i) => 10 + i));
  const empty = log.take();
  assert.equal(empty.times.length, 0);
  assert.equal(empty.replayed, null);
});

test('replayInOrder visits the records of every part by input order', () => {
  const a = new ReplayLog({ width: 2, maxRecords: 64 });
  const b = new ReplayLog({ width: 2, maxRecords: 64 });
  for (const o of [1, 4, 5, 9]) addRecord(a, o);
  for (const o of [0, 2, 3, 7, 8]) addRecord(b, o);
  const parts = [a.take(), b.take()];
  const seen: number[] = [];
  replayInOrder(parts, (w, r) => { seen.push(parts[w]!.times[2 * r]!); });
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
});

test('sharded port_scan and dns_tunneling past their workers\' log bound: the windows name the records not replayed; the workers\' counts stay whole', async () => {
  // memory.budgetMB 150: about 1,800 port_scan records and 900 DNS queries per worker's window, which the 40,000 mice overflow.
  const analyzers = Object.fromEntries(Object.entries(shardableConfig().analyzers).map(([id, a]) => [id, { enabled: a.enabled }]));
  const config = buildConfig({ analyzers, memory: { budgetMB: 150 } });
  const file = goldenCases().find((c) => c.name === 'generated-mice-40k')!.file();
  type Window = { metrics: Record<string, unknown> };
  const scan = (w: Window): Record<string, unknown> => w.metrics['port_scan'] as Record<string, unknown>;
  const dns = (w: Window): Record<string, unknown> => w.metrics['dns_tunneling'] as Record<string, unknown>;
  // Counted by the workers as they settle attempts and log queries, not by the replay (udpUnanswered also differs at this
  // budget without a bound on the logs: each worker's UDP wait ring, port_scan.udpPending, settles fewer early than one pipeline's).
  const counted = (w: Window): unknown => {
    const { completed, refused, abandoned, unanswered } = scan(w)['outcomes'] as Record<string, number>;
    return [scan(w)['attempts'], completed, refused, abandoned, unanswered, dns(w)['queries']];
  };
  const one = (await analyzeCapture(file, config)).report;
  assert.ok(one.windows.every((w) => !('notReplayed' in scan(w)) && !('notReplayed' in dns(w))), 'one pipeline has no such figure');
  // 2 workers in this thread, and in worker threads (their logs shared with the coordinator's thread).
  for (const inProcess of [true, false]) {
    const many = (await analyzeCaptureSharded(file, config, { workers: 2, inProcess })).report;
    assert.ok(many.windows.some((w) => Number(scan(w)['notReplayed']) > 0), 'a window names port_scan records not replayed');
    assert.ok(many.windows.some((w) => Number(dns(w)['notReplayed']) > 0), 'a window names DNS queries not replayed');
    assert.deepEqual(many.windows.map(counted), one.windows.map(counted), inProcess ? 'in this thread' : 'in worker threads');
  }
});
