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

type Ref = Record<string, string>;
const column = (name: string) => (ref: Ref): number | null => (ref[name] === '' ? null : Number(ref[name]));
/** Sums "type/code=frames" entries of reference.tsv's icmp_types for one ICMP type. */
const icmpType = (type: number) => (ref: Ref): number => (ref['icmp_types'] ?? '').split(';').filter(Boolean)
  .map((kv) => kv.split('=')).filter(([k]) => k!.split('/')[0] === String(type)).reduce((sum, [, v]) => sum + Number(v), 0);
const counter = (name: string) => (r: Report): number | undefined => r.counters[name];
const median = (name: string) => (r: Report): number | null | undefined => r.stats?.[name]?.p50;

/** Report figure -> [tshark's figure from reference.tsv, ours from the report, relative tolerance]. */
const FIGURES: Record<string, [(ref: Ref) => number | null, (r: Report) => number | null | undefined, number]> = {
  packets: [column('packets'), (r) => r.capture.packets, 0],
  tcp: [column('tcp_frames'), counter('tcp'), 0],
  udp: [column('udp_frames'), counter('udp'), 0],
  dns: [column('dns_frames'), counter('dns'), 0],
  icmp: [column('icmp_frames'), counter('icmp'), 0],
  icmpv6: [column('icmpv6_frames'), counter('icmpv6'), 0],
  'ip.fragments': [column('ip_fragments'), counter('ip.fragments'), 0],
  'tcp.streams': [column('tcp_streams'), counter('tcp.streams'), 0],
  'udp.streams': [column('udp_streams'), counter('udp.streams'), 0],
  'tcp.analysis.retransmission': [column('tcp_retransmission'), counter('tcp.analysis.retransmission'), 0],
  'tcp.analysis.fast_retransmission': [column('tcp_fast_retransmission'), counter('tcp.analysis.fast_retransmission'), 0],
  'tcp.analysis.spurious_retransmission': [column('tcp_spurious_retransmission'), counter('tcp.analysis.spurious_retransmission'), 0],
  'tcp.analysis.out_of_order': [column('tcp_out_of_order'), counter('tcp.analysis.out_of_order'), 0],
  'tcp.analysis.duplicate_ack': [column('tcp_duplicate_ack'), counter('tcp.analysis.duplicate_ack'), 0],
  'tcp.analysis.lost_segment': [column('tcp_lost_segment'), counter('tcp.analysis.lost_segment'), 0],
  'tcp.analysis.ack_lost_segment': [column('tcp_ack_lost_segment'), counter('tcp.analysis.ack_lost_segment'), 0],
  'tcp.analysis.keep_alive': [column('tcp_keep_alive'), counter('tcp.analysis.keep_alive'), 0],
  'tcp.analysis.keep_alive_ack': [column('tcp_keep_alive_ack'), counter('tcp.analysis.keep_alive_ack'), 0],
  'tcp.analysis.window_update': [column('tcp_window_update'), counter('tcp.analysis.window_update'), 0],
  'tcp.analysis.zero_window': [column('tcp_zero_window'), counter('tcp.analysis.zero_window'), 0],
  'tcp.analysis.zero_window_probe': [column('tcp_zero_window_probe'), counter('tcp.analysis.zero_window_probe'), 0],
  'tcp.analysis.window_full': [column('tcp_window_full'), counter('tcp.analysis.window_full'), 0],
  'tcp.flags.reset': [column('tcp_rst'), counter('tcp.flags.reset'), 0],
  'tcp.flags.syn': [column('tcp_syn_any'), counter('tcp.flags.syn'), 0],
  'dns.flags.response': [column('dns_responses'), counter('dns.flags.response'), 0],
  'dns.flags.rcode.nxdomain': [column('dns_nxdomain'), counter('dns.flags.rcode.nxdomain'), 0],
  'icmp.type.3': [icmpType(3), counter('icmp.type.3'), 0],
  'icmp.type.11': [icmpType(11), counter('icmp.type.11'), 0],
  'tcp.analysis.ack_rtt.p50': [column('tcp_ack_rtt_median_s'), median('tcp.analysis.ack_rtt'), 0.01],
  'dns.time.p50': [column('dns_time_median_s'), median('dns.time'), 0.01],
};

/** Known differences by design: file -> figure -> [ours, tshark, cause]. */
const EXCEPTIONS: Record<string, Record<string, [number, number, string]>> = {
  'pcpp_pcapng-example.pcapng': {
    'tcp.analysis.ack_rtt.p50': [0.000052145, 0.000149,
      'interface 1\'s timestamps lie 1.8e13 s (year 586524) after interface 0\'s; packet times are doubles counted from the first '
      + 'packet, which that far out keep only ~4 ms resolution, so sub-4 ms ACK RTTs on interface 1 round to 0 (hidden, like Wireshark '
      + 'hides 0) and 37 of tshark\'s 78 samples are missing'],
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
    for (const [figure, [theirsOf, oursOf, tolerance]] of Object.entries(FIGURES)) {
      const theirs = theirsOf(ref);
      if (theirs === null) continue; // tshark has no value (e.g. no RTT samples)
      const ours = oursOf(report);
      const exception = known[figure];
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      if (exception) {
        assert.deepEqual([ours, theirs], [exception[0], exception[1]], `${figure}: listed difference changed (${exception[2]})`);
      } else if (tolerance === 0) {
        assert.equal(ours, theirs, `${figure}: ours ${ours}, tshark ${theirs}`);
      } else {
        assert.ok(typeof ours === 'number' && Math.abs(ours - theirs) <= tolerance * Math.abs(theirs),
          `${figure}: ours ${ours}, tshark ${theirs} (tolerance ${tolerance * 100} %)`);
      }
    }
  });
}
