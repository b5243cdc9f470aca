/**
 * dns.time of the whole capture (the report's stats) holds every response
 * time of every window, negative ones (a response stamped before its query)
 * included, while each window's figures leave the negative ones out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dns, type PcapRecordSpec } from './helpers/capture-writer.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { at, udp4 } from './helpers/crafted-frames.js';

const query = (id: number): Buffer => dns({ id, qname: 'www.example.com', qtype: 1 });
const answer = (id: number): Buffer => dns({ id, response: true, rcode: 0, qname: 'www.example.com', qtype: 1, answers: 1 });

test('dns: the capture\'s dns.time takes every window\'s times and the negative ones; a window\'s leaves those out', async () => {
  const records: PcapRecordSpec[] = [];
  // Window 0: times 10, 20, 30 ms, and a response stamped 5 ms before its query.
  for (const [i, ms] of [10, 20, 30].entries()) {
    records.push(at(1_000_000 + i * 100_000, udp4('10.0.0.1', 40000 + i, '10.0.0.53', 53, query(i + 1))));
    records.push(at(1_000_000 + i * 100_000 + ms * 1000, udp4('10.0.0.53', 53, '10.0.0.1', 40000 + i, answer(i + 1))));
  }
  records.push(at(2_000_000, udp4('10.0.0.1', 41000, '10.0.0.53', 53, query(9))));
  records.push(at(1_995_000, udp4('10.0.0.53', 53, '10.0.0.1', 41000, answer(9))));
  // Window 1 (from 10 s): times 40 and 50 ms, the last window left open until the end of input.
  for (const [i, ms] of [40, 50].entries()) {
    records.push(at(11_000_000 + i * 100_000, udp4('10.0.0.2', 42000 + i, '10.0.0.53', 53, query(i + 20))));
    records.push(at(11_000_000 + i * 100_000 + ms * 1000, udp4('10.0.0.53', 53, '10.0.0.2', 42000 + i, answer(i + 20))));
  }
  const r = await analyzeCrafted(records, {}, 'dns-time-windows');
  assert.equal(r.windows.length, 2);
  assert.equal(r.windows[0]!.metrics['dns']!['count'], 3);
  assert.equal(r.windows[1]!.metrics['dns']!['count'], 2);
  const s = r.stats?.['dns.time'];
  assert.deepEqual(s, { count: 6, p50: 0.025, p90: 0.05, p99: 0.05, max: 0.05 });
});
