import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../common/config.js';
import { PacketView, TcpFlag, Transport } from '../agent/decode/index.js';
import { PacketClock } from '../agent/core/packet-clock.js';
import { Dir, EndReason, FlowTable, FLOW_STATE_NAMES, TcpSynEvent, type EndReasonCode } from '../agent/flow/index.js';

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

/** A table with its clock, where the test moves the clock itself (for updateQuoted and advance). */
function tableWithClock(overrides: Record<string, unknown> = {}): { t: FlowTable; clock: PacketClock; at: (ts: number) => void } {
  const clock = new PacketClock();
  const t = new FlowTable(buildConfig({ flows: overrides }).flows, clock);
  return { t, clock, at: (ts: number) => { clock.observe(ts); t.advance(); } };
}

/** Every flow end, as [client port, reason]. */
function endings(t: FlowTable): Array<[number, EndReasonCode]> {
  const out: Array<[number, EndReasonCode]> = [];
  t.setListener({ onFlowEnd: (slot, reason) => out.push([t.clientPort(slot), reason]) });
  return out;
}

test('one host talking to itself (loopback): both directions are one flow, told apart by port', () => {
  const t = table();
  const v = new PacketView();
  const a = t.update(packet(v, 1, 1, 40000, 1, 80, { flags: SYN, seq: 1 }));
  assert.equal(t.dir, Dir.CLIENT_TO_SERVER);
  assert.equal(t.update(packet(v, 1.1, 1, 80, 1, 40000, { flags: SYN | ACK, seq: 9 })), a, 'the reply is the same flow');
  assert.equal(t.dir, Dir.SERVER_TO_CLIENT);
  assert.equal(t.update(packet(v, 1.2, 1, 40000, 1, 80, { flags: ACK, seq: 2 })), a);
  assert.equal(t.dir, Dir.CLIENT_TO_SERVER);
  assert.equal(state(t, a), 'established');
  assert.equal(t.tcpStreams, 1);
  assert.deepEqual([t.clientPort(a), t.serverPort(a)], [40000, 80]);
  // A client port below the server's: the canonical order flips, the flow does not.
  const b = t.update(packet(v, 2, 1, 22, 1, 8080, { flags: SYN, seq: 1 }));
  assert.equal(t.update(packet(v, 2.1, 1, 8080, 1, 22, { flags: SYN | ACK, seq: 5 })), b);
  assert.equal(t.dir, Dir.SERVER_TO_CLIENT);
  assert.deepEqual([t.clientPort(b), t.serverPort(b)], [22, 8080]);
  assert.equal(t.tcpStreams, 2);
});

test('IPv6: addresses differing in any word are different flows; endpoints copied as four words, IPv4 as one', () => {
  const t = table();
  const v = new PacketView();
  const v6 = (ts: number, src: number[], dst: number[], sport: number, dport: number): PacketView => {
    packet(v, ts, 0, sport, 0, dport, { proto: Transport.UDP });
    v.ipVersion = 6;
    v.src.set(src);
    v.dst.set(dst);
    return v;
  };
  const host = (w: number, last: number): number[] => { const a = [0x20010db8, 0, 0, 1]; a[w] = last; return a; };
  const slots = new Set<number>();
  for (let w = 1; w < 4; w++) slots.add(t.update(v6(1, host(w, 0x1234), host(0, 0x20010db9), 5000, 53)));
  slots.add(t.update(v6(1, host(0, 0x20010db8), host(0, 0x20010db9), 5000, 53)));
  assert.equal(slots.size, 4, 'four client addresses, four flows');
  assert.equal(t.udpStreams, 4);
  // The reply of the second flow finds it.
  const s = t.update(v6(2, host(0, 0x20010db9), host(2, 0x1234), 53, 5000));
  assert.equal(t.udpStreams, 4);
  assert.equal(t.dir, Dir.SERVER_TO_CLIENT);
  const client = new Uint32Array(4).fill(7);
  const server = new Uint32Array(4).fill(7);
  t.copyEndpoints(s, client, server);
  assert.deepEqual([...client], host(2, 0x1234));
  assert.deepEqual([...server], host(0, 0x20010db9));
  assert.deepEqual([...t.clientAddr(s)], host(2, 0x1234));
  assert.deepEqual([...t.serverAddr(s)], host(0, 0x20010db9));
  // IPv4: word 0 only, the rest zeroed even when the caller's arrays held something.
  const four = t.update(packet(v, 3, 9, 53, 3, 6000, { proto: Transport.UDP })); // from a well-known port: 3 is the client
  client.fill(7); server.fill(7);
  t.copyEndpoints(four, client, server);
  assert.deepEqual([...client], [(10 << 24) + 3, 0, 0, 0]);
  assert.deepEqual([...server], [(10 << 24) + 9, 0, 0, 0]);
  assert.equal(t.serverAddr(four)[0], (10 << 24) + 9);
});

test('ICMP: an echo request and its reply share a flow per identifier; other ICMP is one flow per host pair', () => {
  const t = table();
  const v = new PacketView();
  const icmp = (ts: number, src: number, dst: number, type: number, id: number, proto: number = Transport.ICMP): PacketView => {
    packet(v, ts, src, 0, dst, 0, { proto });
    v.icmpType = type;
    v.icmpId = id;
    return v;
  };
  const ping = t.update(icmp(1, 1, 2, 8, 77));
  assert.equal(t.update(icmp(1.1, 2, 1, 0, 77)), ping, 'echo reply, same id');
  assert.equal(t.dir, Dir.SERVER_TO_CLIENT);
  assert.deepEqual([t.clientPort(ping), t.serverPort(ping)], [77, 77], 'the identifier stands in for the ports');
  const other = t.update(icmp(1.2, 1, 2, 8, 78));
  assert.notEqual(other, ping, 'another identifier, another flow');
  const unreach = t.update(icmp(1.3, 2, 1, 3, 77));
  assert.notEqual(unreach, ping);
  assert.equal(t.clientPort(unreach), 0, 'not an echo: no identifier');
  assert.equal(t.update(icmp(1.4, 1, 2, 11, 500)), unreach, 'any non-echo type between the pair, whatever its id field');
  assert.equal(t.otherFlows, 3);
  // ICMPv6: echo is 128/129; 8 and 0 are not echo types there.
  const p6 = t.update(icmp(2, 1, 2, 128, 5, Transport.ICMPV6));
  assert.equal(t.update(icmp(2.1, 2, 1, 129, 5, Transport.ICMPV6)), p6);
  assert.equal(t.clientPort(p6), 5);
  const n6 = t.update(icmp(2.2, 1, 2, 8, 6, Transport.ICMPV6));
  assert.equal(t.clientPort(n6), 0, 'type 8 is not an ICMPv6 echo');
  assert.notEqual(n6, p6);
  assert.equal(t.update(icmp(2.3, 1, 2, 0, 9, Transport.ICMPV6)), n6);
  assert.equal(t.otherFlows, 5);
  assert.equal(t.udpStreams + t.tcpStreams, 0);
});

test('frames without an IP transport have no flow; stream numbers count per protocol', () => {
  const t = table();
  const v = new PacketView();
  v.reset();
  assert.equal(t.update(v), -1, 'not IP');
  assert.equal(t.lastSlot, -1);
  packet(v, 1, 1, 1, 2, 2, { proto: Transport.NONE });
  assert.equal(t.update(v), -1, 'IP without a transport');
  assert.equal(t.active, 0);
  const tcp0 = t.update(packet(v, 1, 1, 1000, 2, 80, { flags: SYN }));
  assert.equal(t.lastSlot, tcp0);
  const udp0 = t.update(packet(v, 1, 1, 1000, 2, 53, { proto: Transport.UDP }));
  const tcp1 = t.update(packet(v, 1, 1, 1001, 2, 80, { flags: SYN }));
  const udp1 = t.update(packet(v, 1, 1, 1001, 2, 53, { proto: Transport.UDP }));
  packet(v, 1, 1, 0, 2, 0, { proto: Transport.OTHER_IP });
  v.ipProto = 47;
  const gre = t.update(v);
  assert.equal(t.proto[gre], 47, 'an unparsed transport is keyed by its IP protocol number');
  assert.deepEqual([tcp0, udp0, tcp1, udp1, gre].map((s) => t.streamIndex[s]), [0, 0, 1, 1, 0]);
  assert.deepEqual([t.tcpStreams, t.udpStreams, t.otherFlows, t.active], [2, 2, 1, 5]);
  assert.deepEqual([tcp0, udp0, tcp1, udp1, gre], [0, 1, 2, 3, 4], 'free slots are handed out from 0');
  // First and last packet times: the last only moves forward.
  t.update(packet(v, 3, 1, 1000, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 2, 2, 53, 1, 1000, { proto: Transport.UDP }));
  assert.deepEqual([t.firstTs[udp0], t.lastTs[udp0]], [1, 3]);
  assert.deepEqual([t.packets[udp0 * 2], t.packets[udp0 * 2 + 1], t.bytes[udp0 * 2], t.bytes[udp0 * 2 + 1]], [2, 1, 120, 60]);
});

test('UDP client: a packet from a port below 1024 to one at or above 1024 is the server\'s', () => {
  const t = table();
  const v = new PacketView();
  const c = (sport: number, dport: number): number => t.clientPort(t.update(packet(v, 1, 1, sport, 2, dport, { proto: Transport.UDP })));
  assert.equal(c(1023, 1024), 1024, 'well-known to ephemeral: a reply');
  assert.equal(c(1024, 1023), 1024, 'ephemeral to well-known: the sender is the client');
  assert.equal(c(1022, 1023), 1022, 'both well-known: the first sender');
  assert.equal(c(2000, 3000), 2000, 'both ephemeral: the first sender');
});

test('TCP states: data from the server while the SYN waits completes the handshake out of sight; the client\'s does not', () => {
  const t = table();
  const v = new PacketView();
  const s = t.update(packet(v, 1, 1, 40000, 2, 80, { flags: SYN, seq: 1 }));
  t.update(packet(v, 1.1, 1, 40000, 2, 80, { flags: ACK, seq: 2 }));
  assert.equal(state(t, s), 'syn_sent', 'the client alone cannot complete it');
  t.update(packet(v, 1.2, 2, 80, 1, 40000, { flags: ACK, seq: 100 }));
  assert.equal(state(t, s), 'established');
  // SYN/ACK then the client's ACK; a server ACK in syn_received does not establish.
  const h = t.update(packet(v, 2, 1, 40001, 2, 80, { flags: SYN, seq: 1 }));
  t.update(packet(v, 2.1, 2, 80, 1, 40001, { flags: SYN | ACK, seq: 50 }));
  assert.equal(state(t, h), 'syn_received');
  t.update(packet(v, 2.15, 2, 80, 1, 40001, { flags: ACK, seq: 51 }));
  assert.equal(state(t, h), 'syn_received', 'the server\'s ACK is not the third packet of the handshake');
  t.update(packet(v, 2.2, 1, 40001, 2, 80, { flags: ACK, seq: 2 }));
  assert.equal(state(t, h), 'established');
  // A SYN/ACK in an established flow changes nothing; a FIN after a RST keeps it reset.
  t.update(packet(v, 2.3, 2, 80, 1, 40001, { flags: SYN | ACK, seq: 50 }));
  assert.equal(state(t, h), 'established');
  t.update(packet(v, 2.4, 2, 80, 1, 40001, { flags: RST | ACK }));
  t.update(packet(v, 2.5, 1, 40001, 2, 80, { flags: FIN | ACK }));
  assert.equal(state(t, h), 'reset');
  // A first packet that is a SYN/ACK starts in syn_received; a FIN from the same side twice is still closing.
  const r = t.update(packet(v, 3, 2, 443, 1, 50000, { flags: SYN | ACK, seq: 9 }));
  assert.equal(state(t, r), 'syn_received');
  const f = t.update(packet(v, 4, 1, 40002, 2, 80, { flags: ACK }));
  t.update(packet(v, 4.1, 1, 40002, 2, 80, { flags: FIN | ACK }));
  t.update(packet(v, 4.2, 1, 40002, 2, 80, { flags: FIN | ACK }));
  assert.equal(state(t, f), 'closing');
  t.update(packet(v, 4.3, 2, 80, 1, 40002, { flags: FIN | ACK }));
  assert.equal(state(t, f), 'closed');
});

test('synEvent: a retransmitted SYN, a SYN/ACK with a new ISN, a port reuse, and none otherwise', () => {
  const t = table();
  const v = new PacketView();
  t.update(packet(v, 1, 1, 40000, 2, 80, { flags: SYN, seq: 1000 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'a first SYN');
  t.update(packet(v, 2, 1, 40000, 2, 80, { flags: SYN, seq: 1000 }));
  assert.equal(t.synEvent, TcpSynEvent.SAME_ISN_SYN);
  t.update(packet(v, 2.1, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 5000 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'the first SYN/ACK sets the server\'s ISN');
  t.update(packet(v, 2.2, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 5000 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'a retransmitted SYN/ACK, same ISN');
  t.update(packet(v, 2.3, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 6000 }));
  assert.equal(t.synEvent, TcpSynEvent.SYN_ACK_NEW_ISN);
  t.update(packet(v, 2.35, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 6000 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'the new ISN replaced the old one');
  t.update(packet(v, 2.4, 1, 40000, 2, 80, { flags: ACK, seq: 1001 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE);
  t.update(packet(v, 3, 1, 40000, 2, 80, { flags: SYN, seq: 99 }));
  assert.equal(t.synEvent, TcpSynEvent.PORT_REUSE);
  assert.equal(t.tcpStreams, 2);
  t.update(packet(v, 4, 2, 80, 1, 40000, { flags: SYN, seq: 7 }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'a SYN from the other side, whose ISN is not known yet');
  t.update(packet(v, 5, 1, 40001, 2, 80, { proto: Transport.UDP }));
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'reset for every packet');
});

test('the timeout class follows the TCP state: handshake, established, closed and reset flows each keep their own timeout', () => {
  const t = table({ timeouts: { tcpHandshake: 5, tcpEstablished: 50, tcpClosed: 2, udp: 1000, icmp: 3, other: 7 } });
  const v = new PacketView();
  const ended = endings(t);
  // 1001: completes its handshake; 1002: closes with FINs; 1003: reset; 1004: SYN only; 1005: SYN/ACK only.
  t.update(packet(v, 0, 1, 1001, 2, 80, { flags: SYN, seq: 1 }));
  t.update(packet(v, 0, 2, 80, 1, 1001, { flags: SYN | ACK, seq: 1 }));
  t.update(packet(v, 0, 1, 1001, 2, 80, { flags: ACK, seq: 2 }));
  t.update(packet(v, 0, 1, 1002, 2, 80, { flags: ACK }));
  t.update(packet(v, 0, 1, 1002, 2, 80, { flags: FIN | ACK }));
  t.update(packet(v, 0, 2, 80, 1, 1002, { flags: FIN | ACK }));
  t.update(packet(v, 0, 1, 1003, 2, 80, { flags: ACK }));
  t.update(packet(v, 0, 2, 80, 1, 1003, { flags: RST }));
  t.update(packet(v, 0, 1, 1004, 2, 80, { flags: SYN }));
  t.update(packet(v, 0, 2, 80, 1, 1005, { flags: SYN | ACK }));
  const icmp = packet(v, 0, 1, 0, 2, 0, { proto: Transport.ICMP });
  icmp.icmpType = 3;
  t.update(icmp);
  const gre = packet(v, 0, 1, 0, 2, 0, { proto: Transport.OTHER_IP });
  gre.ipProto = 47;
  t.update(gre);
  const tick = (ts: number): void => { t.update(packet(v, ts, 9, 9, 8, 8, { proto: Transport.UDP })); };
  tick(2);
  assert.equal(ended.length, 0, 'at exactly its timeout a flow is not idle yet');
  tick(3);
  assert.deepEqual(ended.map(([p]) => p).sort((a, b) => a - b), [1002, 1003], 'closed and reset flows: 2 s');
  tick(4);
  assert.equal(ended.length, 3, 'ICMP: 3 s');
  tick(6);
  assert.deepEqual(ended.slice(3).map(([p]) => p).sort((a, b) => a - b), [1004, 1005], 'handshakes: 5 s');
  tick(8);
  assert.equal(ended.length, 6, 'other IP: 7 s');
  tick(50);
  assert.equal(ended.length, 6, 'the completed handshake is established: 50 s');
  tick(51);
  assert.deepEqual(ended[6], [1001, EndReason.IDLE]);
  assert.equal(t.expired, 7);
});

test('idle flows are swept at most once a second of packet time', () => {
  const t = table({ timeouts: { udp: 10 } });
  const v = new PacketView();
  const ended = endings(t);
  t.update(packet(v, 0, 1, 5000, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 9.5, 3, 5001, 4, 53, { proto: Transport.UDP })); // a sweep at 9.5
  t.update(packet(v, 10.2, 3, 5001, 4, 53, { proto: Transport.UDP }));
  assert.equal(ended.length, 0, 'the flow is idle past 10 s, but the last sweep was less than a second ago');
  t.update(packet(v, 10.5, 3, 5001, 4, 53, { proto: Transport.UDP }));
  assert.deepEqual(ended, [[5000, EndReason.IDLE]], 'a second after the last sweep');
});

test('a quoted TCP header (in an ICMP error) opens a flow without counting it, and a quoted SYN with a new ISN starts a new one', () => {
  const { t, at } = tableWithClock();
  const v = new PacketView();
  const ended = endings(t);
  const quoted = (ts: number, sport: number, dport: number, flags: number, seq: number, inner: { src?: number; dst?: number; proto?: number; version?: 0 | 4 | 6 } = {}): PacketView => {
    packet(v, ts, 9, 0, 1, 0, { proto: Transport.ICMP });
    v.icmpType = 3;
    v.innerIpVersion = inner.version ?? 4;
    v.innerProto = inner.proto ?? Transport.TCP;
    v.innerSrc.fill(0); v.innerDst.fill(0);
    v.innerSrc[0] = (10 << 24) + (inner.src ?? 1);
    v.innerDst[0] = (10 << 24) + (inner.dst ?? 2);
    v.innerSrcPort = sport;
    v.innerDstPort = dport;
    v.innerTcpFlags = flags;
    v.innerTcpSeq = seq;
    at(ts);
    return v;
  };
  t.updateQuoted(quoted(1, 40000, 80, SYN, 500));
  assert.equal(t.tcpStreams, 1, 'a quoted SYN with no flow opens one');
  assert.equal(t.active, 1);
  const s = t.update(packet(v, 1.1, 1, 40000, 2, 80, { flags: SYN, seq: 500 }));
  assert.equal(t.tcpStreams, 1, 'the SYN itself then finds that flow');
  assert.equal(t.clientPort(s), 40000, 'a quoted SYN: its sender is the client');
  assert.deepEqual([t.packets[s * 2], t.packets[s * 2 + 1]], [1, 0], 'the quoted header was not counted');
  assert.equal(t.synEvent, TcpSynEvent.NONE, 'the quoted SYN did not set the ISN');
  t.updateQuoted(quoted(2, 40000, 80, SYN, 500));
  assert.equal(t.tcpStreams, 1, 'a quoted SYN with the known ISN: nothing');
  t.updateQuoted(quoted(2.1, 40000, 80, ACK, 7777));
  t.updateQuoted(quoted(2.2, 40000, 80, SYN | ACK, 7777));
  assert.equal(t.tcpStreams, 1, 'a quoted non-SYN or SYN/ACK with another seq: nothing');
  t.updateQuoted(quoted(2.3, 80, 40000, SYN, 1, { src: 2, dst: 1 }));
  assert.equal(t.tcpStreams, 1, 'a quoted SYN from the side whose ISN is not known: nothing');
  t.updateQuoted(quoted(3, 40000, 80, SYN, 600));
  assert.equal(t.tcpStreams, 2, 'a quoted SYN with a new ISN: port reuse');
  assert.deepEqual(ended, [[40000, EndReason.PORT_REUSE]]);
  assert.equal(t.active, 1);
  // A quoted SYN/ACK opens a flow whose client is the SYN/ACK's receiver.
  t.updateQuoted(quoted(4, 443, 50000, SYN | ACK, 1, { src: 5, dst: 6 }));
  assert.equal(t.tcpStreams, 3);
  const r = t.update(packet(v, 4.1, 6, 50000, 5, 443, { flags: ACK, seq: 2 }));
  assert.equal(t.tcpStreams, 3);
  assert.equal(t.clientPort(r), 50000);
  assert.equal(t.dir, Dir.CLIENT_TO_SERVER);
  // Nothing for a quoted header that is not TCP, has no flags, or no inner IP.
  t.updateQuoted(quoted(5, 1, 2, SYN, 1, { proto: Transport.UDP }));
  t.updateQuoted(quoted(5, 1, 3, -1, 1));
  t.updateQuoted(quoted(5, 1, 4, SYN, 1, { version: 0 }));
  assert.equal(t.tcpStreams, 3);
  assert.equal(t.active, 2);
});

test('a confirmed clock jump refreshes the flow of the packet that announced it, so that flow is not expired with the rest', () => {
  const t = table({ timeouts: { udp: 10 } });
  const v = new PacketView();
  const ended = endings(t);
  t.update(packet(v, 100, 1, 1000, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 5000, 3, 1001, 4, 53, { proto: Transport.UDP })); // ahead: does not move the clock
  t.update(packet(v, 5000.5, 5, 1002, 6, 53, { proto: Transport.UDP })); // confirms the jump
  assert.deepEqual(ended, [[1000, EndReason.IDLE]], 'only the flow last seen before the jump');
  assert.equal(t.active, 2);
  t.update(packet(v, 5005, 5, 1002, 6, 53, { proto: Transport.UDP }));
  t.update(packet(v, 5010.8, 5, 1002, 6, 53, { proto: Transport.UDP }));
  assert.deepEqual(ended.slice(1), [[1001, EndReason.IDLE]], 'the announcing flow counts from the new time');
});

test('endAll ends every live flow with END_OF_INPUT; lookups find nothing afterwards', () => {
  const t = table();
  const v = new PacketView();
  const ended = endings(t);
  t.update(packet(v, 1, 1, 1001, 2, 80, { flags: SYN }));
  t.update(packet(v, 2, 1, 1002, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 3, 1, 1003, 2, 80, { flags: ACK }));
  t.endAll();
  assert.deepEqual(ended, [[1001, EndReason.END_OF_INPUT], [1003, EndReason.END_OF_INPUT], [1002, EndReason.END_OF_INPUT]], 'by class, oldest first in each');
  assert.equal(t.active, 0);
  t.update(packet(v, 4, 1, 1002, 2, 53, { proto: Transport.UDP }));
  assert.equal(t.udpStreams, 2, 'a new flow after the end');
});

test('lookups through many inserts and deletions: a live flow is always found again, never duplicated', () => {
  const t = table({ maxFlows: 64, timeouts: { udp: 1 } });
  const v = new PacketView();
  const live = new Map<number, number>(); // port -> slot
  const streamOf = new Map<number, number>(); // port -> its udp.stream, kept when its flow ends and resumes
  t.setListener({ onFlowEnd: (slot) => { live.delete(t.clientPort(slot)); } });
  let seed = 99;
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed >>> 8; };
  for (let step = 0; step < 20000; step++) {
    const port = 1024 + (rand() % 90);
    const streams = t.udpStreams;
    const slot = t.update(packet(v, step * 0.01, 1, port, 2, 9, { proto: Transport.UDP }));
    const known = live.get(port);
    if (known !== undefined) {
      assert.equal(slot, known, `port ${port} at step ${step}: its live flow`);
      assert.equal(t.udpStreams, streams);
    } else {
      const stream = streamOf.get(port);
      assert.equal(t.udpStreams, stream === undefined ? streams + 1 : streams, `port ${port} at step ${step}: a new flow`);
      assert.equal(t.streamIndex[slot], stream ?? streams, `port ${port} at step ${step}: a resumed conversation keeps its stream`);
      streamOf.set(port, t.streamIndex[slot]!);
      live.set(port, slot);
    }
    assert.equal(t.active, live.size);
  }
  assert.ok(t.expired > 100 && t.evicted > 100, `both kinds of deletion happen: expired ${t.expired}, evicted ${t.evicted}`);
});

test('a whole quoted UDP header (in an ICMP error) opens a UDP flow and a udp.stream when none exists, without counting it', () => {
  const { t, at } = tableWithClock();
  const v = new PacketView();
  const quotedUdp = (ts: number, src: number, sport: number, dst: number, dport: number, whole: boolean): PacketView => {
    packet(v, ts, 9, 0, src, 0, { proto: Transport.ICMP });
    v.icmpType = 3;
    v.innerIpVersion = 4;
    v.innerProto = Transport.UDP;
    v.innerSrc.fill(0); v.innerDst.fill(0);
    v.innerSrc[0] = (10 << 24) + src;
    v.innerDst[0] = (10 << 24) + dst;
    v.innerSrcPort = sport;
    v.innerDstPort = dport;
    v.innerUdpHeader = whole;
    at(ts);
    return v;
  };
  t.updateQuoted(quotedUdp(1, 1, 5000, 2, 161, false));
  assert.equal(t.udpStreams, 0, 'no whole header (or a length field below 8): nothing, as in Wireshark');
  t.updateQuoted(quotedUdp(2, 1, 5000, 2, 161, true));
  assert.equal(t.udpStreams, 1);
  assert.equal(t.active, 1);
  const s = t.update(packet(v, 3, 2, 161, 1, 5000, { proto: Transport.UDP }));
  assert.equal(t.udpStreams, 1, 'the reply finds the flow the quote opened');
  assert.equal(t.clientPort(s), 5000, 'the quoted datagram\'s sender is the client');
  assert.deepEqual([t.packets[s * 2], t.packets[s * 2 + 1]], [0, 1], 'the quoted header was not counted');
  t.updateQuoted(quotedUdp(4, 1, 5000, 2, 161, true));
  assert.equal(t.udpStreams, 1, 'a quote of a live flow: nothing');
});

test('a TCP and a UDP conversation resuming after their flow expired keep their stream numbers; a SYN with a new ISN is port reuse', () => {
  const t = table({ timeouts: { udp: 10, tcpEstablished: 10, tcpHandshake: 10 } });
  const v = new PacketView();
  const ended = endings(t);
  t.update(packet(v, 1, 1, 5000, 2, 53, { proto: Transport.UDP }));
  t.update(packet(v, 1, 1, 40000, 2, 80, { flags: SYN, seq: 100 }));
  t.update(packet(v, 1.1, 2, 80, 1, 40000, { flags: SYN | ACK, seq: 900 }));
  t.update(packet(v, 2, 3, 5001, 4, 53, { proto: Transport.UDP })); // stream 1
  t.update(packet(v, 3, 1, 40001, 2, 80, { flags: SYN, seq: 7 })); // tcp.stream 1
  for (let s = 5; s <= 30; s += 5) t.update(packet(v, s, 5, 6000, 6, 53, { proto: Transport.UDP })); // udp.stream 2, moves the clock
  assert.equal(ended.filter(([, r]) => r === EndReason.IDLE).length, 4, 'all four expired');
  assert.equal(t.ended.size, 4);
  const u = t.update(packet(v, 31, 2, 53, 1, 5000, { proto: Transport.UDP }));
  assert.equal(t.streamIndex[u], 0, 'the UDP conversation keeps udp.stream 0');
  assert.equal(t.clientPort(u), 5000, 'and its client');
  const c = t.update(packet(v, 31.1, 1, 40000, 2, 80, { flags: ACK, seq: 101 }));
  assert.equal(t.streamIndex[c], 0, 'the TCP conversation keeps tcp.stream 0');
  assert.equal(t.dir, Dir.CLIENT_TO_SERVER);
  const r = t.update(packet(v, 31.2, 1, 40000, 2, 80, { flags: SYN, seq: 100 }));
  assert.equal([r, t.synEvent].join(), [c, TcpSynEvent.SAME_ISN_SYN].join(), 'the remembered base_seq: a SYN with it is a retransmitted SYN');
  const p = t.update(packet(v, 31.3, 1, 40001, 2, 80, { flags: SYN, seq: 8 }));
  assert.equal(t.synEvent, TcpSynEvent.PORT_REUSE, 'a SYN with another ISN than the remembered one: a new stream');
  assert.equal(t.streamIndex[p], 2);
  assert.deepEqual([t.tcpStreams, t.udpStreams, t.resumed, t.forgotten], [3, 3, 2, 0]);
  assert.equal(t.ended.size, 1, 'the UDP conversation of port 5001 is still remembered, the resumed ones were released');
});

test('ended conversations: more than the table holds are forgotten and counted, the memory stays what it was', async () => {
  const { EndedConversations } = await import('../agent/flow/ended-conversations.js');
  const m = new EndedConversations(64);
  assert.equal(m.capacity, 64);
  const buffers = m.bytes;
  const a = new Uint32Array(4);
  const b = new Uint32Array(4);
  // Keys that differ in port only; the hash is spread like the flow table's.
  const hash = (i: number): number => Math.imul(i, 0x9e3779b1) | 0;
  for (let i = 0; i < 10_000; i++) m.remember(hash(i), 4 << 8 | 17, i, a, b, 0, i, -1, -1, true);
  assert.equal(m.size, 64);
  assert.equal(m.forgotten, 10_000 - 64);
  assert.equal(m.bytes, buffers, 'no growth');
  assert.equal(m.capacity, 64);
  // The most recent key of every set is still there, with its stream number; the first ones are gone.
  const last = m.find(hash(9999), 4 << 8 | 17, 9999, a, b);
  assert.ok(last >= 0);
  assert.equal(m.streamIndex(last), 9999);
  assert.equal(m.find(hash(0), 4 << 8 | 17, 0, a, b), -1);
  // A conversation that resumed and ended again, as the flow table does it: its entry is released when its new flow
  // starts, and remembered again when that flow ends, in the slot it left (nothing else is forgotten).
  m.release(last);
  assert.equal(m.size, 63);
  m.remember(hash(9999), 4 << 8 | 17, 9999, a, b, 0, 42, 5, -1, false);
  assert.equal(m.size, 64);
  assert.equal(m.forgotten, 10_000 - 64);
  const again = m.find(hash(9999), 4 << 8 | 17, 9999, a, b);
  assert.deepEqual([m.streamIndex(again), m.baseSeq(again, 0), m.baseSeq(again, 1), m.clientIsA(again)], [42, 5, -1, false]);
  m.release(again);
  assert.equal(m.size, 63);
  assert.equal(m.find(hash(9999), 4 << 8 | 17, 9999, a, b), -1);
});
