/**
 * TCP connection attempts, followed once for every analyzer that reasons
 * about them (handshakes, resets, scans, brute force, lateral movement,
 * floods). An attempt is a flow whose first packet is the client's SYN (no
 * ACK, no RST); its progress and outcome are events, in packet time:
 *
 *   STARTED     the SYN that started the flow;
 *   ANSWERED    the server's first SYN/ACK;
 *   COMPLETED   the client's ACK of that SYN/ACK, or the server talking
 *               without a captured SYN/ACK (the handshake out of sight);
 *   REFUSED     the server's RST before the handshake completed;
 *   UNANSWERED  no SYN/ACK within ATTEMPT_TIMEOUT of the SYN, by the end of
 *               the flow or of the input, or the client's own RST before one;
 *   ABANDONED   a SYN/ACK the client resets, or does not ACK within
 *               ATTEMPT_TIMEOUT of the SYN (by the flow's or input's end);
 *   RESET       a RST from either side once completed;
 *   CLOSED      the first FIN once completed, or the flow ending while open.
 *
 * STARTED, ANSWERED and COMPLETED are progress; every attempt then ends with
 * exactly one of REFUSED, UNANSWERED, ABANDONED, RESET or CLOSED, unless it
 * is still open when the input ends (a connection still established is
 * neither a failure nor closed). Timeouts fire with the deadline as their
 * time, before the packet (or window close) that passed it.
 *
 * State: one byte per flow slot and a bounded queue of deadlines
 * (MAX_PENDING; when full, the oldest attempt is settled early).
 */
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { PacketClock } from '../core/packet-clock.js';
import { Dir, type FlowTable } from './flow-table.js';

export const AttemptEvent = {
  STARTED: 0,
  ANSWERED: 1,
  COMPLETED: 2,
  REFUSED: 3,
  UNANSWERED: 4,
  ABANDONED: 5,
  RESET: 6,
  CLOSED: 7,
} as const;
export type AttemptEventCode = (typeof AttemptEvent)[keyof typeof AttemptEvent];

/** Seconds after its SYN an attempt without SYN/ACK is unanswered (or, SYN/ACKed but not ACKed, abandoned). */
export const ATTEMPT_TIMEOUT = 5;
/** Attempts awaiting their deadline at once; past it the oldest is settled early. */
export const MAX_PENDING = 32_768;

const { SYN, ACK, RST, FIN } = TcpFlag;

// Per-slot state.
const NONE = 0;
const WAIT_SYNACK = 1;
const WAIT_ACK = 2;
const OPEN = 3;
/** Not an attempt, or its outcome is known. */
const OVER = 4;

export type AttemptListener = (slot: number, event: AttemptEventCode, at: number) => void;

export class ConnectionAttempts {
  private readonly state: Uint8Array;
  // Deadline queue: slot, its flow's tcp.stream (tells a reused slot's entry apart), due time.
  private readonly qSlot: Int32Array;
  private readonly qStream: Float64Array;
  private readonly qDue: Float64Array;
  private qHead = 0;
  private qCount = 0;

  constructor(private readonly flows: FlowTable, private readonly clock: PacketClock, private readonly emit: AttemptListener) {
    this.state = new Uint8Array(flows.capacity);
    const q = Math.max(1, Math.min(flows.capacity, MAX_PENDING));
    this.qSlot = new Int32Array(q);
    this.qStream = new Float64Array(q);
    this.qDue = new Float64Array(q);
  }

  flowStarted(slot: number): void { this.state[slot] = NONE; }

  /** The flow ends (idle, evicted, port reuse, end of input): an open attempt ends with it. */
  flowEnded(slot: number, now: number): void {
    const s = this.state[slot];
    this.state[slot] = OVER;
    if (s === WAIT_SYNACK) this.emit(slot, AttemptEvent.UNANSWERED, now);
    else if (s === WAIT_ACK) this.emit(slot, AttemptEvent.ABANDONED, now);
    else if (s === OPEN) this.emit(slot, AttemptEvent.CLOSED, now);
  }

  /**
   * A TCP segment of flow `slot`, after the flow table counted it, at the
   * clock's time. The time is read where an event needs it, not up front: a
   * double handed to a call that is not inlined is boxed (a heap number), and
   * TurboFan may box it before the branches, once per segment.
   */
  segment(v: PacketView, slot: number, dir: number): void {
    const s = this.state[slot]!;
    if (s === OVER) return;
    const tf = v.tcpFlags;
    const flows = this.flows;
    if (s === NONE) {
      // Only flows whose first packet is the client's SYN are attempts.
      if ((tf & (SYN | ACK | RST)) !== SYN || dir !== Dir.CLIENT_TO_SERVER || flows.packets[slot * 2]! !== 1 || flows.packets[slot * 2 + 1]! !== 0) {
        this.state[slot] = OVER;
        return;
      }
      this.state[slot] = WAIT_SYNACK;
      if (this.qCount === this.qSlot.length) this.settleHead(this.clock.now);
      this.push(slot, flows.streamIndex[slot]!, this.clock.now + ATTEMPT_TIMEOUT);
      this.emit(slot, AttemptEvent.STARTED, this.clock.now);
      return;
    }
    const fromServer = dir === Dir.SERVER_TO_CLIENT;
    if (s === WAIT_SYNACK) {
      if (tf & RST) this.settle(slot, fromServer ? AttemptEvent.REFUSED : AttemptEvent.UNANSWERED, this.clock.now);
      else if (fromServer && (tf & (SYN | ACK)) === (SYN | ACK)) { this.state[slot] = WAIT_ACK; this.emit(slot, AttemptEvent.ANSWERED, this.clock.now); }
      else if (fromServer) this.complete(slot, this.clock.now, tf);
    } else if (s === WAIT_ACK) {
      if (tf & RST) this.settle(slot, fromServer ? AttemptEvent.REFUSED : AttemptEvent.ABANDONED, this.clock.now);
      else if (!fromServer && tf & ACK && !(tf & SYN)) this.complete(slot, this.clock.now, tf);
    } else if (tf & RST) {
      this.settle(slot, AttemptEvent.RESET, this.clock.now);
    } else if (tf & FIN) {
      this.settle(slot, AttemptEvent.CLOSED, this.clock.now);
    }
  }

  /** Settles attempts whose deadline is at or before `until` (packet time). */
  expire(until: number): void {
    while (this.qCount > 0 && this.qDue[this.qHead]! <= until) this.settleHead(this.qDue[this.qHead]!);
  }

  /** End of input: attempts still waiting are settled at their deadline or now, whichever is earlier. */
  finish(now: number): void {
    while (this.qCount > 0) this.settleHead(Math.min(now, this.qDue[this.qHead]!));
  }

  private complete(slot: number, now: number, tf: number): void {
    this.state[slot] = OPEN;
    this.emit(slot, AttemptEvent.COMPLETED, now);
    // The completing segment may already close the connection.
    if (tf & FIN) this.settle(slot, AttemptEvent.CLOSED, now);
  }

  private settle(slot: number, event: AttemptEventCode, now: number): void {
    this.state[slot] = OVER;
    this.emit(slot, event, now);
  }

  private push(slot: number, stream: number, due: number): void {
    const n = this.qSlot.length;
    const i = (this.qHead + this.qCount) % n;
    this.qSlot[i] = slot;
    this.qStream[i] = stream;
    this.qDue[i] = due;
    this.qCount++;
  }

  /** Removes the head of the queue and, if its attempt is still waiting, settles it at `at`. */
  private settleHead(at: number): void {
    const i = this.qHead;
    const slot = this.qSlot[i]!;
    this.qHead = (i + 1) % this.qSlot.length;
    this.qCount--;
    // The slot's own state first: usually the attempt is over, and then the flow's stream (a cache miss) is not read.
    const s = this.state[slot];
    if (s !== WAIT_SYNACK && s !== WAIT_ACK) return;
    if (this.flows.streamIndex[slot] !== this.qStream[i]) return; // the flow ended; the slot holds another one
    if (s === WAIT_SYNACK) this.settle(slot, AttemptEvent.UNANSWERED, at);
    else this.settle(slot, AttemptEvent.ABANDONED, at);
  }
}
