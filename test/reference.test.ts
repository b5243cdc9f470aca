/**
 * Agreement with Wireshark: for every shared capture, the report's frame and
 * stream counters equal tshark 4.0.17's figures in ../shared/pcaps/reference.tsv.
 * A difference is allowed only where it is listed below with its cause, and
 * the test fails if a listed difference disappears (so the list stays true).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../common/config.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import type { Report } from '../common/report.js';
import { SHARED_PCAPS, readTsv } from './helpers/paths.js';

/** Report figure -> reference.tsv column. */
const FIGURES: Record<string, [string, (r: Report) => number | undefined]> = {
  packets: ['packets', (r) => r.capture.packets],
  tcp: ['tcp_frames', (r) => r.counters['tcp']],
  udp: ['udp_frames', (r) => r.counters['udp']],
  dns: ['dns_frames', (r) => r.counters['dns']],
  icmp: ['icmp_frames', (r) => r.counters['icmp']],
  icmpv6: ['icmpv6_frames', (r) => r.counters['icmpv6']],
  'ip.fragments': ['ip_fragments', (r) => r.counters['ip.fragments']],
  'tcp.streams': ['tcp_streams', (r) => r.counters['tcp.streams']],
  'udp.streams': ['udp_streams', (r) => r.counters['udp.streams']],
};

/** Known differences by design: file -> figure -> [ours, tshark, cause]. */
const EXCEPTIONS: Record<string, Record<string, [number, number, string]>> = {
  'ppa1e_evilprogram.pcap': {
    'tcp.streams': [93, 92,
      'frame 657 is a RST 8,820 s after the last packet of its connection; our flow expired after flows.timeouts.tcpEstablished '
      + '(3600 s of packet time) so the RST starts a new flow, while Wireshark never times out a conversation'],
  },
};

const references = readTsv(readFileSync(join(SHARED_PCAPS, 'reference.tsv'), 'utf8'));
const config = loadConfig();

test('reference.tsv lists the shared captures', () => {
  assert.ok(references.length >= 30, `only ${references.length} rows`);
});

for (const ref of references) {
  test(`agrees with tshark: ${ref['file']}`, async () => {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, ref['file']!), config);
    const known = EXCEPTIONS[ref['file']!] ?? {};
    for (const [figure, [column, read]] of Object.entries(FIGURES)) {
      const theirs = Number(ref[column]);
      const ours = read(report);
      const exception = known[figure];
      if (exception) {
        assert.deepEqual([ours, theirs], [exception[0], exception[1]], `${figure}: listed difference changed (${exception[2]})`);
      } else {
        assert.equal(ours, theirs, `${figure}: ours ${ours}, tshark ${theirs}`);
      }
    }
  });
}
