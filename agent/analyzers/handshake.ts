/**
 * TCP three-way handshakes, per flow: SYN -> SYN/ACK delay, SYN/ACK -> ACK
 * delay and their total, SYN retransmissions (same ISN: a new ISN on the same
 * ports is a new flow in the flow table, never a retry here), and handshakes
 * that fail: no SYN/ACK before the flow or the input ends, or a SYN answered
 * by RST (refused).
 *
 * The delays are measured from the most recent SYN, as Wireshark's
 * tcp.analysis.initial_rtt is (total = handshake ACK - most recent SYN); the
 * time lost to retries is in the syn_retransmission finding. The first SYN/ACK
 * after that SYN counts (a retransmitted SYN/ACK does not move it), and the
 * handshake completes on the client's first ACK after it.
 *
 * Thresholds (analyzers.handshake) are strict: a delay equal to synAckDelay or
 * totalDelay is not slow. A SYN retransmission finding is a warning when the
 * last retry came synRetransmission seconds or more after the first SYN.
 *
 * State lives in typed arrays per flow slot; the retry intervals of a flow are
 * kept only once it retransmits a SYN, a rare event: up to MAX_INTERVALS per
 * flow in a pool of RETRY_FLOWS rows (a KeyTable of flow slots, the least
 * recently retried flow's row taken when full, counted as
 * `retryIntervalsDropped`: its finding then lists no intervals). Every
 * finding is reported; the window engine lists report.maxFindingsPerType of a
 * type and counts the rest.
 *
 * The handshake is followed here, not taken from the connection-attempt
 * tracker's events (flow/connection-attempts.ts), whose definitions differ
 * where this analyzer reports: the tracker settles an attempt UNANSWERED 5 s
 * after its SYN (a handshake here fails only when the flow or the input ends,
 * so SYN retries at 1, 3, 7 s that are answered at last complete it, and a
 * failure's waitedSeconds runs to the flow's last packet); its ANSWERED is
 * the first SYN/ACK, where a SYN retried after a SYN/ACK restarts the
 * handshake here (the delays run from the most recent SYN); it counts the
 * server talking without a SYN/ACK as COMPLETED and a server RST after the
 * SYN/ACK as REFUSED (here: no handshake, and aborted).
 */
import { isoFromSeconds } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, EndReason, TcpSynEvent, connectionKey, describeFlow, type EndReasonCode } from '../flow/index.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import type { QuantileSketch } from '../../common/report.js';
import { ANY_RETRANSMISSION, type TcpPacketResult } from '../flow/tcp-result.js';
import { round6, round9, endpoint, duration, plural } from './lib/format.js';
import { KeyTable } from './lib/key-table.js';

const { SYN, ACK, RST } = TcpFlag;

// Handshake state per flow.
/** No handshake being followed (flow began mid-stream, or with a SYN/ACK). */
const NONE = 0;
const WAIT_SYNACK = 1;
const WAIT_ACK = 2;
const DONE = 3;
/** Failed, refused or given up: nothing more to report. */
const OVER = 4;

/** Retry intervals kept per flow. */
const MAX_INTERVALS = 16;
/** Flows whose retry intervals are kept at once. */
const RETRY_FLOWS = 4096;

export function createHandshakeAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new HandshakeAnalyzer(ctx);
}

class HandshakeAnalyzer implements Analyzer {
  readonly id = 'handshake';
  private readonly state: Uint8Array;
  /** SYN packets sent by the client in the current handshake (the first one included). */
  private readonly syns: Uint32Array;
  private readonly firstSyn: Float64Array;
  private readonly lastSyn: Float64Array;
  private readonly synAck: Float64Array;
  /** Flow slot -> row of `intervals`, for flows that retransmitted a SYN. */
  private readonly retryRows: KeyTable;
  /** [row][MAX_INTERVALS]: intervals between successive SYNs, and how many. */
  private readonly intervals: Float64Array;
  private readonly intervalCount: Uint8Array;

  // per window
  private readonly synAckQ = new Quantiles();
  private readonly ackQ = new Quantiles();
  private readonly totalQ = new Quantiles();
  private w = emptyWindow();
  /** retryRows.evicted at the last window close. */
  private droppedBefore = 0;
  /** A flow-sharded worker: the closed window's delays, every sample (windowPart). */
  private closedDelays: HandshakeDelays | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity;
    this.state = new Uint8Array(n);
    this.syns = new Uint32Array(n);
    this.firstSyn = new Float64Array(n);
    this.lastSyn = new Float64Array(n);
    this.synAck = new Float64Array(n);
    // A row is a live flow's: more rows than flow slots would never be used.
    const rows = Math.min(RETRY_FLOWS, n);
    this.retryRows = new KeyTable(rows, 1);
    this.intervals = new Float64Array(rows * MAX_INTERVALS);
    this.intervalCount = new Uint8Array(rows);
  }

  onFlowStart(slot: number): void {
    this.clear(slot);
  }

  onFlowEnd(slot: number, reason: EndReasonCode): void {
    // End of input comes after the last window closed: finish() already reported what was open.
    if (reason !== EndReason.END_OF_INPUT) {
      const s = this.state[slot]!;
      const last = this.ctx.flows.lastTs[slot]!;
      if (s === WAIT_SYNACK) this.failed(slot, 'no_answer', last, false);
      else if (s === WAIT_ACK) { this.w.incomplete++; this.reportRetries(slot, 'incomplete'); }
    }
    this.clear(slot);
  }

  private clear(slot: number): void {
    this.state[slot] = NONE;
    // Only a flow that retransmitted its SYN (two SYNs or more) has a row: most flows need no look-up.
    const retried = this.syns[slot]! > 1;
    this.syns[slot] = 0;
    if (retried && this.retryRows.size > 0) {
      const row = this.retryRow(slot);
      if (row >= 0) this.retryRows.remove(row);
    }
  }

  /** The flow's row of retry intervals, -1 when it has none. */
  private retryRow(slot: number): number {
    this.retryRows.key[0] = slot;
    return this.retryRows.find();
  }

  onTcpSegment(v: PacketView, slot: number, dir: number, tcp: TcpPacketResult): void {
    const tf = v.tcpFlags;
    // v.ts is read where it is used: a time held in a local up front is boxed on every segment (see flow/connection-attempts.ts).
    const s = this.state[slot]!;
    if (tf & RST) {
      if (s === WAIT_SYNACK) {
        // The server refusing; the client resetting its own SYN is giving up on an unanswered one.
        this.failed(slot, dir === Dir.SERVER_TO_CLIENT ? 'refused' : 'no_answer', v.ts, false);
      } else if (s === WAIT_ACK) {
        this.w.aborted++;
        this.reportRetries(slot, 'aborted');
        this.state[slot] = OVER;
      }
      return;
    }
    if (tf & SYN) {
      if (tf & ACK) {
        // The first SYN/ACK after the latest SYN; retransmitted SYN/ACKs do not move it.
        if (dir === Dir.SERVER_TO_CLIENT && s === WAIT_SYNACK) {
          this.synAck[slot] = v.ts;
          this.state[slot] = WAIT_ACK;
        }
        return;
      }
      if (dir !== Dir.CLIENT_TO_SERVER) return;
      // A SYN captured after the server already spoke (its SYN/ACK came first) starts nothing that could complete.
      if (s === NONE && this.syns[slot] === 0 && this.ctx.flows.packets[slot * 2 + Dir.SERVER_TO_CLIENT] === 0) {
        this.state[slot] = WAIT_SYNACK;
        this.syns[slot] = 1;
        this.firstSyn[slot] = v.ts;
        this.lastSyn[slot] = v.ts;
        this.w.started++;
        return;
      }
      // Same flow, so same ISN (a new ISN starts a new flow): a retransmitted SYN.
      if (!(tcp.flags & ANY_RETRANSMISSION) && this.ctx.flows.synEvent !== TcpSynEvent.SAME_ISN_SYN) return;
      this.w.synRetransmissions++;
      if (s === WAIT_SYNACK || s === WAIT_ACK) {
        this.retry(slot, v.ts);
        // The client did not get the SYN/ACK: the handshake starts over from this SYN.
        this.state[slot] = WAIT_SYNACK;
      }
      return;
    }
    if (s === WAIT_ACK && dir === Dir.CLIENT_TO_SERVER && tf & ACK) this.complete(slot, v.ts);
  }

  /** A retransmitted SYN. */
  private retry(slot: number, now: number): void {
    const rows = this.retryRows;
    rows.key[0] = slot;
    const row = rows.findOrInsert();
    if (rows.inserted) this.intervalCount[row] = 0;
    const n = this.intervalCount[row]!;
    if (n < MAX_INTERVALS) {
      this.intervals[row * MAX_INTERVALS + n] = delay(now, this.lastSyn[slot]!);
      this.intervalCount[row] = n + 1;
    }
    this.syns[slot]!++;
    this.lastSyn[slot] = now;
  }

  private complete(slot: number, now: number): void {
    const cfg = this.ctx.config.analyzers.handshake;
    // Rounded to the nanosecond (the finest timestamp there is), so a delay sitting on a threshold is not pushed over it by float noise.
    const synToSynAck = delay(this.synAck[slot]!, this.lastSyn[slot]!);
    const synAckToAck = delay(now, this.synAck[slot]!);
    const total = delay(now, this.lastSyn[slot]!);
    this.state[slot] = DONE;
    const w = this.w;
    w.completed++;
    this.synAckQ.add(synToSynAck);
    this.ackQ.add(synAckToAck);
    this.totalQ.add(total);
    const serverSlow = synToSynAck > cfg.synAckDelay;
    if (serverSlow || total > cfg.totalDelay) {
      w.slow++;
      // Which part dominates: the server's answer, or the client's ACK (client or network near it).
      const side = synAckToAck > synToSynAck ? 'client_or_network' : 'server';
      if (side === 'server') w.slowServer++; else w.slowClient++;
      const syns = this.syns[slot]!;
      this.ctx.reportLazily('slow_handshake', () => {
        const f = describeFlow(this.ctx.flows, slot);
        return {
          type: 'slow_handshake',
          severity: 'warning',
          key: connectionKey(this.ctx.flows, slot),
          summary: `TCP handshake with ${endpoint(f.server, f.serverPort)} took ${duration(total)} (SYN to SYN/ACK ${duration(synToSynAck)}, SYN/ACK to ACK ${duration(synAckToAck)}): `
            + (side === 'server' ? 'the server is slow to answer.' : 'the client (or the network on its side) is slow to acknowledge.'),
          evidence: {
            synToSynAckSeconds: round9(synToSynAck),
            synAckToAckSeconds: round9(synAckToAck),
            totalSeconds: round9(total),
            slowSide: side,
            serverSlow,
            synAckDelayThreshold: cfg.synAckDelay,
            totalDelayThreshold: cfg.totalDelay,
            syns,
          },
          flowSlot: slot,
          host: f.server,
        };
      });
    }
    this.reportRetries(slot, 'completed');
  }

  private failed(slot: number, reason: 'no_answer' | 'refused', now: number, stillOpen: boolean): void {
    this.state[slot] = OVER;
    const w = this.w;
    if (reason === 'refused') w.refused++; else w.noAnswer++;
    const waited = delay(now, this.firstSyn[slot]!);
    const syns = this.syns[slot]!;
    const firstSyn = this.firstSyn[slot]!;
    this.ctx.reportLazily('failed_handshake', () => {
      const f = describeFlow(this.ctx.flows, slot);
      return {
        type: 'failed_handshake',
        severity: 'warning',
        key: connectionKey(this.ctx.flows, slot),
        summary: reason === 'refused'
          ? `${endpoint(f.server, f.serverPort)} refused the TCP connection (SYN answered by RST after ${duration(waited)}).`
          : `No answer from ${endpoint(f.server, f.serverPort)} to ${plural(syns, 'SYN')} over ${duration(waited)}${stillOpen ? ' (still waiting at the end of the input)' : ''}.`,
        evidence: {
          reason,
          syns,
          waitedSeconds: round9(waited),
          firstSyn: isoFromSeconds(this.ctx.clock.base, firstSyn),
          stillOpen,
        },
        flowSlot: slot,
        host: f.server,
        // Several at one point (the end of the input): the longest waiting first.
        rank: firstSyn,
      };
    });
    this.reportRetries(slot, reason);
  }

  /** The syn_retransmission finding of a flow, once its handshake is resolved one way or another. */
  private reportRetries(slot: number, outcome: string): void {
    const syns = this.syns[slot]!;
    if (syns < 2) return;
    const retries = syns - 1;
    const waited = delay(this.lastSyn[slot]!, this.firstSyn[slot]!);
    this.ctx.reportLazily('syn_retransmission', () => {
      const row = this.retryRows.size > 0 ? this.retryRow(slot) : -1;
      const list = row < 0 ? [] : Array.from(this.intervals.subarray(row * MAX_INTERVALS, row * MAX_INTERVALS + this.intervalCount[row]!));
      const severity: FindingSeverity = waited >= this.ctx.config.analyzers.handshake.synRetransmission ? 'warning' : 'info';
      const f = describeFlow(this.ctx.flows, slot);
      return {
      type: 'syn_retransmission',
      severity,
      key: connectionKey(this.ctx.flows, slot),
      summary: `The SYN to ${endpoint(f.server, f.serverPort)} was retransmitted ${plural(retries, 'time')} over ${duration(waited)} (handshake ${outcome.replace('_', ' ')}).`,
      evidence: {
        retransmissions: retries,
        intervals: list.map((x) => round6(x)).join(',') + (retries > list.length ? ',...' : ''),
        firstIntervalSeconds: list.length ? round9(list[0]!) : null,
        lastIntervalSeconds: list.length ? round9(list[list.length - 1]!) : null,
        firstToLastSynSeconds: round9(waited),
        outcome,
      },
      flowSlot: slot,
      host: f.server,
      };
    });
  }

  finish(): void {
    // Handshakes still waiting for a SYN/ACK at the end of the input failed.
    const now = this.ctx.clock.now;
    const state = this.state;
    for (let slot = 0; slot < state.length; slot++) {
      if (state[slot] === WAIT_SYNACK) this.failed(slot, 'no_answer', now, true);
      else if (state[slot] === WAIT_ACK) { this.w.incomplete++; this.reportRetries(slot, 'incomplete'); state[slot] = OVER; }
    }
  }

  closeWindow(): Metrics {
    const w = this.w;
    const metrics: Metrics = {
      started: w.started,
      completed: w.completed,
      synToSynAck: this.synAckQ.summary(),
      synAckToAck: this.ackQ.summary(),
      total: this.totalQ.summary(),
      slow: w.slow,
      slowServer: w.slowServer,
      slowClient: w.slowClient,
      synRetransmissions: w.synRetransmissions,
      failed: { noAnswer: w.noAnswer, refused: w.refused },
      incomplete: w.incomplete,
      aborted: w.aborted,
      retryIntervalsDropped: this.retryRows.evicted - this.droppedBefore,
    };
    this.droppedBefore = this.retryRows.evicted;
    if (this.ctx.shardRole === 'worker') this.closedDelays = { synToSynAck: this.synAckQ.sketch(true), synAckToAck: this.ackQ.sketch(true), total: this.totalQ.sketch(true) };
    this.synAckQ.clear();
    this.ackQ.clear();
    this.totalQ.clear();
    this.w = emptyWindow();
    return metrics;
  }

  windowPart(): HandshakeDelays | null {
    return this.closedDelays;
  }

  /**
   * Counts add up (a handshake lives in one flow-sharded worker); the delays'
   * quantiles are those of every worker's samples together.
   * retryIntervalsDropped adds up the workers' own pools' evictions (the same
   * figure as one pipeline's while fewer than RETRY_FLOWS flows retry at once).
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const metrics = sumMetrics(input.metrics);
    const delays = input.parts as ReadonlyArray<HandshakeDelays | null>;
    for (const name of ['synToSynAck', 'synAckToAck', 'total'] as const) {
      const set = new Quantiles();
      for (const d of delays) if (d) set.addSketch(d[name]);
      metrics[name] = set.summary();
    }
    return metrics;
  }
}

/** A worker's part of a window: each delay's samples. */
interface HandshakeDelays {
  synToSynAck: QuantileSketch;
  synAckToAck: QuantileSketch;
  total: QuantileSketch;
}

function emptyWindow(): { started: number; completed: number; slow: number; slowServer: number; slowClient: number; synRetransmissions: number; noAnswer: number; refused: number; incomplete: number; aborted: number } {
  return { started: 0, completed: 0, slow: 0, slowServer: 0, slowClient: 0, synRetransmissions: 0, noAnswer: 0, refused: 0, incomplete: 0, aborted: 0 };
}


/** Time from `from` to `to`, rounded to the nanosecond; 0 when timestamps go backwards. */
const delay = (to: number, from: number): number => Math.max(0, round9(to - from));
