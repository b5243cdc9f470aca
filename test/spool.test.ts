/**
 * The publisher's spool on its own (no NATS): the memory tier's limits at
 * their exact edges, the disk tier's limit and overflow counts, hand-out and
 * acknowledgement order, persist and reload, segment rotation, long records,
 * the cursor file, and every kind of damaged file it may find at start.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { Spool, type SpoolEntry } from '../agent/publish/spool.js';
import { decodeRecord, encodeRecord } from '../agent/publish/spool.js';
import type { OutboundMessage } from '../agent/publish/message.js';

const work = mkdtempSync(join(tmpdir(), 'pa-spool-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;
const newDataDir = (): string => mkdtempSync(join(work, `d${dirs++}-`));

interface Captured { logger: Logger; records: () => Array<Record<string, unknown>> }
function captureLog(): Captured {
  const chunks: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (s: string) => { chunks.push(s); } });
  return { logger, records: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}
const warnings = (log: Captured): Array<Record<string, unknown>> => log.records().filter((r) => r['level'] === 40);

/** A message whose payload is exactly `bytes` long. */
function msg(id: string, bytes = 10): OutboundMessage {
  return { subject: 'pcap.v1.s.window', msgId: id, data: Buffer.alloc(bytes, 0x61) };
}
const recordLength = (m: OutboundMessage): number => encodeRecord(m).length;

/** Every message left, taken and acked in order: their ids. */
function drain(s: Spool): string[] {
  const out: string[] = [];
  for (let e = s.take(1000); e; e = s.take(1000)) { out.push(e.message.msgId); s.ack(e); }
  return out;
}

const spoolDir = (dataDir: string): string => join(dataDir, 'spool');
const segments = (dataDir: string): string[] => readdirSync(spoolDir(dataDir)).filter((f) => f.startsWith('seg-')).sort();
const cursor = (dataDir: string): Record<string, number> | undefined => {
  try { return (JSON.parse(readFileSync(join(spoolDir(dataDir), 'cursor.json'), 'utf8')) as { consumed: Record<string, number> }).consumed; } catch { return undefined; }
};

function open(dataDir: string, limits: Partial<{ memoryMessages: number; memoryBytes: number; fileBytes: number }> = {}, log = captureLog()): Spool {
  return new Spool({ dataDir, memoryMessages: 100, memoryBytes: 1 << 20, fileBytes: 1 << 20, logger: log.logger, ...limits });
}

test('memory tier: exactly at its byte limit stays in memory, one byte over goes to disk', () => {
  const s = open(newDataDir(), { memoryBytes: 30 });
  try {
    assert.equal(s.push(msg('a', 10)), true);
    assert.equal(s.push(msg('b', 20)), true);
    assert.equal(s.memoryBytes, 30, 'exactly at the limit');
    assert.equal(s.memoryMessages, 2);
    assert.equal(s.diskMessages, 0);
    assert.equal(s.push(msg('c', 1)), true);
    assert.equal(s.memoryMessages, 2, 'one byte over the limit: to disk');
    assert.equal(s.diskMessages, 1);
    assert.equal(s.messages, 3);
    assert.equal(s.bytes, 31);
    assert.equal(s.accepted, 3);
    assert.deepEqual(drain(s), ['a', 'b', 'c']);
    assert.equal(s.acknowledged, 3);
    assert.equal(s.messages, 0);
    assert.equal(s.bytes, 0);
  } finally { s.close(); }

  const t = open(newDataDir(), { memoryBytes: 30 });
  try {
    assert.equal(t.push(msg('a', 31)), true);
    assert.equal(t.memoryMessages, 0, 'a message larger than the whole tier goes to disk');
    assert.equal(t.diskMessages, 1);
  } finally { t.close(); }
});

test('memory tier: exactly its message limit, then disk; while disk holds any, new messages go to disk', () => {
  const dataDir = newDataDir();
  const s = open(dataDir, { memoryMessages: 2 });
  try {
    s.push(msg('a')); s.push(msg('b'));
    assert.equal(s.memoryMessages, 2);
    s.push(msg('c'));
    assert.equal(s.memoryMessages, 2);
    assert.equal(s.diskMessages, 1);
    assert.equal(s.memoryBytes, 20);
    assert.equal(s.take(10)!.message.msgId, 'a');
    assert.equal(s.memoryMessages, 1, 'a hand-out leaves the memory tier');
    assert.equal(s.memoryBytes, 10);
    s.push(msg('d'));
    assert.equal(s.memoryMessages, 1, 'memory has room, but disk holds older messages: d goes to disk');
    assert.equal(s.diskMessages, 2);
    assert.equal(s.messages, 4, 'a (handed out, unacked), b, c, d');
    assert.equal(s.bytes, 40);
    s.rewind();
    assert.deepEqual(drain(s), ['a', 'b', 'c', 'd']);
    assert.equal(s.diskBytes, 0, 'drained: the segments are deleted');
    assert.deepEqual(segments(dataDir), []);
    s.push(msg('e'));
    assert.equal(s.memoryMessages, 1, 'with the disk tier empty, memory takes messages again');
  } finally { s.close(); }
});

test('disk tier: exactly at fileBytes is accepted; past it a message overflows, counted in messages and bytes', () => {
  const rec = recordLength(msg('x-0', 10));
  const s = open(newDataDir(), { memoryMessages: 0, fileBytes: rec * 3 });
  try {
    for (let i = 0; i < 3; i++) assert.equal(s.push(msg(`x-${i}`, 10)), true);
    assert.equal(s.diskBytes, rec * 3, 'exactly at the limit');
    assert.equal(s.overflowMessages, 0);
    assert.equal(s.push(msg('x-3', 10)), false);
    assert.equal(s.push(msg('x-4', 7)), false);
    assert.equal(s.overflowMessages, 2);
    assert.equal(s.overflowBytes, 17, 'payload bytes of the dropped messages');
    assert.equal(s.accepted, 3);
    assert.equal(s.messages, 3);
    assert.equal(s.bytes, 30);
    assert.deepEqual(drain(s), ['x-0', 'x-1', 'x-2']);
  } finally { s.close(); }
});

test('hand-out: maxOutstanding bounds what is handed out; acks release only the acknowledged prefix; a second ack is ignored', () => {
  const dataDir = newDataDir();
  const s = open(dataDir, { memoryMessages: 2 });
  try {
    for (const id of ['a', 'b', 'c', 'd']) s.push(msg(id));
    const a = s.take(2)!;
    const b = s.take(2)!;
    assert.equal(s.take(2), undefined, 'two outstanding: no third');
    s.ack(b);
    assert.equal(s.take(2), undefined, 'b acked but a is not: both still count');
    assert.equal(s.acknowledged, 0);
    assert.equal(s.messages, 3, 'b is no longer counted as unacknowledged');
    assert.equal(s.bytes, 30);
    s.ack(b);
    assert.equal(s.messages, 3, 'a second ack changes nothing');
    s.ack(a);
    assert.equal(s.acknowledged, 2);
    const c = s.take(2)!;
    const d = s.take(2)!;
    assert.deepEqual([c.message.msgId, d.message.msgId], ['c', 'd']);
    s.rewind();
    assert.equal(s.take(2), c, 'after a rewind the unacknowledged come again, same entries');
    s.ack(c);
    assert.equal(s.take(2), d);
    assert.equal(s.take(2), undefined);
    s.ack(d);
    assert.equal(s.acknowledged, 4);
    assert.equal(s.messages, 0);
    assert.equal(s.take(2), undefined);
  } finally { s.close(); }
});

test('persist: handed-out and memory messages go to disk ahead of older disk records; late acks are ignored; reload keeps the order', () => {
  const dataDir = newDataDir();
  const log = captureLog();
  let s = open(dataDir, { memoryMessages: 2 }, log);
  let late: SpoolEntry;
  try {
    for (const id of ['a', 'b', 'c', 'd']) s.push(msg(id)); // a, b in memory; c, d on disk
    late = s.take(10)!; // a handed out
    const b = s.take(10)!;
    s.ack(b); // acked behind unacked a: kept with it
    const c = s.take(10)!; // from disk
    assert.equal(c.message.msgId, 'c');
    s.persist();
    assert.equal(s.memoryMessages, 0);
    assert.equal(s.messages, 4, 'a, b (acked but not released), c, d');
    s.ack(late);
    s.ack(c);
    assert.equal(s.acknowledged, 0, 'acks of forgotten hand-outs are ignored');
    assert.ok(log.records().some((r) => r['msg'] === 'spool: persisted in-memory messages to disk' && r['messages'] === 2));
  } finally { s.close(); }
  s = open(dataDir, { memoryMessages: 2 }, log);
  try {
    assert.equal(s.accepted, 4);
    assert.equal(s.diskMessages, 4);
    assert.equal(s.messages, 4);
    assert.deepEqual(drain(s), ['a', 'b', 'c', 'd']);
  } finally { s.close(); }
  assert.deepEqual(segments(dataDir), []);
  assert.equal(cursor(dataDir), undefined, 'no cursor once everything is released');
});

test('persist with only memory: a new segment; persist and close are idempotent; push after close throws', () => {
  const dataDir = newDataDir();
  const s = open(dataDir);
  s.push(msg('a')); s.push(msg('b'));
  s.persist();
  assert.equal(segments(dataDir).length, 1);
  assert.equal(s.diskMessages, 2);
  assert.equal(s.memoryMessages, 0);
  s.persist();
  assert.equal(segments(dataDir).length, 1, 'nothing in memory: no new segment');
  s.close();
  s.close();
  s.persist();
  assert.throws(() => s.push(msg('c')), /spool is closed/);
  const again = open(dataDir);
  try { assert.deepEqual(drain(again), ['a', 'b']); } finally { again.close(); }
});

test('cursor: acknowledged disk records are not sent again after a restart; a cursor inside a record re-sends it whole', () => {
  const dataDir = newDataDir();
  let s = open(dataDir, { memoryMessages: 0 });
  for (const id of ['a', 'b', 'c']) s.push(msg(id));
  const a = s.take(10)!;
  s.ack(a);
  s.close(); // writes the cursor
  const seg = segments(dataDir)[0]!;
  const id = String(Number(/seg-(\d+)/.exec(seg)![1]));
  const aLen = recordLength(msg('a'));
  assert.deepEqual(cursor(dataDir), { [id]: aLen });
  s = open(dataDir);
  try {
    assert.equal(s.accepted, 2);
    assert.deepEqual(drain(s), ['b', 'c']);
  } finally { s.close(); }

  // A cursor pointing into the middle of a record: that record is sent again, whole.
  const d2 = newDataDir();
  s = open(d2, { memoryMessages: 0 });
  for (const x of ['a', 'b', 'c']) s.push(msg(x));
  s.close();
  const seg2 = segments(d2)[0]!;
  writeFileSync(join(spoolDir(d2), 'cursor.json'), JSON.stringify({ version: 1, consumed: { [String(Number(/seg-(\d+)/.exec(seg2)![1]))]: aLen + 3 } }));
  s = open(d2);
  try { assert.deepEqual(drain(s), ['b', 'c']); } finally { s.close(); }
});

test('segments rotate at an eighth of fileBytes (at least 1 KiB); drained segments are deleted as they empty', () => {
  const dataDir = newDataDir();
  const rec = recordLength(msg('r-00', 100));
  const s = open(dataDir, { memoryMessages: 0, fileBytes: 16 * 1024 }); // segments of 2 KiB
  try {
    const perSegment = Math.floor(2048 / rec);
    const n = perSegment * 3;
    for (let i = 0; i < n; i++) s.push(msg(`r-${String(i).padStart(2, '0')}`, 100));
    assert.equal(segments(dataDir).length, 3);
    for (let i = 0; i < perSegment; i++) s.ack(s.take(1000)!);
    assert.equal(segments(dataDir).length, 2, 'the first segment is deleted once all its records are released');
    assert.equal(s.diskBytes, rec * perSegment * 2);
    assert.equal(s.diskMessages, perSegment * 2);
    const left = drain(s);
    assert.equal(left.length, perSegment * 2);
    assert.equal(left[0], `r-${String(perSegment).padStart(2, '0')}`);
  } finally { s.close(); }

  const small = newDataDir();
  const t = open(small, { memoryMessages: 0, fileBytes: 4096 }); // an eighth is 512: segments of 1 KiB
  try {
    for (let i = 0; i < 6; i++) t.push(msg(`s-${i}`, 200));
    const rec2 = recordLength(msg('s-0', 200));
    assert.equal(segments(small).length, Math.ceil(6 / Math.floor(1024 / rec2)));
  } finally { t.close(); }
});

test('long records (over the 256 KiB read chunk) and binary payloads survive disk and a reload', () => {
  const dataDir = newDataDir();
  const big: OutboundMessage = { subject: 'pcap.v1.s.window', msgId: 'big', data: Buffer.alloc(700_000, 0x62) };
  const bin: OutboundMessage = { subject: 'pcap.v1.s.window', msgId: 'bin', data: Uint8Array.from([0xff, 0xfe, 0x00, 0x80]) };
  let s = open(dataDir, { memoryMessages: 0, fileBytes: 8 << 20 });
  s.push(msg('a'));
  s.push(big);
  s.push(bin);
  s.push(msg('z'));
  const first = s.take(10)!;
  const second = s.take(10)!;
  assert.equal(second.message.data.byteLength, 700_000, 'read from disk in a growing buffer');
  s.ack(first);
  s.close();
  s = open(dataDir, { fileBytes: 8 << 20 });
  try {
    const got: OutboundMessage[] = [];
    for (let e = s.take(10); e; e = s.take(10)) { got.push(e.message); s.ack(e); }
    assert.deepEqual(got.map((m) => m.msgId), ['big', 'bin', 'z']);
    assert.equal(Buffer.from(got[0]!.data).equals(big.data), true);
    assert.deepEqual([...got[1]!.data], [0xff, 0xfe, 0x00, 0x80]);
  } finally { s.close(); }
});

test('damaged files at start: corrupt and torn records, stray and temporary files, bad cursors are logged and skipped', () => {
  const dataDir = newDataDir();
  let s = open(dataDir, { memoryMessages: 0 });
  for (const id of ['a', 'b']) s.push(msg(id));
  s.close();
  const dir = spoolDir(dataDir);
  const seg = join(dir, segments(dataDir)[0]!);
  const good = readFileSync(seg, 'utf8');
  // Twelve corrupt lines between the good ones, then a torn last record.
  const junk = ['not json', '[1]', '{"s":"","i":"x","d":"y"}', '{"s":"s","i":"","d":"y"}', '{"s":"s","i":"x"}', '{"s":"s","i":"x","d":"y","b":"eQ=="}',
    '{"s":"s","i":"x","b":"e"}', '{"s":"s","i":"x","b":"e*=="}', 'null', '7', '"str"', '{}'];
  writeFileSync(seg, `${good.split('\n')[0]}\n${junk.join('\n')}\n${good.split('\n')[1]}\n{"s":"s","i":"torn","d":"ab`);
  writeFileSync(join(dir, 'seg-000000000005.jsonl.tmp'), 'half a persist');
  writeFileSync(join(dir, 'notes.txt'), 'stray');
  const log = captureLog();
  s = open(dataDir, {}, log);
  try {
    assert.deepEqual(drain(s), ['a', 'b']);
    const w = warnings(log);
    const corrupt = w.filter((r) => r['msg'] === 'spool: skipping a corrupt record');
    assert.equal(corrupt.length, 10, 'at most ten warnings per file');
    assert.ok(corrupt.every((r) => r['file'] === seg && typeof r['offset'] === 'number'));
    assert.equal(corrupt[0]!['offset'], good.indexOf('\n') + 1, 'the offset of the first bad line');
    assert.equal(corrupt[0]!['reason'], 'not JSON');
    assert.equal(corrupt[1]!['reason'], 'not a JSON object');
    assert.equal(corrupt[2]!['reason'], 'missing subject "s"');
    assert.equal(corrupt[3]!['reason'], 'missing message id "i"');
    assert.equal(corrupt[4]!['reason'], 'missing or bad data ("d" string or "b" base64)');
    const more = w.find((r) => r['msg'] === 'spool: more corrupt records skipped in this file');
    assert.equal(more?.['corrupt'], 13, '12 corrupt lines and the torn one');
    assert.ok(w.some((r) => r['msg'] === 'spool: ignoring unexpected file' && String(r['file']).endsWith('notes.txt')));
    assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), 'temporary files of an interrupted write are removed');
  } finally { s.close(); }

  // A torn record alone, then a cursor past the end, then a corrupt cursor file.
  const d2 = newDataDir();
  s = open(d2, { memoryMessages: 0 });
  s.push(msg('a'));
  s.close();
  const seg2 = join(spoolDir(d2), segments(d2)[0]!);
  appendFileSync(seg2, '{"s":"s","i":"t');
  const id2 = String(Number(/seg-(\d+)/.exec(seg2)![1]));
  writeFileSync(join(spoolDir(d2), 'cursor.json'), JSON.stringify({ version: 1, consumed: { [id2]: 10_000, 'x1': 3, '77': -1 } }));
  const log2 = captureLog();
  s = open(d2, {}, log2);
  try {
    const w = warnings(log2);
    assert.ok(w.some((r) => r['msg'] === 'spool: cursor past the end of its segment; reading it from the start' && r['offset'] === 10_000));
    assert.equal(w.filter((r) => r['msg'] === 'spool: ignoring a bad cursor entry').length, 2);
    assert.ok(w.some((r) => r['reason'] === 'no end of line (torn write)'));
    assert.deepEqual(drain(s), ['a']);
  } finally { s.close(); }

  for (const bad of ['{', '{"consumed":3}', 'null']) {
    const d3 = newDataDir();
    s = open(d3, { memoryMessages: 0 });
    s.push(msg('a')); s.push(msg('b'));
    s.ack(s.take(1)!);
    s.close();
    writeFileSync(join(spoolDir(d3), 'cursor.json'), bad);
    const log3 = captureLog();
    s = open(d3, {}, log3);
    try {
      assert.ok(warnings(log3).some((r) => r['msg'] === 'spool: cursor file is corrupt; re-sending from the start of each segment'), bad);
      assert.deepEqual(drain(s), ['a', 'b'], `${bad}: everything is sent again`);
    } finally { s.close(); }
  }
});

test('a segment with nothing left to send is deleted at start; an empty spool directory stays empty', () => {
  const dataDir = newDataDir();
  mkdirSync(spoolDir(dataDir), { recursive: true });
  writeFileSync(join(spoolDir(dataDir), 'seg-000000000009.jsonl'), 'junk only\n');
  const s = open(dataDir);
  try {
    assert.equal(s.messages, 0);
    assert.deepEqual(segments(dataDir), []);
    assert.equal(cursor(dataDir), undefined);
  } finally { s.close(); }
});

test('records: UTF-8 payloads as text, others as base64, both back byte for byte', () => {
  const text: OutboundMessage = { subject: 'a.b', msgId: 'i1', data: Buffer.from('{"x":"é"}') };
  const line = encodeRecord(text).toString('utf8');
  assert.equal(line, '{"s":"a.b","i":"i1","d":"{\\"x\\":\\"é\\"}"}\n');
  const binary: OutboundMessage = { subject: 'a.b', msgId: 'i2', data: Uint8Array.from([0xc3, 0x28]) };
  assert.equal(encodeRecord(binary).toString('utf8'), '{"s":"a.b","i":"i2","b":"wyg="}\n');
  const sliced = Buffer.from([9, 9, 0xff, 0xfe, 9]).subarray(2, 4);
  assert.equal(encodeRecord({ subject: 'a', msgId: 'i', data: sliced }).toString('utf8'), '{"s":"a","i":"i","b":"//4="}\n', 'only the view\'s bytes');
  const back = decodeRecord(line.trimEnd());
  assert.ok(typeof back !== 'string');
  assert.equal(Buffer.from(back.data).toString('utf8'), '{"x":"é"}');
  const b = decodeRecord('{"s":"a.b","i":"i2","b":"wyg="}');
  assert.ok(typeof b !== 'string');
  assert.deepEqual([...b.data], [0xc3, 0x28]);
  assert.equal(decodeRecord('{"s":"a","i":"i","b":""}') instanceof Object, true, 'an empty payload is valid');
  assert.equal(decodeRecord('{"s":"a","i":"i","b":"abc"}'), 'missing or bad data ("d" string or "b" base64)', 'length not a multiple of 4');
  assert.equal(decodeRecord('{"s":"a","i":"i","b":"ab=c"}'), 'missing or bad data ("d" string or "b" base64)');
  assert.equal(decodeRecord('{"s":"a","i":"i","d":3}'), 'missing or bad data ("d" string or "b" base64)');
  assert.equal(decodeRecord('{"s":1,"i":"i","d":"x"}'), 'missing subject "s"');
  assert.equal(decodeRecord('{"s":"a","i":2,"d":"x"}'), 'missing message id "i"');
  assert.equal(decodeRecord('[]'), 'not a JSON object');
  assert.equal(decodeRecord(''), 'not JSON');
});

test('a long memory tier: thousands of messages leave in order through the queue\'s compaction', () => {
  const s = open(newDataDir(), { memoryMessages: 5000 });
  try {
    for (let i = 0; i < 3000; i++) s.push(msg(`m-${i}`, 1));
    assert.equal(s.memoryMessages, 3000);
    const got: string[] = [];
    for (let i = 0; i < 2000; i++) { const e = s.take(1)!; got.push(e.message.msgId); s.ack(e); }
    for (let i = 3000; i < 3500; i++) s.push(msg(`m-${i}`, 1));
    got.push(...drain(s));
    assert.equal(got.length, 3500);
    assert.deepEqual(got, Array.from({ length: 3500 }, (_, i) => `m-${i}`));
    assert.equal(s.memoryBytes, 0);
  } finally { s.close(); }
});

test('counts and bytes stay exact through persist and reload: messages, payload bytes, segment file bytes', () => {
  const dataDir = newDataDir();
  let s = open(dataDir, { memoryMessages: 2 });
  for (const [id, n] of [['a', 3], ['b', 5], ['c', 7], ['d', 11]] as const) s.push(msg(id, n)); // a, b memory; c, d disk
  s.take(10); // a
  s.take(10); // b
  s.take(10); // c, from disk
  s.persist();
  assert.equal(s.messages, 4);
  assert.equal(s.bytes, 26);
  assert.equal(s.diskMessages, 4);
  const fileBytes = (): number => segments(dataDir).reduce((n, f) => n + readFileSync(join(spoolDir(dataDir), f)).length, 0);
  assert.equal(s.diskBytes, fileBytes(), 'diskBytes is the size of the segment files');
  s.close();
  s = open(dataDir);
  try {
    assert.equal(s.messages, 4);
    assert.equal(s.bytes, 26);
    assert.equal(s.diskBytes, fileBytes());
    const e = s.take(10)!;
    assert.equal(s.bytes, 26, 'handed out but unacknowledged still counts');
    s.ack(e);
    assert.equal(s.bytes, 23);
    assert.equal(s.messages, 3);
    assert.deepEqual(drain(s), ['b', 'c', 'd']);
    assert.equal(s.bytes, 0);
    assert.equal(s.diskBytes, 0);
  } finally { s.close(); }
});

/** Every message left, all taken before any is acked (the reader runs ahead of the acks): their ids. */
function takeAllThenAck(s: Spool): string[] {
  const taken: SpoolEntry[] = [];
  for (let e = s.take(10_000); e; e = s.take(10_000)) taken.push(e);
  for (const e of taken) s.ack(e);
  return taken.map((e) => e.message.msgId);
}
const segmentId = (name: string): string => String(Number(/seg-(\d+)/.exec(name)![1]));
const openFds = (): number => readdirSync('/proc/self/fd').length;

test('the cursor is written at most once a second: an ack soon after the last write waits for a timer, a later one is written at once', async () => {
  const dataDir = newDataDir();
  const s = open(dataDir, { memoryMessages: 0 });
  const len = recordLength(msg('a'));
  let id = '';
  try {
    for (const m of ['a', 'b', 'c', 'd']) s.push(msg(m));
    id = segmentId(segments(dataDir)[0]!);
    s.ack(s.take(10)!); // the cursor was written when the spool opened, just now
    assert.equal(cursor(dataDir), undefined, 'not written yet');
    await sleep(1400);
    assert.deepEqual(cursor(dataDir), { [id]: len }, 'written by the timer');
    await sleep(1100);
    s.ack(s.take(10)!);
    assert.deepEqual(cursor(dataDir), { [id]: 2 * len }, 'over a second after the last write: written at once');
    s.ack(s.take(10)!);
    assert.deepEqual(cursor(dataDir), { [id]: 2 * len }, 'the next one waits again');
  } finally { s.close(); }
  assert.deepEqual(cursor(dataDir), { [id]: 3 * len }, 'close writes what was waiting');
});

test('no file is left open: after close (segment appended to, reader open), and once the disk tier drains', () => {
  const before = openFds();
  const dataDir = newDataDir();
  let s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 }); // segments of 1 KiB
  for (let i = 0; i < 10; i++) s.push(msg(`f-${i}`, 300));
  assert.ok(segments(dataDir).length >= 3);
  s.take(100);
  s.close();
  assert.equal(openFds(), before, 'close closes the segment appended to and the reader');
  s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 });
  try {
    assert.equal(takeAllThenAck(s).length, 10);
    assert.equal(openFds(), before, 'drained: the reader is closed');
  } finally { s.close(); }
  const other = open(newDataDir(), { memoryMessages: 0, fileBytes: 8192 });
  try {
    for (let i = 0; i < 6; i++) other.push(msg(`g-${i}`, 300));
    assert.equal(drain(other).length, 6);
    assert.equal(openFds(), before, 'drained while appending: the segments and the reader are closed');
  } finally { other.close(); }
  assert.equal(openFds(), before);
});

test('persist after close writes nothing; late acks of forgotten hand-outs change no count', () => {
  const dataDir = newDataDir();
  const s = open(dataDir);
  s.push(msg('a')); s.push(msg('b'));
  const a = s.take(10)!;
  s.persist();
  s.ack(a);
  assert.equal(s.messages, 2, 'the late ack is ignored');
  assert.equal(s.bytes, 20);
  assert.equal(s.acknowledged, 0);
  s.close();
  const closed = newDataDir();
  const t = open(closed);
  t.push(msg('x'));
  t.close();
  t.persist();
  assert.deepEqual(segments(closed), [], 'closed: persist does nothing');
});

test('persist with disk records handed out: everything is sent again, in order, by the same process', () => {
  const dataDir = newDataDir();
  const log = captureLog();
  const s = open(dataDir, { memoryMessages: 2, fileBytes: 8192 }, log); // 1 KiB segments: one 600-byte record each
  try {
    for (const id of ['a', 'b', 'c', 'd', 'e']) s.push(msg(id, 600));
    assert.equal(segments(dataDir).length, 3);
    s.take(10); s.take(10); s.take(10); // a, b from memory; c from disk
    s.persist();
    assert.equal(s.messages, 5);
    assert.equal(s.bytes, 3000);
    assert.equal(s.diskMessages, 5);
    assert.deepEqual(takeAllThenAck(s), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(s.messages, 0);
    assert.equal(s.bytes, 0);
    assert.equal(s.diskMessages, 0);
    assert.equal(s.diskBytes, 0);
    assert.deepEqual(segments(dataDir), []);
    assert.deepEqual(warnings(log), [], 'no record lost, no other warning');
  } finally { s.close(); }
});

test('records lost under a running spool (a segment overwritten, one cut short) are logged, and the counts stay exact', () => {
  const dataDir = newDataDir();
  const log = captureLog();
  const s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 }, log); // 1 KiB segments: two 400-byte records each
  const len = recordLength(msg('a', 400));
  try {
    for (const id of ['a', 'b', 'c', 'd', 'e']) s.push(msg(id, 400));
    const [A, B] = segments(dataDir).map((f) => join(spoolDir(dataDir), f));
    assert.equal(segments(dataDir).length, 3);
    const fd = openSync(A!, 'r+');
    writeSync(fd, Buffer.from(`${'x'.repeat(len - 1)}\n`), 0, len, len); // b: no longer a record
    closeSync(fd);
    truncateSync(B!, len); // d: gone
    assert.equal(s.messages, 5);
    const taken: SpoolEntry[] = [];
    for (let e = s.take(100); e; e = s.take(100)) taken.push(e);
    assert.deepEqual(taken.map((e) => e.message.msgId), ['a', 'c', 'e']);
    const lost = warnings(log).filter((r) => r['msg'] === 'spool: records lost');
    assert.deepEqual(lost.map((r) => [r['file'], r['records'], r['reason']]), [[A, 1, 'records missing at the end of the segment'], [B, 1, 'unreadable end of segment']]);
    assert.equal(s.messages, 3);
    assert.equal(s.bytes, 1200);
    assert.equal(s.diskMessages, 3);
    for (const e of taken) s.ack(e);
    assert.equal(s.messages, 0);
    assert.equal(s.bytes, 0);
    assert.equal(s.diskMessages, 0);
    assert.equal(s.diskBytes, 0);
    assert.deepEqual(segments(dataDir), []);
  } finally { s.close(); }

  // A record overwritten in the segment still being appended to is warned about as it is read.
  const d2 = newDataDir();
  const log2 = captureLog();
  const t = open(d2, { memoryMessages: 0 }, log2);
  try {
    t.push(msg('a')); t.push(msg('b'));
    const seg = join(spoolDir(d2), segments(d2)[0]!);
    const fd = openSync(seg, 'r+');
    writeSync(fd, Buffer.from('!'), 0, 1, 0);
    closeSync(fd);
    assert.equal(t.take(10)?.message.msgId, 'b');
    const w = warnings(log2).find((r) => r['msg'] === 'spool: skipping a corrupt record');
    assert.deepEqual([w?.['file'], w?.['offset'], w?.['reason']], [seg, 0, 'not JSON']);
  } finally { t.close(); }
});

test('segment ids: after a reload and after a persist new segments sort after the old ones; a segment fills to exactly its size', () => {
  const dataDir = newDataDir();
  const base = recordLength(msg('e-0', 0));
  const half = (id: string): OutboundMessage => msg(id, 512 - base); // a 512-byte record
  let s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 }); // 1 KiB segments
  s.push(half('e-0')); s.push(half('e-1'));
  assert.equal(segments(dataDir).length, 1, 'two 512-byte records fill a 1 KiB segment exactly');
  s.push(half('e-2'));
  assert.equal(segments(dataDir).length, 2);
  s.close();
  s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 });
  s.push(msg('e-3', 900)); // the loaded last segment is not appended to
  s.push(msg('e-4', 10));
  assert.equal(segments(dataDir).length, 3);
  s.close();
  s = open(dataDir, { memoryMessages: 0, fileBytes: 8192 });
  try { assert.deepEqual(drain(s), ['e-0', 'e-1', 'e-2', 'e-3', 'e-4']); } finally { s.close(); }

  const p = newDataDir();
  s = open(p);
  s.push(msg('p-0')); s.push(msg('p-1'));
  s.persist();
  s.push(msg('p-2'));
  assert.equal(s.diskMessages, 3, 'with the disk tier in use, p-2 goes to disk');
  s.close();
  s = open(p);
  try { assert.deepEqual(drain(s), ['p-0', 'p-1', 'p-2']); } finally { s.close(); }

  // Rotated segments, reloaded: still in order.
  const r = newDataDir();
  s = open(r, { memoryMessages: 0, fileBytes: 8192 });
  for (let i = 0; i < 12; i++) s.push(msg(`r-${String(i).padStart(2, '0')}`, 300));
  s.close();
  s = open(r, { memoryMessages: 0, fileBytes: 8192 });
  try { assert.deepEqual(drain(s), Array.from({ length: 12 }, (_, i) => `r-${String(i).padStart(2, '0')}`)); } finally { s.close(); }
});

test('at start: only seg-<digits>.jsonl files are segments, read in numeric id order; each cursor entry is checked on its own', () => {
  const dataDir = newDataDir();
  const dir = spoolDir(dataDir);
  mkdirSync(dir, { recursive: true });
  const line = (id: string): string => encodeRecord(msg(id)).toString('utf8');
  writeFileSync(join(dir, 'seg-9.jsonl'), line('first'));
  writeFileSync(join(dir, 'seg-000000000010.jsonl'), line('second') + line('third'));
  writeFileSync(join(dir, 'seg-000000000012.jsonl'), line('released'));
  writeFileSync(join(dir, 'old-seg-000000000001.jsonl'), line('stray'));
  writeFileSync(join(dir, 'seg-000000000002.jsonl.bak'), line('stray'));
  writeFileSync(join(dir, 'cursor.json'), JSON.stringify({ version: 1, consumed: { '9': 0, '10': line('second').length, '12': line('released').length, '12x': 5, '11': -1 } }));
  const log = captureLog();
  const s = open(dataDir, {}, log);
  try {
    const loaded = log.records().find((r) => r['msg'] === 'spool: loaded unacknowledged messages from disk');
    assert.deepEqual([loaded?.['messages'], loaded?.['bytes'], loaded?.['segments']], [2, line('first').length + line('second').length + line('third').length, 2]);
    assert.deepEqual(drain(s), ['first', 'third'], 'seg-9 before seg-10; a cursor at the very end of its segment releases all of it');
    const w = warnings(log);
    assert.deepEqual(w.filter((r) => r['msg'] === 'spool: ignoring unexpected file').map((r) => basename(String(r['file']))).sort((x, y) => x.localeCompare(y)), ['old-seg-000000000001.jsonl', 'seg-000000000002.jsonl.bak']);
    assert.deepEqual(w.filter((r) => r['msg'] === 'spool: ignoring a bad cursor entry').map((r) => String(r['key'])).sort((x, y) => x.localeCompare(y)), ['11', '12x']);
    assert.equal(w.length, 4, `nothing else (not cursor.json, not an offset of 0, not the end of a clean segment): ${JSON.stringify(w)}`);
  } finally { s.close(); }

  for (const bad of ['null', '{"consumed":null}']) {
    const d = newDataDir();
    const t = open(d, { memoryMessages: 0 });
    t.push(msg('a'));
    t.close();
    writeFileSync(join(spoolDir(d), 'cursor.json'), bad);
    const l = captureLog();
    open(d, {}, l).close();
    const corrupt = warnings(l).find((r) => r['msg'] === 'spool: cursor file is corrupt; re-sending from the start of each segment');
    assert.equal(corrupt?.['err'], 'no "consumed" object', bad);
  }
});

test('I/O failures: a segment on a full device, one that cannot be created, a persist that cannot write, a segment that cannot be read', () => {
  // The first segment is /dev/full: the write fails, the message is dropped and counted, the segment removed.
  const d1 = newDataDir();
  const log1 = captureLog();
  const s = open(d1, { memoryMessages: 0 }, log1);
  const first = join(spoolDir(d1), 'seg-001000000000.jsonl');
  symlinkSync('/dev/full', first);
  try {
    assert.equal(s.push(msg('a')), false);
    assert.equal(s.overflowMessages, 1);
    assert.equal(s.overflowBytes, 10);
    assert.equal(s.accepted, 0);
    assert.ok(warnings(log1).some((r) => r['msg'] === 'spool: write failed; sealing the segment' && r['file'] === first && typeof r['err'] === 'string' && r['err'] !== ''));
    assert.ok(!readdirSync(spoolDir(d1)).includes(basename(first)), 'the failed segment is removed');
    assert.equal(s.diskBytes, 0);
    assert.equal(s.push(msg('b')), true, 'the next message gets a new segment');
    assert.deepEqual(drain(s), ['b']);
  } finally { s.close(); }

  // The first segment cannot be created (a link into a missing directory).
  const d2 = newDataDir();
  const log2 = captureLog();
  const t = open(d2, { memoryMessages: 0 }, log2);
  const link = join(spoolDir(d2), 'seg-001000000000.jsonl');
  symlinkSync(join(d2, 'missing', 'x'), link);
  try {
    assert.equal(t.push(msg('a')), false);
    assert.equal(t.overflowMessages, 1);
    assert.equal(t.accepted, 0);
    assert.ok(warnings(log2).some((r) => r['msg'] === 'spool: cannot create a segment' && r['file'] === link && typeof r['err'] === 'string'));
    assert.equal(t.push(msg('b')), true);
    assert.equal(t.accepted, 1);
  } finally { t.close(); }

  // persist cannot write its file (a directory is in the way): logged as lost, the temporary name left alone.
  const d3 = newDataDir();
  const log3 = captureLog();
  const p = open(d3, {}, log3);
  try {
    p.push(msg('a')); p.push(msg('b'));
    mkdirSync(join(spoolDir(d3), 'seg-001000000000.jsonl.tmp'));
    p.persist();
    const lost = log3.records().find((r) => r['msg'] === 'spool: cannot persist in-memory messages; they are lost');
    assert.deepEqual([lost?.['level'], lost?.['messages'], lost?.['file']], [50, 2, join(spoolDir(d3), 'seg-001000000000.jsonl')]);
    assert.equal(typeof lost?.['err'], 'string');
    assert.ok(warnings(log3).some((r) => r['msg'] === 'spool: cannot delete file' && String(r['file']).endsWith('.jsonl.tmp')));
  } finally { p.close(); }

  // A segment that cannot be read (a directory with a segment's name): skipped with a warning.
  const d4 = newDataDir();
  mkdirSync(join(spoolDir(d4), 'seg-000000000005.jsonl'), { recursive: true });
  const log4 = captureLog();
  const q = open(d4, {}, log4);
  try {
    assert.ok(warnings(log4).some((r) => r['msg'] === 'spool: error reading segment; keeping what was read' && String(r['file']).endsWith('seg-000000000005.jsonl')));
    assert.equal(q.messages, 0);
    q.push(msg('a'));
    assert.deepEqual(drain(q), ['a']);
  } finally { q.close(); }
});

test('thousands of records of every length across read chunks and segments: handed out exactly, then reloaded and handed out exactly', () => {
  const dataDir = newDataDir();
  const log = captureLog();
  let seed = 7;
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed >>> 8; };
  const msgs: OutboundMessage[] = Array.from({ length: 1500 }, (_, i) => ({
    subject: 'pcap.v1.s.window', msgId: `r-${i}`, data: Buffer.alloc(i === 700 ? 300_000 : rand() % 2000, 97 + (i % 26)),
  }));
  const check = (e: SpoolEntry | undefined, i: number): void => {
    assert.equal(e?.message.msgId, `r-${i}`);
    assert.ok(Buffer.from(e.message.data).equals(msgs[i]!.data as Buffer), `r-${i}: payload byte for byte`);
  };
  const options = { memoryMessages: 0, fileBytes: 8 << 20 }; // 1 MiB segments
  let s = open(dataDir, options, log);
  for (const m of msgs) assert.equal(s.push(m), true);
  assert.ok(segments(dataDir).length >= 2);
  const taken: SpoolEntry[] = [];
  for (let i = 0; i < 750; i++) { const e = s.take(10_000); check(e, i); taken.push(e!); }
  for (const e of taken) s.ack(e);
  s.close();
  s = open(dataDir, options, log);
  try {
    assert.equal(s.messages, 750);
    for (let i = 750; i < 1500; i++) { const e = s.take(10); check(e, i); s.ack(e!); }
    assert.equal(s.take(10), undefined);
    assert.equal(s.messages, 0);
    assert.deepEqual(warnings(log), []);
  } finally { s.close(); }
});

test('after a rewind, acknowledged hand-outs are skipped; a segment released behind the reader does not move the reader back', () => {
  const s = open(newDataDir(), { memoryMessages: 0, fileBytes: 8192 }); // two 400-byte records per segment
  try {
    for (const id of ['a', 'b', 'c', 'd', 'e']) s.push(msg(id, 400));
    const a = s.take(10)!;
    const b = s.take(10)!;
    const c = s.take(10)!;
    s.ack(b);
    s.rewind();
    assert.equal(s.take(10), a, 'a again');
    assert.equal(s.take(10), c, 'b was acknowledged: skipped');
    const d = s.take(10)!;
    assert.equal(d.message.msgId, 'd');
    s.ack(a); // a and b released: their segment is deleted while the reader is in the next one
    assert.equal(s.take(10)?.message.msgId, 'e', 'the reader carries on where it was');
    assert.equal(s.take(10), undefined);
  } finally { s.close(); }
});

test('records: a payload starting with a byte order mark keeps it; exactly ten corrupt records are ten warnings and no summary', () => {
  const bom: OutboundMessage = { subject: 'a', msgId: 'bom', data: Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]) };
  const back = decodeRecord(encodeRecord(bom).toString('utf8').trimEnd());
  assert.ok(typeof back !== 'string');
  assert.deepEqual([...back.data], [0xef, 0xbb, 0xbf, 0x7b, 0x7d]);
  assert.equal(decodeRecord('7'), 'not a JSON object');
  assert.equal(decodeRecord('"x"'), 'not a JSON object');

  const dataDir = newDataDir();
  const s = open(dataDir, { memoryMessages: 0 });
  s.push(msg('a'));
  s.close();
  const seg = join(spoolDir(dataDir), segments(dataDir)[0]!);
  appendFileSync(seg, 'junk\n'.repeat(10));
  const log = captureLog();
  const t = open(dataDir, {}, log);
  try {
    assert.equal(warnings(log).filter((r) => r['msg'] === 'spool: skipping a corrupt record').length, 10);
    assert.ok(!warnings(log).some((r) => r['msg'] === 'spool: more corrupt records skipped in this file'));
    assert.deepEqual(drain(t), ['a']);
  } finally { t.close(); }
});
