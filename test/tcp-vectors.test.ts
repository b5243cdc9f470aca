/**
 * Crafted TCP sequences (test/fixtures/tcp-vectors/tN.py: SYN retransmission
 * with the same ISN, port reuse with a new ISN, ICMP-quoted headers, lost and
 * out-of-order segments, dup ACKs, fast vs RTO retransmission, spurious
 * retransmission, keep-alives, zero window and probes, window update and
 * full, ACKed unseen segments, the out-of-order threshold at the initial RTT;
 * t9, t10: long flows where both sides retransmit across several RTO cycles
 * with duplicate ACKs between, t10 across the sequence-number wrap, with
 * repacketized retransmissions and a window change among the duplicate ACKs;
 * t11: time deltas at their limits, compared in whole nanoseconds as unsigned
 * integers as Wireshark does, and a first RTT measured backwards; t12: SYN
 * and pure-ACK headers quoted in ICMP errors set the handshake times)
 * and tshark 4.0's verdict on every frame (expected.tsv, made by make.sh):
 * our TCP analyzer must flag the same frames and give the same ACK RTTs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../common/config.js';
import { CaptureReader, END, NEED_DATA } from '../agent/capture/index.js';
import { Pipeline } from '../agent/pipeline.js';
import { TcpAnalysisFlag as F, type TcpPacketResult } from '../agent/analyzers/index.js';
import { REPO_ROOT, readTsv } from './helpers/paths.js';

const DIR = join(REPO_ROOT, 'test', 'fixtures', 'tcp-vectors');
const NAMES: Record<string, number> = {
  retransmission: F.RETRANSMISSION | F.FAST_RETRANSMISSION | F.SPURIOUS_RETRANSMISSION,
  fast_retransmission: F.FAST_RETRANSMISSION,
  spurious_retransmission: F.SPURIOUS_RETRANSMISSION,
  out_of_order: F.OUT_OF_ORDER,
  duplicate_ack: F.DUPLICATE_ACK,
  lost_segment: F.LOST_PACKET,
  ack_lost_segment: F.ACK_LOST_PACKET,
  keep_alive: F.KEEP_ALIVE,
  keep_alive_ack: F.KEEP_ALIVE_ACK,
  window_update: F.WINDOW_UPDATE,
  zero_window: F.ZERO_WINDOW,
  zero_window_probe: F.ZERO_WINDOW_PROBE,
  zero_window_probe_ack: F.ZERO_WINDOW_PROBE_ACK,
  window_full: F.WINDOW_FULL,
  reused_ports: F.REUSED_PORTS,
};

interface Verdict { flags: string; ackRtt: string; stream: string }

async function ours(file: string): Promise<Map<number, Verdict>> {
  const config = loadConfig();
  const reader = await CaptureReader.open(join(DIR, file), config.input);
  const pipeline = new Pipeline(config, { onWindow: () => {} });
  const result: TcpPacketResult = pipeline.tcpSequence.result;
  const out = new Map<number, Verdict>();
  for (let s = reader.next(); s !== END; s = reader.next()) {
    if (s === NEED_DATA) { await reader.fill(); continue; }
    result.analyzed = false; // set again only when this frame is a TCP segment of a flow
    pipeline.process(reader.record);
    const slot = pipeline.flows.lastSlot;
    out.set(reader.record.number, {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- assigned inside a callback; the narrowed type does not see it
      stream: result.analyzed && slot >= 0 ? String(pipeline.flows.streamIndex[slot]) : '',
      flags: Object.entries(NAMES).filter(([, bit]) => result.flags & bit).map(([name]) => name).join(','),
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- assigned inside a callback; the narrowed type does not see it
      ackRtt: result.analyzed && result.ackRtt !== -1 ? result.ackRtt.toFixed(9) : '',
    });
  }
  await reader.close();
  return out;
}

/** Known differences: file -> frame -> [ours, tshark, cause]. */
const EXCEPTIONS: Record<string, Record<number, [string, string, string]>> = {
  't2.pcap': {
    8: ['', 'reused_ports', 'an ICMP error quoting a SYN with a new ISN: like Wireshark we open a new flow (tcp.stream) '
      + 'from the quoted header, but we run no sequence analysis on quoted headers, so the ICMP frame carries no flag'],
  },
};

const expected = readTsv(readFileSync(join(DIR, 'expected.tsv'), 'utf8'));
const files = [...new Set(expected.map((r) => r['file']!))];

for (const file of files) {
  test(`TCP analysis agrees with tshark frame by frame: ${file}`, async () => {
    const got = await ours(file);
    for (const row of expected.filter((r) => r['file'] === file)) {
      const frame = Number(row['frame']);
      const mine = got.get(frame)!;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      const known = EXCEPTIONS[file]?.[frame];
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      if (known) assert.deepEqual([mine.flags, row['flags']], [known[0], known[1]], `${file} frame ${frame}: listed difference changed (${known[2]})`);
      else assert.equal(mine.flags, row['flags'], `${file} frame ${frame}: flags`);
      assert.equal(mine.ackRtt, row['ack_rtt'], `${file} frame ${frame}: ack_rtt`);
      if (mine.stream !== '') assert.equal(mine.stream, row['stream'], `${file} frame ${frame}: tcp.stream`);
    }
  });
}
