/**
 * Capture-level counters the window stage and the flow table keep, end to end
 * through a crafted capture: timestamps that go back before the current
 * window's start are counted in that window, and flows evicted by the flow
 * table's cap reach capture.flowsEvicted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { ethernet, ipv4, Proto, udp, EtherTypes, type PcapRecordSpec } from './helpers/capture-writer.js';

function udpFrame(tsSec: number, tsUsec: number, srcPort: number): PcapRecordSpec {
  const payload = udp({ srcPort, dstPort: 9999, payload: Buffer.from('x') });
  const ip = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: Proto.UDP, payload });
  return { tsSec, tsSub: tsUsec, data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4, ip) };
}

test('a timestamp before the current window\'s start is counted as out of order in that window', async () => {
  const base = 1_700_000_000;
  const report = await analyzeCrafted([
    udpFrame(base, 100_000, 1000),
    udpFrame(base + 1, 500_000, 1000), // opens the second window
    udpFrame(base, 700_000, 1000), // back into the first window's time: counted in the second
    udpFrame(base + 1, 800_000, 1000),
    udpFrame(base + 1, 600_000, 1000), // earlier than the one before, but inside the window: in order
    udpFrame(base + 1, 0, 1000), // exactly at the window's start: not before it, in order
  ], { windows: { seconds: 1 } }, 'out-of-order');
  assert.deepEqual(report.windows.map((w) => w.outOfOrderTimestamps), [0, 1]);
  assert.deepEqual(report.windows.map((w) => w.packets), [1, 5]);
});

test('flows evicted by the flow table\'s cap are counted in capture.flowsEvicted', async () => {
  const base = 1_700_000_000;
  const frames = Array.from({ length: 40 }, (_, i) => udpFrame(base, i * 1000, 2000 + i));
  const capped = await analyzeCrafted(frames, { flows: { maxFlows: 16 } }, 'evicted');
  assert.equal(capped.capture.flowsEvicted, 40 - 16);
  const roomy = await analyzeCrafted(frames, { flows: { maxFlows: 64 } }, 'not-evicted');
  assert.equal(roomy.capture.flowsEvicted, 0);
});
