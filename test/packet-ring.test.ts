/**
 * The shared-memory packet ring between the reader thread and an analysis
 * worker (agent/core/packet-ring.ts): real captures through a 1 MiB ring to a
 * real worker thread, a paused consumer, close, the wrap edges, and the
 * per-record path allocating nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { CaptureReader, FrameRecord, NEED_DATA, RECORD } from '../agent/capture/index.js';
import {
  PacketRing, RING_MARK_BYTES, RING_MAX_CAPTURED_BYTES, RING_MIN_BYTES, RING_PACKET_HEADER_BYTES, RingRecord, packetRecordBytes,
} from '../agent/core/packet-ring.js';
import { DEFAULT_CONFIG } from '../common/config.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import {
  foldMark, foldPacket, markNow, markSeq, packetFlags, packetNow, recordHash, type RingWorkerInput, type RingWorkerResult,
} from './helpers/ring-worker.js';

const MiB = 1024 * 1024;

/** Several shared captures: pcap and pcapng, both byte orders, ns timestamps, several link types and interfaces. */
const CAPTURES = [
  'ndpi_1kxun.pcap', 'ppa_http_espn_fail.pcapng', 'ppa1e_email-troubles.pcap', 'pcpp_sll.pcap', 'pcpp_pcapng-example.pcapng',
  'zeek_pcapng-multi-interface.pcapng', 'pcpp_nanosecs_big_endian.pcap', 'tcpdump_LINKTYPE_RAW_ipv6.pcap', 'zeek_linux_dlt_sll2.pcap',
  'ppa_synscan.pcapng', 'zeek_vlan-qinqinq.pcap',
].map((name) => join(SHARED_PCAPS, name));

function startWorker(input: RingWorkerInput): { worker: Worker; result: Promise<RingWorkerResult> } {
  const worker = new Worker(new URL('./helpers/ring-worker.js', import.meta.url), { workerData: input });
  const result = new Promise<RingWorkerResult>((resolve, reject) => {
    worker.once('message', (m: RingWorkerResult) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`ring worker exited (${code}) without a result`)));
  });
  return { worker, result };
}

/** Calls `onPacket` with every record of a capture, as analyze reads it; `beforeIo` before each wait for input. */
async function eachPacket(path: string, onPacket: (rec: FrameRecord) => void, beforeIo: () => void): Promise<void> {
  const reader = await CaptureReader.open(path, DEFAULT_CONFIG.input);
  try {
    for (;;) {
      const status = reader.next();
      if (status === RECORD) onPacket(reader.record);
      else if (status === NEED_DATA) { beforeIo(); await reader.fill(); }
      else break;
    }
  } finally {
    await reader.close();
  }
}

/** Captures' packets copied into one buffer, their fields in typed arrays and their hashes: replayed without allocating. */
class LoadedPackets {
  count = 0;
  data = new Uint8Array(0);
  hashes = new Int32Array(0);
  private fields: Float64Array[] = [];

  static async load(paths: readonly string[]): Promise<LoadedPackets> {
    const records: { bytes: Uint8Array; fields: number[]; hash: number }[] = [];
    for (const path of paths) {
      await eachPacket(path, (rec) => {
        records.push({
          bytes: rec.data.slice(rec.offset, rec.offset + rec.capLen),
          fields: [rec.capLen, rec.wireLen, rec.tsSec, rec.tsNsec, rec.linkType, rec.interfaceId, rec.number, rec.fileOffset],
          hash: recordHash(rec),
        });
      }, () => undefined);
    }
    const loaded = new LoadedPackets();
    loaded.count = records.length;
    loaded.data = new Uint8Array(records.reduce((n, r) => n + r.bytes.length, 0));
    loaded.hashes = Int32Array.from(records, (r) => r.hash);
    loaded.fields = Array.from({ length: 9 }, () => new Float64Array(records.length));
    let at = 0;
    records.forEach((r, i) => {
      loaded.data.set(r.bytes, at);
      loaded.fields[0]![i] = at;
      r.fields.forEach((v, k) => { loaded.fields[k + 1]![i] = v; });
      at += r.bytes.length;
    });
    return loaded;
  }

  /** Points `rec` at packet `i`. */
  fill(rec: FrameRecord, i: number): void {
    const f = this.fields;
    rec.data = this.data;
    rec.offset = f[0]![i]!;
    rec.capLen = f[1]![i]!;
    rec.wireLen = f[2]![i]!;
    rec.tsSec = f[3]![i]!;
    rec.tsNsec = f[4]![i]!;
    rec.linkType = f[5]![i]!;
    rec.interfaceId = f[6]![i]!;
    rec.number = f[7]![i]!;
    rec.fileOffset = f[8]![i]!;
  }
}

test('the per-record path allocates nothing: 1,000,000 write/read pairs', async (t) => {
  const packets = await LoadedPackets.load([CAPTURES[0]!]);
  const ring = PacketRing.create(RING_MIN_BYTES);
  // Its own consumer: reading through the producer's object would find seq, now and flags already set.
  const consumer = PacketRing.attach(ring.buffer);
  const rec = new FrameRecord();
  const into = new FrameRecord();
  const BATCH = 100;
  let seq = 0;
  let wrong = 0;
  // Writes BATCH packets (publishing at 64 records, then flush) and, if asked, a mark; reads them back, then EMPTY.
  // now is a double that is not an integer: the value V8 would box if it went through a call.
  const pairs = (n: number, withMarks: boolean): void => {
    for (let done = 0; done < n; done += BATCH) {
      const first = seq;
      for (let k = 0; k < BATCH; k++, seq++) {
        packets.fill(rec, seq % packets.count);
        ring.seq = seq;
        ring.now = seq + 0.25;
        ring.flags = seq & 3;
        if (!ring.tryWritePacket(rec)) wrong++;
      }
      if (withMarks) {
        ring.seq = seq + 7;
        ring.now = seq + 0.5;
        ring.flags = 4;
        if (!ring.tryWriteMark()) wrong++;
      }
      ring.flush();
      for (let s = first; s < seq; s++) {
        if (consumer.read(into) !== RingRecord.PACKET || consumer.seq !== s || consumer.now !== s + 0.25 || consumer.flags !== (s & 3)) wrong++;
        packets.fill(rec, s % packets.count);
        if (into.capLen !== rec.capLen || into.data[into.offset + into.capLen - 1] !== rec.data[rec.offset + rec.capLen - 1]) wrong++;
      }
      if (withMarks && (consumer.read(into) !== RingRecord.MARK || consumer.seq !== seq + 7 || consumer.now !== seq + 0.5 || consumer.flags !== 4)) wrong++;
      if (consumer.read(into) !== RingRecord.EMPTY) wrong++;
    }
  };
  // Warm up: let V8 optimize the path (unoptimized code boxes numbers).
  pairs(200_000, true);
  pairs(200_000, false);
  let collections = 0;
  const observer = new PerformanceObserver((list) => { collections += list.getEntries().length; });
  observer.observe({ entryTypes: ['gc'] });
  await sleep(20);
  collections = 0;
  const heapBefore = process.memoryUsage().heapUsed;
  pairs(1_000_000, true);
  const heapAfter = process.memoryUsage().heapUsed;
  await sleep(50); // gc entries arrive asynchronously
  observer.disconnect();
  t.diagnostic(`heap ${heapAfter - heapBefore} bytes, ${collections} collections over a million records`);
  assert.equal(wrong, 0);
  assert.ok(consumer.recordsWritten >= 1_400_000, `${consumer.recordsWritten} records written`);
  // Guards retained memory per record (a queue or table that grows with the records through the ring):
  // a million records would leave many MB.
  assert.ok(heapAfter - heapBefore < MiB, `heap grew by ${heapAfter - heapBefore} bytes over a million records`);
  // Guards short-lived garbage per record (a view object per packet, a boxed number): heapUsed alone
  // misses it, since each scavenge frees it; a loop that allocates nothing triggers no collection.
  assert.ok(collections <= 1, `${collections} garbage collections during a million records`);
});

test('blocking writes carry every packet of several captures, and marks, through a 1 MiB ring to a worker: nothing lost, intact, in order', async (t) => {
  const ring = PacketRing.create(RING_MIN_BYTES);
  const { result } = startWorker({ mode: 'verify', ring: ring.buffer, consecutive: true });
  let seq = 0;
  let marks = 0;
  let hash = 0;
  let bytes = 0;
  const write = (rec: FrameRecord, recHash: number): void => {
    ring.seq = seq;
    ring.now = packetNow(rec);
    ring.flags = packetFlags(seq);
    hash = foldPacket(hash, ring.seq, ring.now, ring.flags, recHash);
    bytes += packetRecordBytes(rec.capLen);
    assert.ok(ring.writePacketBlocking(rec, 60_000), 'the consumer drains the ring');
    if (seq % 97 === 0) {
      // A mark after the packet: its seq, now and flags (the worker checks them against the packet before).
      ring.seq = markSeq(seq);
      ring.now = markNow(ring.now);
      ring.flags = packetFlags(ring.seq);
      hash = foldMark(hash, ring.seq, ring.now, ring.flags);
      assert.ok(ring.writeMarkBlocking(60_000));
      marks++;
      bytes += RING_MARK_BYTES;
    }
    seq++;
  };
  const started = performance.now();
  // First straight from the capture reader's records (its buffers change as it reads), as analyze does ...
  for (const path of CAPTURES) await eachPacket(path, (rec) => write(rec, recordHash(rec)), () => ring.flush());
  // ... then the same packets again from memory, until about a gigabyte of records has gone round the ring.
  const loaded = await LoadedPackets.load(CAPTURES);
  const rec = new FrameRecord();
  for (let round = 0; round < 260; round++) {
    for (let i = 0; i < loaded.count; i++) {
      loaded.fill(rec, i);
      write(rec, loaded.hashes[i]!);
    }
  }
  ring.close();
  const seen = await result;
  t.diagnostic(`${seq} packets and ${marks} marks (${(bytes / 1e9).toFixed(2)} GB of records) in ${((performance.now() - started) / 1000).toFixed(1)} s; the ring wrapped ${seen.wraps} times`);
  assert.equal(seen.packets, seq);
  assert.equal(seen.marks, marks);
  assert.equal(seen.seqErrors, 0);
  assert.equal(seen.clockErrors, 0);
  assert.equal(seen.markErrors, 0);
  assert.equal(seen.hash, hash, 'every record arrives with its fields and bytes, in order');
  assert.equal(seen.recordsWritten, seq + marks);
  assert.equal(seen.fullDrops, 0);
  assert.equal(seen.occupiedAtEnd, 0);
  assert.equal(ring.occupiedBytes(), 0);
  // Each lap ends with one record placed before the one read last; a lap holds at most the ring's bytes.
  assert.ok(seen.wraps >= Math.floor(bytes / RING_MIN_BYTES), `${seen.wraps} wraps for ${bytes} bytes of records`);
  assert.ok(seen.wraps >= 1000, `${seen.wraps} wraps`);
});

test('tryWrite into a paused consumer: ring-full drops counted exactly, what was written arrives intact and in order', async () => {
  const ring = PacketRing.create(RING_MIN_BYTES);
  const gate = new SharedArrayBuffer(4);
  const { result } = startWorker({ mode: 'verify', ring: ring.buffer, gate, consecutive: false });
  let seq = 0;
  let accepted = 0;
  let drops = 0;
  let hash = 0;
  let dropsWhilePaused = -1;
  let occupiedAtFirstDrop = -1;
  let sizeAtFirstDrop = 0;
  const path = CAPTURES[0]!; // 2.5 MB: more than the ring holds
  await eachPacket(path, (rec) => {
    ring.seq = seq;
    ring.now = packetNow(rec);
    ring.flags = packetFlags(seq);
    if (ring.tryWritePacket(rec)) {
      accepted++;
      hash = foldPacket(hash, seq, ring.now, ring.flags, recordHash(rec));
    } else {
      ring.fullDrops++;
      if (drops++ === 0) {
        occupiedAtFirstDrop = ring.occupiedBytes();
        sizeAtFirstDrop = packetRecordBytes(rec.capLen);
      }
    }
    seq++;
  }, () => ring.flush());
  dropsWhilePaused = drops;
  assert.equal(ring.fullDrops, drops);
  assert.ok(drops > 0, 'a paused consumer fills the ring');
  // The record refused fits neither after the write position nor (wrapping) before the read position.
  assert.ok(occupiedAtFirstDrop >= RING_MIN_BYTES - 2 * sizeAtFirstDrop, `${occupiedAtFirstDrop} bytes occupied at the first drop`);
  assert.ok(ring.occupiedBytes() <= RING_MIN_BYTES - 8);
  assert.equal(ring.recordsWritten, accepted);

  // Resume the consumer and write the capture again: drops now happen only when the producer outruns it.
  Atomics.store(new Int32Array(gate), 0, 1);
  Atomics.notify(new Int32Array(gate), 0);
  await eachPacket(path, (rec) => {
    ring.seq = seq;
    ring.now = packetNow(rec);
    ring.flags = packetFlags(seq);
    if (ring.tryWritePacket(rec)) {
      accepted++;
      hash = foldPacket(hash, seq, ring.now, ring.flags, recordHash(rec));
    } else {
      ring.fullDrops++;
      drops++;
    }
    seq++;
  }, () => ring.flush());
  ring.close();
  const seen = await result;
  assert.equal(accepted + drops, seq);
  assert.equal(seen.fullDrops, drops, 'the consumer side reads the same count');
  assert.equal(seen.recordsWritten, accepted);
  assert.equal(seen.packets, accepted);
  assert.equal(seen.seqErrors, 0);
  assert.equal(seen.clockErrors, 0);
  assert.equal(seen.hash, hash, 'every record written arrives intact and in order');
  assert.equal(seen.occupiedAtEnd, 0);
  assert.ok(dropsWhilePaused > 0);
});

/** A packet whose record is exactly `recordBytes` long, bytes taken from `pattern` at `start`. */
function sizedPacket(rec: FrameRecord, pattern: Uint8Array, recordBytes: number, start: number): FrameRecord {
  rec.data = pattern;
  rec.offset = start;
  rec.capLen = recordBytes - RING_PACKET_HEADER_BYTES;
  rec.wireLen = rec.capLen + 4;
  rec.tsSec = 1_700_000_000 + start;
  rec.tsNsec = start * 1000;
  rec.linkType = 1;
  rec.interfaceId = start % 3;
  rec.number = start + 1;
  rec.fileOffset = start * 10;
  assert.equal(packetRecordBytes(rec.capLen), recordBytes);
  return rec;
}

function patternBytes(): Uint8Array {
  const pattern = new Uint8Array(RING_MAX_CAPTURED_BYTES + 4096);
  let x = 12345;
  for (let i = 0; i < pattern.length; i++) { x = Math.imul(x, 1103515245) + 12345; pattern[i] = x >>> 24; }
  return pattern;
}

test('close(): the consumer reads the last record, then END (again and again); occupiedBytes is back to 0', () => {
  const ring = PacketRing.create(RING_MIN_BYTES);
  const consumer = PacketRing.attach(ring.buffer);
  const pattern = patternBytes();
  const rec = new FrameRecord();
  const into = new FrameRecord();
  const hashes: number[] = [];
  for (let i = 0; i < 3; i++) {
    ring.seq = i;
    ring.now = 40 + i / 8;
    ring.flags = i;
    assert.ok(ring.tryWritePacket(sizedPacket(rec, pattern, 1000 + 8 * i, i)));
    hashes.push(recordHash(rec));
  }
  ring.seq = 7;
  ring.now = 42.25;
  ring.flags = 3;
  assert.ok(ring.tryWriteMark());
  assert.equal(consumer.read(into), RingRecord.EMPTY, 'nothing published yet (4 records < one batch)');
  assert.equal(consumer.isClosed, false);
  ring.close();
  assert.equal(consumer.isClosed, true);
  assert.ok(ring.occupiedBytes() > 0);
  for (let i = 0; i < 3; i++) {
    assert.equal(consumer.read(into), RingRecord.PACKET);
    assert.deepEqual([consumer.seq, consumer.now, consumer.flags], [i, 40 + i / 8, i]);
    assert.equal(recordHash(into), hashes[i]);
  }
  assert.equal(consumer.read(into), RingRecord.MARK);
  assert.deepEqual([consumer.seq, consumer.now, consumer.flags], [7, 42.25, 3]);
  assert.equal(consumer.read(into), RingRecord.END);
  assert.equal(consumer.read(into), RingRecord.END);
  assert.equal(ring.occupiedBytes(), 0);
  assert.equal(consumer.recordsWritten, 4);
  assert.equal(consumer.waitForData(10_000), true, 'a closed ring never waits');
  assert.throws(() => ring.tryWritePacket(rec), /after close/);
});

test('close() wakes a consumer waiting in waitForData on another thread', async () => {
  const ring = PacketRing.create(RING_MIN_BYTES);
  const { worker, result } = startWorker({ mode: 'wait-close', ring: ring.buffer });
  await new Promise((resolve) => worker.once('online', resolve));
  await sleep(300);
  ring.close();
  const seen = await result;
  assert.equal(seen.waitAnswer, true);
  assert.equal(seen.kindAfterWait, RingRecord.END);
  assert.ok(seen.waitedMs < 30_000, `woke after ${seen.waitedMs} ms of a 60 s wait`);
});

test('wrap edges: a record ending exactly at the end, a wrap marker in the last 8 bytes, a mark in the last 32 and 24', () => {
  const pattern = patternBytes();
  const rec = new FrameRecord();
  const into = new FrameRecord();
  const BIG = 200_000;

  /** A producer and its own consumer: reading through the producer's object would find seq, now and flags already set. */
  interface Ends { producer: PacketRing; consumer: PacketRing }
  /** Writes a record of `size` bytes (a mark when size is RING_MARK_BYTES), checks where it went and that it reads back whole. */
  const roundTrip = ({ producer, consumer }: Ends, size: number, expectAt: number, occupiedAfterWrite: number, key: number): void => {
    producer.seq = key;
    producer.now = key + 0.125;
    producer.flags = key & 0xff;
    if (size === RING_MARK_BYTES) assert.ok(producer.tryWriteMark());
    else assert.ok(producer.tryWritePacket(sizedPacket(rec, pattern, size, key)));
    producer.flush();
    assert.equal(consumer.occupiedBytes(), occupiedAfterWrite, `occupied after writing ${size} bytes at ${expectAt}`);
    if (size === RING_MARK_BYTES) {
      assert.equal(consumer.read(into), RingRecord.MARK);
    } else {
      assert.equal(consumer.read(into), RingRecord.PACKET);
      assert.equal(into.offset, expectAt + RING_PACKET_HEADER_BYTES, `record of ${size} bytes placed at ${expectAt}`);
      assert.equal(recordHash(into), recordHash(rec));
    }
    assert.deepEqual([consumer.seq, consumer.now, consumer.flags], [key, key + 0.125, key & 0xff]);
    assert.equal(consumer.read(into), RingRecord.EMPTY);
    assert.equal(consumer.occupiedBytes(), 0);
  };
  /** A fresh ring whose (empty) write and read positions are at `capacity - left`. */
  const ringWithRoomLeft = (left: number): Ends => {
    const producer = PacketRing.create(RING_MIN_BYTES);
    const ends = { producer, consumer: PacketRing.attach(producer.buffer) };
    let at = 0;
    for (let key = 1; at < RING_MIN_BYTES - left; key++) {
      const size = Math.min(BIG, RING_MIN_BYTES - left - at);
      roundTrip(ends, size, at, size, key);
      at += size;
    }
    return ends;
  };

  const C = RING_MIN_BYTES;
  // Exactly fits before the end: no marker, the write position becomes 0, the next record is at 0.
  let ends = ringWithRoomLeft(48_576);
  roundTrip(ends, 48_576, C - 48_576, 48_576, 100);
  roundTrip(ends, 1000, 0, 1000, 101);
  // 8 bytes left: a wrap marker fills them and counts as occupied until the consumer passes it.
  ends = ringWithRoomLeft(8);
  roundTrip(ends, 1000, 0, 8 + 1000, 102);
  roundTrip(ends, 2000, 1000, 2000, 103);
  // Marks (32 bytes): 32 bytes left take one exactly; 24 left wrap.
  ends = ringWithRoomLeft(32);
  roundTrip(ends, RING_MARK_BYTES, C - 32, 32, 104);
  roundTrip(ends, 1000, 0, 1000, 105);
  ends = ringWithRoomLeft(24);
  roundTrip(ends, RING_MARK_BYTES, 0, 24 + 32, 106);
  roundTrip(ends, 1000, 32, 1000, 107);

  // Never completely full: with the reader at 0, a record ending exactly at the end would make the
  // write position equal the read position (an empty ring), so it is refused; 8 bytes less fits.
  const ring = PacketRing.create(C);
  const written: number[] = [];
  for (let at = 0, key = 0; at < C - 48_576; at += BIG, key++) {
    ring.seq = key;
    assert.ok(ring.tryWritePacket(sizedPacket(rec, pattern, BIG, key)));
    written.push(recordHash(rec));
  }
  ring.seq = 50;
  assert.equal(ring.tryWritePacket(sizedPacket(rec, pattern, 48_576, 50)), false);
  ring.seq = 51;
  assert.ok(ring.tryWritePacket(sizedPacket(rec, pattern, 48_568, 51)));
  written.push(recordHash(rec));
  assert.equal(ring.tryWriteMark(), false, '8 bytes are left: not even a mark fits');
  assert.equal(ring.occupiedBytes(), C - 8);
  for (const h of written) {
    assert.equal(ring.read(into), RingRecord.PACKET);
    assert.equal(recordHash(into), h);
  }
  assert.equal(ring.read(into), RingRecord.EMPTY);
  assert.equal(ring.occupiedBytes(), 0);
});

test('sizes: a ring under 1 MiB is refused; a packet over 262,144 captured bytes is refused; attach checks the layout', () => {
  assert.throws(() => PacketRing.create(RING_MIN_BYTES - 8), RangeError);
  assert.throws(() => PacketRing.create(1.5), RangeError);
  assert.equal(PacketRing.create(RING_MIN_BYTES + 5).capacity, RING_MIN_BYTES, 'rounded down to 8 bytes');
  const ring = PacketRing.create(RING_MIN_BYTES);
  const rec = new FrameRecord();
  rec.data = new Uint8Array(RING_MAX_CAPTURED_BYTES + 1);
  rec.capLen = RING_MAX_CAPTURED_BYTES + 1;
  assert.throws(() => ring.tryWritePacket(rec), RangeError);
  rec.capLen = RING_MAX_CAPTURED_BYTES;
  assert.ok(ring.writePacketBlocking(rec, 0));
  assert.throws(() => PacketRing.attach(new SharedArrayBuffer(RING_MIN_BYTES)), /not a packet ring/);
});

test('throughput between two threads (diagnostic, not asserted)', async (t) => {
  for (const name of ['ndpi_1kxun.pcap', 'ppa_synscan.pcapng']) {
    const packets = await LoadedPackets.load([join(SHARED_PCAPS, name)]);
    const ring = PacketRing.create(16 * MiB);
    const { result } = startWorker({ mode: 'count', ring: ring.buffer });
    const rec = new FrameRecord();
    const N = 1_000_000;
    let bytes = 0;
    const started = performance.now();
    for (let seq = 0; seq < N; seq++) {
      packets.fill(rec, seq % packets.count);
      bytes += rec.capLen;
      ring.seq = seq;
      ring.writePacketBlocking(rec);
    }
    ring.close();
    const seen = await result;
    const seconds = (performance.now() - started) / 1000;
    assert.equal(seen.packets, N);
    t.diagnostic(`packet ring (16 MiB; producer on the main thread, consumer in a worker that only reads): ${name} (${Math.round(bytes / N)} bytes a packet) ${(N / seconds / 1e6).toFixed(2)} M records/s, ${(bytes / seconds / 1e6).toFixed(0)} MB/s`);
  }
});
