/**
 * The publishing stage against a real nats-server spawned per test (never the
 * machine's own on 4222): stream management, exactly-once storage in order,
 * an outage mid-run, NATS down throughout, persist-and-resend across a restart,
 * corrupt spool files, and no secrets in the logs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { connect, nanos } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { DEFAULT_CONFIG, type NatsConfig, type SpoolConfig } from '../common/config.js';
import { Publisher, Spool, type OutboundMessage } from '../agent/publish/index.js';
import { freePort, startNatsServer } from './helpers/nats-server.js';

const work = mkdtempSync(join(tmpdir(), 'pa-publish-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;
const newDataDir = (): string => mkdtempSync(join(work, `d${dirs++}-`));

interface Captured { logger: Logger; text: () => string; records: () => Array<Record<string, unknown>> }

/** A pino logger writing into memory (every level), to inspect what was logged. */
function captureLog(): Captured {
  const chunks: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (s: string) => { chunks.push(s); } });
  const text = (): string => chunks.join('');
  return { logger, text, records: () => text().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function natsConfig(servers: string[], overrides: Partial<NatsConfig> = {}): NatsConfig {
  return { ...structuredClone(DEFAULT_CONFIG.nats), servers, stream: 'PA_TEST', ...overrides };
}
const bigSpool: SpoolConfig = { memoryMessages: 10_000, memoryBytes: 16 << 20, fileBytes: 64 << 20 };

const encoder = new TextEncoder();
function message(id: string, extra = ''): OutboundMessage {
  return { subject: 'pcap.v1.test.window', msgId: id, data: encoder.encode(JSON.stringify({ id, extra })) };
}
const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

/** Every message in the stream, in stream order, through an ordered consumer. */
async function readBack(url: string, stream = 'PA_TEST'): Promise<Array<{ msgId: string; subject: string; seq: number; body: unknown }>> {
  const nc = await connect({ servers: url });
  try {
    const total = (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
    const consumer = await jetstream(nc).consumers.get(stream);
    const out: Array<{ msgId: string; subject: string; seq: number; body: unknown }> = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: total - out.length, expires: 2000 });
      for await (const m of batch) out.push({ msgId: m.headers?.get('Nats-Msg-Id') ?? '', subject: m.subject, seq: m.seq, body: m.json() });
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const segmentFiles = (dataDir: string): string[] => readdirSync(join(dataDir, 'spool')).filter((f) => f.endsWith('.jsonl')).sort();

test('the stream is created and updated with the configured subjects, max age and duplicate window; manageStream false leaves streams alone', async (t) => {
  const ns = await startNatsServer();
  t.after(() => ns.close());
  const log = captureLog();
  const p1 = await Publisher.start({ nats: natsConfig([ns.url], { maxAgeHours: 2, duplicateWindowSeconds: 60 }), spool: bigSpool, dataDir: newDataDir(), logger: log.logger });
  t.after(() => p1.close()); // idempotent; after a failing assertion it stops the reconnecting, which would keep the run alive
  assert.ok(p1.enqueue(message('s-1')));
  assert.equal(await p1.drain(5000), true);
  await p1.close();

  const nc = await connect({ servers: ns.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  let info = await jsm.streams.info('PA_TEST');
  assert.deepEqual(info.config.subjects, ['pcap.v1.>']);
  assert.equal(info.config.storage, 'file');
  assert.equal(info.config.max_age, nanos(2 * 3600 * 1000));
  assert.equal(info.config.duplicate_window, nanos(60 * 1000));

  // Changed settings update the existing stream (max age 0 means unlimited); messages stay.
  const p2 = await Publisher.start({ nats: natsConfig([ns.url], { maxAgeHours: 0, duplicateWindowSeconds: 30 }), spool: bigSpool, dataDir: newDataDir(), logger: log.logger });
  t.after(() => p2.close());
  assert.ok(p2.enqueue(message('s-2')));
  assert.equal(await p2.drain(5000), true);
  await p2.close();
  info = await jsm.streams.info('PA_TEST');
  assert.equal(info.config.max_age, 0);
  assert.equal(info.config.duplicate_window, nanos(30 * 1000));
  assert.equal(info.state.messages, 2);
  assert.match(log.text(), /stream created/);
  assert.match(log.text(), /stream updated/);

  // manageStream: false publishes into whatever stream exists and changes nothing.
  await jsm.streams.delete('PA_TEST');
  await jsm.streams.add({ name: 'MANUAL', subjects: ['pcap.v1.>'], max_age: 0, duplicate_window: nanos(120_000) });
  const p3 = await Publisher.start({ nats: natsConfig([ns.url], { stream: 'MANUAL', manageStream: false, maxAgeHours: 5 }), spool: bigSpool, dataDir: newDataDir(), logger: log.logger });
  t.after(() => p3.close());
  assert.ok(p3.enqueue(message('s-3')));
  assert.equal(await p3.drain(5000), true);
  await p3.close();
  info = await jsm.streams.info('MANUAL');
  assert.equal(info.config.max_age, 0);
  assert.equal(info.config.duplicate_window, nanos(120_000));
  assert.equal(info.state.messages, 1);
  assert.deepEqual(await jsm.streams.names().next(), ['MANUAL']);
});

test('messages are stored exactly once and in order, even when a msgId is enqueued twice', async (t) => {
  const ns = await startNatsServer();
  t.after(() => ns.close());
  const p = await Publisher.start({ nats: natsConfig([ns.url], { maxInFlight: 16 }), spool: bigSpool, dataDir: newDataDir(), logger: captureLog().logger });
  t.after(() => p.close());
  const all = ids('o', 300);
  for (const id of all) assert.ok(p.enqueue(message(id)));
  for (const id of all.slice(0, 10)) assert.ok(p.enqueue(message(id))); // again: JetStream drops them
  assert.ok(p.enqueue(message('o-last')));
  assert.ok(p.enqueue(message('o-last')));
  assert.equal(await p.drain(10_000), true);
  const stats = p.stats();
  assert.equal(stats.published, 312);
  assert.equal(stats.duplicates, 11);
  assert.equal(stats.spoolMessages, 0);
  assert.equal(stats.inFlight, 0);
  assert.equal(stats.connected, true);
  assert.equal(stats.degraded, false);
  await p.close();
  const stored = await readBack(ns.url);
  assert.deepEqual(stored.map((m) => m.msgId), [...all, 'o-last']);
  assert.deepEqual(stored[0]!.body, { id: all[0], extra: '' });
});

test('a message over the server\'s max_payload is dropped, counted and logged once, never retried; the ones after it are stored', async (t) => {
  const conf = join(work, 'small-payload.conf');
  writeFileSync(conf, 'max_payload: 4096\n');
  const ns = await startNatsServer({ args: ['-c', conf] });
  t.after(() => ns.close());
  const log = captureLog();
  const p = await Publisher.start({ nats: natsConfig([ns.url], { maxInFlight: 4 }), spool: bigSpool, dataDir: newDataDir(), logger: log.logger });
  t.after(() => p.close());
  assert.ok(p.enqueue(message('big-before')));
  assert.ok(p.enqueue(message('huge', 'x'.repeat(8000))));
  assert.ok(p.enqueue(message('big-after')));
  assert.equal(await p.drain(10_000), true, 'the spool empties: the huge one does not block it');
  const stats = p.stats();
  assert.equal(stats.tooLarge, 1);
  assert.equal(stats.publishFailures, 0, 'dropped before sending, not failed and retried');
  assert.equal(stats.spoolMessages, 0);
  await p.close();
  assert.deepEqual((await readBack(ns.url)).map((m) => m.msgId), ['big-before', 'big-after']);
  const warned = log.records().filter((r) => /max_payload/.test(String(r['msg'])));
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!['subject'], 'pcap.v1.test.window');
  assert.equal(warned[0]!['maxPayload'], 4096);
});

test('NATS stopped mid-run and restarted on the same store: everything enqueued before, during and after is stored once, in order', async (t) => {
  const ns = await startNatsServer();
  t.after(() => ns.close());
  const log = captureLog();
  const p = await Publisher.start({ nats: natsConfig([ns.url], { ackTimeoutSeconds: 1, maxInFlight: 32 }), spool: { ...bigSpool, memoryMessages: 40 }, dataDir: newDataDir(), logger: log.logger });
  t.after(() => p.close());
  const before = ids('before', 150);
  for (const id of before.slice(0, 100)) p.enqueue(message(id));
  assert.equal(await p.drain(5000), true);
  for (const id of before.slice(100)) p.enqueue(message(id)); // some still in flight when the server goes
  await ns.stop();
  await waitFor('the disconnect to be noticed', () => !p.stats().connected);
  const during = ids('during', 100);
  for (let i = 0; i < during.length; i += 10) { // over ~2 s; past memoryMessages, so partly on disk
    for (const id of during.slice(i, i + 10)) assert.ok(p.enqueue(message(id)));
    await sleep(200);
  }
  assert.equal(p.enqueue(message('heartbeat'), { droppable: true }), false, 'a heartbeat is not spooled while NATS is down');
  const mid = p.stats();
  assert.equal(mid.connected, false);
  assert.ok(mid.spoolMessages >= 100, `spooled ${mid.spoolMessages}`);
  assert.ok(mid.spoolDiskBytes > 0, 'part of the backlog went to disk');
  assert.equal(mid.statusSkipped, 1);
  await ns.start();
  const afterIds = ids('after', 100);
  for (const id of afterIds) assert.ok(p.enqueue(message(id)));
  assert.equal(await p.drain(20_000), true, 'everything acknowledged after the outage');
  const end = p.stats();
  assert.equal(end.connected, true);
  assert.equal(end.spoolMessages, 0);
  assert.equal(end.spoolDiskBytes, 0, 'the disk tier drained and its files are gone');
  assert.equal(end.overflowMessages, 0);
  await p.close();
  const stored = await readBack(ns.url);
  assert.deepEqual(stored.map((m) => m.msgId), [...before, ...during, ...afterIds]);
  assert.match(log.text(), /disconnected from NATS/);
  assert.match(log.text(), /reconnected to NATS/);
});

test('NATS down throughout with tiny spool limits: start() resolves, memory stays bounded, overflow is counted and logged once, degraded', async () => {
  const port = await freePort(); // nothing listens here
  const log = captureLog();
  const spool: SpoolConfig = { memoryMessages: 5, memoryBytes: 2000, fileBytes: 8192 };
  const dataDir = newDataDir();
  const p = await Publisher.start({ nats: natsConfig([`nats://127.0.0.1:${port}`]), spool, dataDir, logger: log.logger });
  try {
    let accepted = 0;
    for (const id of ids('down', 300)) if (p.enqueue(message(id, 'x'.repeat(60)))) accepted++;
    assert.equal(p.enqueue(message('hb'), { droppable: true }), false);
    const stats = p.stats();
    assert.equal(stats.connected, false);
    assert.equal(stats.degraded, true);
    assert.ok(stats.overflowMessages > 0);
    assert.equal(accepted + stats.overflowMessages, 300);
    assert.equal(stats.spoolMessages, accepted);
    assert.ok(stats.spoolDiskBytes <= spool.fileBytes, `disk ${stats.spoolDiskBytes}`);
    assert.equal(stats.statusSkipped, 1);
    assert.equal(stats.published, 0);
    const warnings = log.records().filter((r) => r['level'] === 40);
    assert.equal(warnings.filter((r) => /unreachable/.test(String(r['msg']))).length, 1, 'one warning for the unreachable server');
    assert.equal(warnings.filter((r) => /spool full/.test(String(r['msg']))).length, 1, 'overflow logged once per interval, not per message');
  } finally {
    await p.close();
  }
  // The memory tier itself: never more than its limits, whatever is pushed.
  const s = new Spool({ dataDir: newDataDir(), ...spool, logger: log.logger });
  try {
    for (const id of ids('mem', 300)) {
      s.push(message(id, 'x'.repeat(60)));
      assert.ok(s.memoryMessages <= spool.memoryMessages && s.memoryBytes <= spool.memoryBytes);
      assert.ok(s.diskBytes <= spool.fileBytes);
    }
    assert.equal(s.messages + s.overflowMessages, 300);
  } finally {
    s.close();
  }
});

test('close() persists the unacknowledged to disk in order; a new Publisher on the same dataDir sends them once NATS is up', async (t) => {
  const ns = await startNatsServer();
  t.after(() => ns.close());
  await ns.stop(); // known port, nothing listening yet
  const dataDir = newDataDir();
  const spool: SpoolConfig = { memoryMessages: 10, memoryBytes: 1 << 20, fileBytes: 1 << 20 };
  const p1 = await Publisher.start({ nats: natsConfig([ns.url]), spool, dataDir, logger: captureLog().logger });
  t.after(() => p1.close());
  const all = ids('persist', 25); // 10 in memory, 15 on disk
  for (const id of all) assert.ok(p1.enqueue(message(id)));
  assert.equal(await p1.drain(100), false, 'drain times out while NATS is down');
  await p1.close();
  const lines = segmentFiles(dataDir).flatMap((f) => readFileSync(join(dataDir, 'spool', f), 'utf8').trim().split('\n'));
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { i: string }).i), all, 'memory tier persisted ahead of what was already on disk');

  await ns.start();
  const log = captureLog();
  const p2 = await Publisher.start({ nats: natsConfig([ns.url]), spool, dataDir, logger: log.logger });
  t.after(() => p2.close());
  assert.equal(p2.stats().spoolMessages, 25);
  assert.equal(await p2.drain(10_000), true);
  await p2.close();
  assert.deepEqual((await readBack(ns.url)).map((m) => m.msgId), all);
  assert.deepEqual(segmentFiles(dataDir), [], 'sent segments are deleted');
  assert.match(log.text(), /loaded unacknowledged messages from disk/);
});

test('a corrupt spool file at start is logged with file and offset and skipped; the good records are sent', async (t) => {
  const ns = await startNatsServer();
  t.after(() => ns.close());
  const dataDir = newDataDir();
  mkdirSync(join(dataDir, 'spool'));
  const good = (id: string): string => `${JSON.stringify({ s: 'pcap.v1.test.window', i: id, d: JSON.stringify({ id }) })}\n`;
  const file = join(dataDir, 'spool', 'seg-000001000000.jsonl');
  const badOffset = Buffer.byteLength(good('c-1'));
  writeFileSync(file, `${good('c-1')}garbage{{\n{"s":"pcap.v1.x"}\n${good('c-2')}{"s":"pcap.v1.test.win`);
  writeFileSync(join(dataDir, 'spool', 'cursor.json'), 'not json');
  const log = captureLog();
  const p = await Publisher.start({ nats: natsConfig([ns.url]), spool: bigSpool, dataDir, logger: log.logger });
  t.after(() => p.close());
  assert.equal(await p.drain(5000), true);
  await p.close();
  assert.deepEqual((await readBack(ns.url)).map((m) => m.msgId), ['c-1', 'c-2']);
  const warnings = log.records().filter((r) => r['level'] === 40 && r['file'] !== undefined);
  assert.ok(warnings.some((w) => w['file'] === file && w['offset'] === badOffset && w['reason'] === 'not JSON'), 'garbage line named by file and offset');
  assert.ok(warnings.some((w) => w['file'] === file && w['reason'] === 'missing message id "i"'));
  assert.ok(warnings.some((w) => w['file'] === file && w['reason'] === 'no end of line (torn write)'));
  assert.ok(warnings.some((w) => /cursor file is corrupt/.test(String(w['msg']))));
});

test('secrets never appear in log output', async (t) => {
  const password = 'pw-Secret-4711';
  const token = 'tok-Secret-0815';
  const withUser = await startNatsServer({ args: ['--user', 'agent', '--pass', password] });
  t.after(() => withUser.close());
  const withToken = await startNatsServer({ args: ['--auth', token] });
  t.after(() => withToken.close());
  const log = captureLog();
  const run = async (nats: NatsConfig, expectConnected: boolean): Promise<void> => {
    const p = await Publisher.start({ nats, spool: bigSpool, dataDir: newDataDir(), logger: log.logger });
    try {
      assert.equal(p.stats().connected, expectConnected, `connected with ${nats.servers[0]!.replace(/\/\/.*@/, '//…@')}`);
      p.enqueue(message(`sec-${nats.user}${nats.token.length}`));
      if (expectConnected) assert.equal(await p.drain(5000), true);
      else await sleep(1200); // let a background attempt fail too
    } finally {
      await p.close();
    }
  };
  const userUrl = `nats://agent:${password}@127.0.0.1:${withUser.port}`;
  await run(natsConfig([withUser.url], { user: 'agent', password }), true);
  await run(natsConfig([userUrl]), true); // credentials in the URL
  await run(natsConfig([withUser.url], { user: 'agent', password: `${password}-wrong` }), false);
  await run(natsConfig([withToken.url], { token }), true);
  await run(natsConfig([`nats://${token}@127.0.0.1:${withToken.port}`]), true);
  await run(natsConfig([withToken.url], { token: `${token}-wrong` }), false);
  const unreachable = await freePort();
  await run(natsConfig([`nats://agent:${password}@127.0.0.1:${unreachable}`], { token }), false);
  const text = log.text();
  assert.match(text, /connected to NATS/);
  assert.match(text, /unreachable/);
  assert.ok(!text.includes(password), 'no password in the logs');
  assert.ok(!text.includes('Secret'), 'no token or password in the logs');
});

test('spool: order across memory and disk, binary payloads, persist, and a cursor that survives a restart', () => {
  const dataDir = newDataDir();
  const log = captureLog().logger;
  const limits = { memoryMessages: 3, memoryBytes: 1 << 20, fileBytes: 1 << 20 };
  let s = new Spool({ dataDir, ...limits, logger: log });
  const binary: OutboundMessage = { subject: 'pcap.v1.test.bin', msgId: 'bin', data: Uint8Array.from([0xff, 0x00, 0xfe, 0x80]) };
  for (const id of ids('a', 5)) s.push(message(id)); // a-0000..2 in memory, a-0003..4 on disk
  s.push(binary);
  assert.equal(s.memoryMessages, 3);
  assert.equal(s.diskMessages, 3);
  const e0 = s.take(10)!;
  const e1 = s.take(10)!;
  assert.deepEqual([e0.message.msgId, e1.message.msgId], ['a-0000', 'a-0001']);
  s.ack(e1); // out of order: nothing leaves until a-0000 is acked
  assert.equal(s.acknowledged, 0);
  s.rewind();
  assert.equal(s.take(10)!.message.msgId, 'a-0000', 'after a rewind the oldest unacknowledged comes first');
  s.ack(e0);
  assert.equal(s.acknowledged, 2);
  const rest: string[] = [];
  for (let e = s.take(10); e; e = s.take(10)) {
    rest.push(e.message.msgId);
    if (e.message.msgId === 'bin') assert.deepEqual([...e.message.data], [0xff, 0x00, 0xfe, 0x80]);
    if (e.message.msgId === 'a-0002' || e.message.msgId === 'a-0003') s.ack(e);
  }
  assert.deepEqual(rest, ['a-0002', 'a-0003', 'a-0004', 'bin']);
  for (const id of ids('b', 2)) s.push(message(id)); // disk still holds a-0004 and bin: these go to disk too
  s.persist();
  s.close();
  s = new Spool({ dataDir, ...limits, logger: log });
  const reloaded: string[] = [];
  for (let e = s.take(100); e; e = s.take(100)) { reloaded.push(e.message.msgId); s.ack(e); }
  assert.deepEqual(reloaded, ['a-0004', 'bin', 'b-0000', 'b-0001'], 'acknowledged records are not sent again');
  assert.equal(s.diskBytes, 0);
  s.close();
  assert.deepEqual(segmentFiles(dataDir), []);
});
