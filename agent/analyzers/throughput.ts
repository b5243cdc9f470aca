/**
 * Throughput per window: bytes (frame lengths on the wire, as the window
 * summary counts them) and bits per second, overall and per direction
 * (client to server, server to client; frames without a flow, such as ARP,
 * count only in the overall figures), and the `topFlows` flows with the most
 * bytes in the window, with bits per second per direction.
 *
 * Rates are over the window's length (`windows.seconds`), also for the first
 * and last windows of a capture, which the capture may cover only in part.
 *
 * Per-flow window counters live in typed arrays by slot and direction, reset
 * at a flow's first packet in each window. A flow that ends during the window
 * is copied into a small fixed pool of `topFlows` entries (at most MAX_ENDED;
 * kept only if it is among the largest ended so far), since its slot may be
 * reused before the window closes.
 */
import type { FlowRef } from '../../common/report.js';
import { formatAddress } from '../../common/address.js';
import type { PacketView } from '../decode/packet-view.js';
import { protoName, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { WindowFlowSet, round3 } from './window-flows.js';

/** Ended flows kept per window at most (a larger `topFlows` lists live flows beyond it, ended ones up to it). */
const MAX_ENDED = 1024;

export function createThroughputAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ThroughputAnalyzer(ctx);
}

interface TopFlow extends FlowRef {
  packets: number;
  bytes: number;
  bytesClientToServer: number;
  bytesServerToClient: number;
  bitsPerSecondClientToServer: number;
  bitsPerSecondServerToClient: number;
}

/**
 * Copies of flows that ended during the window: key fields and window
 * counters, in preallocated arrays. Holds the `capacity` largest by bytes.
 */
class EndedFlows {
  readonly version: Uint8Array;
  readonly proto: Uint8Array;
  readonly client: Uint32Array;
  readonly server: Uint32Array;
  readonly clientPort: Uint16Array;
  readonly serverPort: Uint16Array;
  /** Per entry and direction. */
  readonly bytes: Float64Array;
  readonly packets: Float64Array;
  size = 0;

  constructor(readonly capacity: number) {
    this.version = new Uint8Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.client = new Uint32Array(capacity * 4);
    this.server = new Uint32Array(capacity * 4);
    this.clientPort = new Uint16Array(capacity);
    this.serverPort = new Uint16Array(capacity);
    this.bytes = new Float64Array(capacity * 2);
    this.packets = new Float64Array(capacity * 2);
  }

  total(i: number): number { return this.bytes[i * 2]! + this.bytes[i * 2 + 1]!; }

  /** Keeps the flow if there is room or it is larger than the smallest kept. */
  offer(flows: FlowTable, slot: number, bytes: Float64Array, packets: Float64Array): void {
    if (this.capacity === 0) return;
    const total = bytes[slot * 2]! + bytes[slot * 2 + 1]!;
    let i = this.size;
    if (i === this.capacity) {
      i = 0;
      for (let k = 1; k < this.size; k++) if (this.total(k) < this.total(i)) i = k;
      if (this.total(i) >= total) return;
    } else {
      this.size++;
    }
    this.version[i] = flows.version[slot]!;
    this.proto[i] = flows.proto[slot]!;
    const clientIsA = flows.clientIsA[slot] === 1;
    for (let k = 0; k < 4; k++) {
      const a = flows.addrA[slot * 4 + k]!;
      const b = flows.addrB[slot * 4 + k]!;
      this.client[i * 4 + k] = clientIsA ? a : b;
      this.server[i * 4 + k] = clientIsA ? b : a;
    }
    this.clientPort[i] = flows.clientPort(slot);
    this.serverPort[i] = flows.serverPort(slot);
    for (let d = 0; d < 2; d++) {
      this.bytes[i * 2 + d] = bytes[slot * 2 + d]!;
      this.packets[i * 2 + d] = packets[slot * 2 + d]!;
    }
  }
}

class ThroughputAnalyzer implements Analyzer {
  readonly id = 'throughput';
  private readonly topFlows: number;
  // per direction (slot * 2 + dir): this window's counters
  private readonly winBytes: Float64Array;
  private readonly winPackets: Float64Array;
  private readonly active: WindowFlowSet;
  private readonly ended: EndedFlows;
  private bytes = 0;
  private packets = 0;
  private endedFlows = 0;
  private readonly dirBytes = new Float64Array(2);
  private readonly dirPackets = new Float64Array(2);

  constructor(private readonly ctx: AnalyzerContext) {
    this.topFlows = ctx.config.analyzers.throughput.topFlows;
    const n = ctx.flows.capacity * 2;
    this.winBytes = new Float64Array(n);
    this.winPackets = new Float64Array(n);
    this.active = new WindowFlowSet(ctx.flows.capacity);
    this.ended = new EndedFlows(Math.min(this.topFlows, MAX_ENDED));
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    const len = v.wireLen;
    this.bytes += len;
    this.packets++;
    if (slot < 0) return;
    if (this.active.add(slot)) {
      this.winBytes[slot * 2] = this.winBytes[slot * 2 + 1] = 0;
      this.winPackets[slot * 2] = this.winPackets[slot * 2 + 1] = 0;
    }
    const d = slot * 2 + dir;
    this.winBytes[d] += len;
    this.winPackets[d]++;
    this.dirBytes[dir] += len;
    this.dirPackets[dir]++;
  }

  onFlowEnd(slot: number): void {
    if (!this.active.remove(slot)) return;
    this.endedFlows++;
    this.ended.offer(this.ctx.flows, slot, this.winBytes, this.winPackets);
  }

  closeWindow(span: WindowSpan): Metrics {
    const seconds = span.end - span.start;
    const bps = (bytes: number): number => round3((bytes * 8) / seconds);
    // Top flows: the live ones of this window and the ended ones kept, by bytes (ties: live first, in order of appearance).
    const flows = this.ctx.flows;
    const candidates: Array<{ total: number; live: boolean; i: number }> = [];
    const set = this.active;
    for (let k = 0; k < set.size; k++) {
      const slot = set.slots[k]!;
      candidates.push({ total: this.winBytes[slot * 2]! + this.winBytes[slot * 2 + 1]!, live: true, i: slot });
    }
    for (let i = 0; i < this.ended.size; i++) candidates.push({ total: this.ended.total(i), live: false, i });
    candidates.sort((a, b) => b.total - a.total);
    const top: TopFlow[] = candidates.slice(0, this.topFlows).map(({ live, i }) => {
      const e = this.ended;
      const version = live ? flows.version[i]! : e.version[i]!;
      const b = live ? this.winBytes : e.bytes;
      const p = live ? this.winPackets : e.packets;
      return {
        proto: protoName(live ? flows.proto[i]! : e.proto[i]!),
        client: formatAddress(version, live ? flows.clientAddr(i) : e.client.subarray(i * 4, i * 4 + 4)),
        clientPort: live ? flows.clientPort(i) : e.clientPort[i]!,
        server: formatAddress(version, live ? flows.serverAddr(i) : e.server.subarray(i * 4, i * 4 + 4)),
        serverPort: live ? flows.serverPort(i) : e.serverPort[i]!,
        packets: p[i * 2]! + p[i * 2 + 1]!,
        bytes: b[i * 2]! + b[i * 2 + 1]!,
        bytesClientToServer: b[i * 2]!,
        bytesServerToClient: b[i * 2 + 1]!,
        bitsPerSecondClientToServer: bps(b[i * 2]!),
        bitsPerSecondServerToClient: bps(b[i * 2 + 1]!),
      };
    });
    const metrics: Metrics = {
      seconds,
      packets: this.packets,
      bytes: this.bytes,
      bitsPerSecond: bps(this.bytes),
      clientToServer: { packets: this.dirPackets[0]!, bytes: this.dirBytes[0]!, bitsPerSecond: bps(this.dirBytes[0]!) },
      serverToClient: { packets: this.dirPackets[1]!, bytes: this.dirBytes[1]!, bitsPerSecond: bps(this.dirBytes[1]!) },
      nonFlowBytes: this.bytes - this.dirBytes[0]! - this.dirBytes[1]!,
      flows: set.size + this.endedFlows,
      topFlows: top,
    };
    set.clear();
    this.ended.size = 0;
    this.bytes = this.packets = this.endedFlows = 0;
    this.dirBytes.fill(0);
    this.dirPackets.fill(0);
    return metrics;
  }
}
