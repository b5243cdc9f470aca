/**
 * The publisher's spool on its own (no NATS): the memory tier's limits at
 * their exact edges, the disk tier's limit and overflow counts, hand-out and
 * acknowledgement order, persist and reload, segment rotation, long records,
 * the cursor file, and every kind of damaged file it may find at start.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
