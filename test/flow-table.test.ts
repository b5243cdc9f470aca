import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../common/config.js';
import { PacketView, TcpFlag, Transport } from '../agent/decode/index.js';
import { PacketClock } from '../agent/core/packet-clock.js';
import { Dir, EndReason, FlowTable, FLOW_STATE_NAMES, type EndReasonCode } from '../agent/flow/index.js';

const { SYN, ACK, FIN, RST } = TcpFlag;

/** A flow table whose `update` first moves the packet clock, as the pipeline does. */
function table(overrides: Record<string, unknown> = {}): FlowTable {
  const clock = new PacketClock();
  const t = new FlowTable(buildConfig({ flows: overrides }).flows, clock);
  const update = t.update.bind(t);
  t.update = (v: PacketView): number => { clock.observe(v.ts); t.advance(); return update(v); };
  return t;
}

/** Fills a view with an IPv4 TCP/UDP packet; addresses are the last octet of 10.0.0.x. */
function packet(v: PacketView, ts: number, src: number, sport: number, dst: number, dport: number,
  opts: { proto?: number; flags?: number; seq?: number; len?: number } = {}): PacketView {
  v.reset();
  v.ts = ts;
  v.ipVersion = 4;
  v.src[0] = (10 << 24) + src;
  v.dst[0] = (10 << 24) + dst;
  v.transport = opts.proto ?? Transport.TCP;
  v.ipProto = v.transport;
  v.srcPort = sport;
  v.dstPort = dport;
  v.tcpFlags = opts.flags ?? ACK;
  v.seq = opts.seq ?? 1000;
  v.wireLen = opts.len ?? 60;
  return v;
}

const state = (t: FlowTable, slot: number): string => FLOW_STATE_NAMES[t.state[slot]!]!;

test('both directions map to one flow; the SYN sender is the client', () => {
  const t = table();
  const v = new PacketView();
  const a = t.update(packet(v, 1, 1, 40000, 2, 80, { flags: SYN, seq: 100 }));
  assert.equal(t.dir, Dir.CLIENT_TO_SERVER);
  assert.equal(state(t, a), 'syn_sent');
  const b = t.update(packet(v, 1.1, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 900, len: 74 }));
  assert.equal(b, a);
  assert.equal(t.dir, Dir.SERVER_TO_CLIENT);
  assert.equal(state(t, a), 'syn_received');
  t.update(packet(v, 1.2, 1, 40000, 2, 80, { flags: ACK, seq: 101 }));
  assert.equal(state(t, a), 'established');
  assert.equal(t.clientPort(a), 40000);
  assert.equal(t.serverPort(a), 80);
  assert.equal(t.clientAddr(a)[0], (10 << 24) + 1);
  assert.deepEqual([t.packets[a * 2], t.packets[a * 2 + 1]], [2, 1]);
  assert.deepEqual([t.bytes[a * 2], t.bytes[a * 2 + 1]], [120, 74]);
  assert.equal(t.active, 1);
  assert.equal(t.tcpStreams, 1);
});

test('client when the SYN was not captured: SYN/ACK marks its receiver, else the first sender', () => {
  const t = table();
  const v = new PacketView();
  const s = t.update(packet(v, 1, 2, 443, 1, 50000, { flags: SYN | ACK }));
  assert.equal(t.clientPort(s), 50000);
  const m = t.update(packet(v, 1, 3, 22, 4, 60000, { flags: ACK }));
  assert.equal(t.clientPort(m), 22, 'mid-stream TCP: the first packet\'s sender is the client');
  assert.equal(state(t, m), 'established');
  const u = t.update(packet(v, 1, 5, 53, 6, 33333, { proto: Transport.UDP }));
  assert.equal(t.clientPort(u), 33333, 'a UDP reply from a well-known port names the other side client');
});

test('FIN from both sides closes, RST resets', () => {
  const t = table();
  const v = new PacketView();
  const f = t.update(packet(v, 1, 1, 1000, 2, 80, { flags: ACK }));
  t.update(packet(v, 2, 1, 1000, 2, 80, { flags: FIN | ACK }));
  assert.equal(state(t, f), 'closing');
  t.update(packet(v, 3, 2, 80, 1, 1000, { flags: FIN | ACK }));
  assert.equal(state(t, f), 'closed');
  const r = t.update(packet(v, 4, 1, 1001, 2, 80, { flags: ACK }));
  t.update(packet(v, 5, 2, 80, 1, 1001, { flags: RST }));
  assert.equal(state(t, r), 'reset');
});

test('port reuse: a SYN with a new ISN starts a new flow; a retransmitted SYN (same ISN) does not', () => {
  const t = table();
  const v = new PacketView();
  const ended: EndReasonCode[] = [];
  t.setListener({ onFlowEnd: (_slot, reason) => ended.push(reason) });
  const first = t.update(packet(v, 1, 1, 40000, 2, 80, { flags: SYN, seq: 5000 }));
  assert.equal(t.update(packet(v, 2, 1, 40000, 2, 80, { flags: SYN, seq: 5000 })), first);
  assert.equal(t.tcpStreams, 1);
  t.update(packet(v, 3, 2, 80, 1, 40000, { flags: RST | ACK, seq: 0 }));
  t.update(packet(v, 10, 1, 40000, 2, 80, { flags: SYN, seq: 777777 }));
  assert.equal(t.tcpStreams, 2);
  assert.deepEqual(ended, [EndReason.PORT_REUSE]);
  assert.equal(t.active, 1);
  // A SYN/ACK with a new ISN is not a reuse by itself (Wireshark checks SYN without ACK).
  t.update(packet(v, 11, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 1 }));
  assert.equal(t.tcpStreams, 2);
});

test('idle timeouts per protocol and state, in packet time', () => {
  const t = table({ timeouts: { tcpHandshake: 5, tcpEstablished: 50, tcpClosed: 2, udp: 10, icmp: 3, other: 7 } });
  const v = new PacketView();
  t.update(packet(v, 0, 1, 1, 2, 80, { flags: SYN }));
  t.update(packet(v, 0, 1, 2, 2, 80, { flags: ACK }));
  t.update(packet(v, 0, 1, 3, 2, 53, { proto: Transport.UDP }));
  assert.equal(t.active, 3);
  t.update(packet(v, 6, 9, 9, 8, 8, { proto: Transport.UDP })); // SYN-only flow is past 5 s
  assert.equal(t.expired, 1);
  t.update(packet(v, 11, 9, 9, 8, 8, { proto: Transport.UDP })); // first UDP flow past 10 s
  assert.equal(t.expired, 2);
  assert.equal(t.active, 2);
  t.update(packet(v, 49, 9, 9, 8, 8, { proto: Transport.UDP }));
  assert.equal(t.active, 2, 'established TCP lives 50 s');
  t.update(packet(v, 51, 9, 9, 8, 8, { proto: Transport.UDP }));
  assert.equal(t.active, 1);
});

test('one packet stamped far in the future does not expire everything; a confirmed jump does', () => {
  const t = table({ timeouts: { udp: 10 } });
  const v = new PacketView();
  t.update(packet(v, 100, 1, 1000, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 1e9, 3, 1000, 4, 53, { proto: Transport.UDP }));
  t.update(packet(v, 101, 1, 1000, 2, 53, { proto: Transport.UDP }));
  assert.equal(t.expired, 0);
  assert.equal(t.udpStreams, 2);
  t.update(packet(v, 5000, 5, 1000, 6, 53, { proto: Transport.UDP }));
  t.update(packet(v, 5001, 5, 1000, 6, 53, { proto: Transport.UDP }));
  // Both earlier flows were last seen at clock time ~100 (the lone future packet did not move the clock).
  assert.equal(t.expired, 2, 'earlier flows expire once the jump is confirmed');
  assert.equal(t.active, 1);
});

test('hard cap: the least recently active flow is evicted and counted; memory is the cap', () => {
  const t = table({ maxFlows: 16 });
  const v = new PacketView();
  const ended: number[] = [];
  t.setListener({ onFlowEnd: (slot, reason) => { if (reason === EndReason.EVICTED) ended.push(t.clientPort(slot)); } });
  for (let i = 0; i < 1000; i++) {
    t.update(packet(v, i * 0.001, 1, 1024 + i, 2, 80, { proto: Transport.UDP }));
    t.update(packet(v, i * 0.001, 1, 1024, 2, 80, { proto: Transport.UDP })); // keep port 1024 active
  }
  assert.equal(t.active, 16);
  assert.equal(t.evicted, 1000 - 16, 'ports 1024..2023 are 1000 flows, 16 stay');
  assert.equal(ended[0], 1025, 'the oldest idle flow goes first');
  assert.ok(!ended.includes(1024), 'the busy flow is never evicted');
});

test('lookups stay correct through many inserts and deletions (backward-shift deletion)', () => {
  const t = table({ maxFlows: 64, timeouts: { udp: 1 } });
  const v = new PacketView();
  let seed = 12345;
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
  const live = new Map<number, number>();
  for (let step = 0; step < 20000; step++) {
    const port = 1 + (rand() % 200);
    const ts = step * 0.01;
    const slot = t.update(packet(v, ts, 1, port, 2, 9, { proto: Transport.UDP }));
    assert.equal(t.clientPort(slot) === port || t.serverPort(slot) === port, true);
    live.set(port, slot);
    // The same key found again must be the same slot.
    assert.equal(t.update(packet(v, ts, 2, 9, 1, port, { proto: Transport.UDP })), slot);
  }
  assert.ok(t.active <= 64);
  assert.ok(t.expired + t.evicted > 0);
});

test('port reuse uses Wireshark\'s base_seq: learnt from the other side\'s ACK, and seq - 1 mid-stream', () => {
  // Capture starts with the SYN/ACK acknowledging 5000: the client's ISN is 4999.
  const t = table();
  const v = new PacketView();
  const synAck = packet(v, 1, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 100 });
  synAck.ack = 5000;
  t.update(synAck);
  t.update(packet(v, 2, 1, 40000, 2, 80, { flags: SYN, seq: 4999 }));
  assert.equal(t.tcpStreams, 1, 'a retransmitted SYN with the acknowledged ISN is the same connection');
  t.update(packet(v, 3, 1, 40000, 2, 80, { flags: SYN, seq: 123 }));
  assert.equal(t.tcpStreams, 2, 'a different ISN is a new connection');
  // Mid-stream first packet: base = seq - 1, so a SYN at seq - 1 is not a reuse.
  const m = table();
  m.update(packet(v, 1, 1, 40000, 2, 80, { flags: ACK, seq: 701 }));
  m.update(packet(v, 2, 1, 40000, 2, 80, { flags: SYN, seq: 700 }));
  assert.equal(m.tcpStreams, 1);
});

test('hard cap across protocol classes: the least recently active flow of any class is evicted', () => {
  const t = table({ maxFlows: 16 });
  const v = new PacketView();
  const ended: string[] = [];
  const name = (slot: number): string => `${t.clientPort(slot)}`;
  t.setListener({ onFlowEnd: (slot, reason) => { if (reason === EndReason.EVICTED) ended.push(name(slot)); } });
  // Sixteen flows in the six classes (handshake, established, closed TCP; UDP; ICMP; other IP),
  // the oldest in the last class; each class's own head is not the oldest overall.
  let ts = 1;
  const classes: Array<{ proto: number; flags?: number }> = [
    { proto: Transport.OTHER_IP }, { proto: Transport.UDP }, { proto: Transport.TCP, flags: SYN }, { proto: Transport.UDP },
  ];
  for (let i = 0; i < 16; i++) {
    const c = classes[i % classes.length]!;
    const p = packet(v, ts, 1, 3000 + i, 2, 80, { proto: c.proto, flags: c.flags ?? ACK, seq: 100 });
    if (c.proto === Transport.OTHER_IP) { v.ipProto = 47; v.srcPort = 0; v.dstPort = 0; v.src[0] = (10 << 24) + 100 + i; }
    t.update(p);
    ts += 0.001;
  }
  assert.equal(t.active, 16);
  // Three more UDP flows: the oldest flows go, whatever their class: other-IP (3000), UDP (3001), TCP (3002).
  const before = ended.length;
  for (let i = 0; i < 3; i++) { t.update(packet(v, ts, 1, 5000 + i, 2, 80, { proto: Transport.UDP })); ts += 0.001; }
  assert.equal(t.evicted, 3);
  assert.deepEqual(ended.slice(before), ['0', '3001', '3002'], 'other IP (no ports) first, then UDP 3001, then TCP 3002');
});

test('idle expiry and eviction counts add up: flows ended for either reason are counted once', () => {
  const t = table({ maxFlows: 16, timeouts: { udp: 5 } });
  const v = new PacketView();
  for (let i = 0; i < 20; i++) t.update(packet(v, 1 + i * 0.01, 1, 4000 + i, 2, 53, { proto: Transport.UDP }));
  assert.equal(t.evicted, 4);
  assert.equal(t.expired, 0);
  t.update(packet(v, 100, 1, 4999, 2, 53, { proto: Transport.UDP }));
  assert.equal(t.expired, 16, 'the sixteen left idle for more than 5 s');
  assert.equal(t.active, 1);
});

test('hard cap: of two flows last active at the same packet time, the one of the lower class goes first (reports stay deterministic)', () => {
  const t = table({ maxFlows: 16 });
  const v = new PacketView();
  const ended: number[] = [];
  t.setListener({ onFlowEnd: (slot, reason) => { if (reason === EndReason.EVICTED) ended.push(t.clientPort(slot)); } });
  t.update(packet(v, 1, 1, 6001, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 1, 1, 6002, 2, 80, { flags: SYN }));
  for (let i = 0; i < 15; i++) t.update(packet(v, 2 + i * 0.01, 1, 7000 + i, 2, 53, { proto: Transport.UDP }));
  assert.deepEqual(ended, [6002], 'the TCP handshake flow (class 0) before the UDP flow (class 3)');
});
