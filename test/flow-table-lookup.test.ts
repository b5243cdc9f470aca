/**
 * The flow table's lookup (hash index and the cache of recently seen flows)
 * against a plain map of live flows: many keys through a small table, so
 * flows are evicted, expire and come back, and cache entries go stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../common/config.js';
import { PacketView, TcpFlag, Transport } from '../agent/decode/index.js';
import { PacketClock } from '../agent/core/packet-clock.js';
import { FlowTable } from '../agent/flow/index.js';

/** Deterministic pseudo-random numbers (xorshift32). */
function random(seed: number): () => number {
  let x = seed;
  return (): number => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

test('every packet finds its live flow, or starts one when its flow has ended', () => {
  const clock = new PacketClock();
  const t = new FlowTable(buildConfig({ flows: { maxFlows: 64 } }).flows, clock);
  const live = new Map<string, number>(); // key -> slot
  const keyOf: (string | undefined)[] = [];
  let started = -1;
  t.setListener({
    onFlowStart(slot: number): void { started = slot; },
    onFlowEnd(slot: number): void { live.delete(keyOf[slot]!); keyOf[slot] = undefined; },
  });
  const v = new PacketView();
  const rnd = random(12345);
  let ts = 0;
  for (let i = 0; i < 50_000; i++) {
    ts += rnd() < 0.001 ? 200 : rnd() * 0.01; // now and then a gap past the idle timeouts
    const host = Math.floor(rnd() * 40);
    const port = 1024 + Math.floor(rnd() * 8);
    const v6 = host % 5 === 0;
    const udp = host % 3 === 0;
    const reply = rnd() < 0.5;
    v.reset();
    v.ts = ts;
    v.ipVersion = v6 ? 6 : 4;
    const client = v6 ? [0x20010db8, 0, 0, host] : [(10 << 24) + host, 0, 0, 0];
    const server = v6 ? [0x20010db8, 0, 0, 0x8000 + (host % 7)] : [(10 << 24) + 200 + (host % 7), 0, 0, 0];
    for (let w = 0; w < 4; w++) { v.src[w] = reply ? server[w]! : client[w]!; v.dst[w] = reply ? client[w]! : server[w]!; }
    v.transport = udp ? Transport.UDP : Transport.TCP;
    v.ipProto = v.transport;
    v.srcPort = reply ? 80 : port;
    v.dstPort = reply ? port : 80;
    v.tcpFlags = TcpFlag.ACK;
    v.seq = 1000;
    v.wireLen = 60;
    clock.observe(v.ts);
    t.advance();
    const key = `${v.ipVersion} ${v.transport} ${client.join('.')} ${server.join('.')} ${port}`;
    const known = live.get(key);
    started = -1;
    const slot = t.update(v);
    if (known === undefined) {
      assert.equal(started, slot, `packet ${i} starts a flow`);
      live.set(key, slot);
      keyOf[slot] = key;
    } else {
      assert.equal(slot, known, `packet ${i} finds its flow`);
      assert.equal(started, -1);
    }
    assert.equal(t.active, live.size);
  }
  assert.ok(t.evicted > 0 && t.expired > 0, 'flows were evicted and expired');
});
