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
 * No per-packet work: the window's totals and each flow's packets and bytes
 * per direction come from the window flow accounting (`ctx.windowFlows`, the
 * flow table's counters), read at window close and when a flow ends during
 * the window. An ended flow is copied into a small fixed pool of `topFlows`
 * entries (at most MAX_ENDED; kept only if it is among the largest ended so
 * far), since its slot may be reused before the window closes.
 *
 * Flows of equal bytes are listed in the order they joined the window (the
 * input index of their first packet in it): an order of the input, the same
 * in one pipeline and in flow-sharded workers, where each flow is in one
 * worker: each gives its own top flows, and the coordinator lists the first
 * of all of them (the totals add up). With `topFlows` over MAX_ENDED each
 * worker keeps MAX_ENDED ended flows, where one pipeline keeps MAX_ENDED in all.
 */
import type { FlowRef } from '../../common/report.js';
import { formatAddress } from '../../common/address.js';
import { protoName, type FlowTable } from '../flow/index.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import type { WindowFlowAccounting } from '../flow/flow-accounting.js';
import { round3, topIndices } from './window-flows.js';
import { sumMetrics } from './lib/merge-metrics.js';

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

/** A flow-sharded worker's window: where each of its top flows joined the window (their order for ties). */
interface ThroughputPart {
  joined: number[];
}

/**
 * Copies of flows that ended during the window: key fields, window counters
 * and where the flow joined the window, in preallocated arrays. Holds the
 * `capacity` largest by bytes (ties: the first to join).
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
  readonly joined: Float64Array;
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
    this.joined = new Float64Array(capacity);
  }

  total(i: number): number { return this.bytes[i * 2]! + this.bytes[i * 2 + 1]!; }

  /** Entry k would be listed after entry i: fewer bytes, or as many and joined later. */
  private after(k: number, i: number): boolean {
    return this.total(k) < this.total(i) || (this.total(k) === this.total(i) && this.joined[k]! > this.joined[i]!);
  }

  /** Keeps the flow (its window counters), which joined the window at `joined`, if there is room or it goes before the last kept. */
  offer(flows: FlowTable, slot: number, win: WindowFlowAccounting, joined: number): void {
    if (this.capacity === 0) return;
    const total = win.bytesIn(slot, 0) + win.bytesIn(slot, 1);
    let i = this.size;
    if (i === this.capacity) {
      i = 0;
      for (let k = 1; k < this.size; k++) if (this.after(k, i)) i = k;
      if (this.total(i) > total || (this.total(i) === total && this.joined[i]! < joined)) return;
    } else {
      this.size++;
    }
    this.joined[i] = joined;
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
      this.bytes[i * 2 + d] = win.bytesIn(slot, d);
      this.packets[i * 2 + d] = win.packetsIn(slot, d);
    }
  }
}

class ThroughputAnalyzer implements Analyzer {
  readonly id = 'throughput';
  private readonly topFlows: number;
  private readonly ended: EndedFlows;
  /** Flows of the window that ended before its close. */
  private endedFlows = 0;
  /** Per direction: packets and bytes of the window's flows (ended ones added at their end, the others at close). */
  private readonly dirBytes = new Float64Array(2);
  private readonly dirPackets = new Float64Array(2);
  /** Per flow slot: the input index of the flow's first packet in the window. */
  private readonly joined: Float64Array;
  private part: ThroughputPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    this.topFlows = ctx.config.analyzers.throughput.topFlows;
    this.ended = new EndedFlows(Math.min(this.topFlows, MAX_ENDED));
    this.joined = new Float64Array(ctx.flows.capacity);
  }

  onWindowFlow(_v: PacketView, slot: number): void {
    this.joined[slot] = this.ctx.packetOrder;
  }

  onFlowEnd(slot: number): void {
    const win = this.ctx.windowFlows;
    if (!win.active.has(slot)) return;
    this.endedFlows++;
    for (let d = 0; d < 2; d++) {
      this.dirBytes[d] += win.bytesIn(slot, d);
      this.dirPackets[d] += win.packetsIn(slot, d);
    }
    this.ended.offer(this.ctx.flows, slot, win, this.joined[slot]!);
  }

  closeWindow(span: WindowSpan): Metrics {
    const seconds = span.end - span.start;
    const bps = (bytes: number): number => round3((bytes * 8) / seconds);
    // Top flows: the live ones of this window and the ended ones kept, by bytes (ties: the first to join the window).
    const flows = this.ctx.flows;
    const win = this.ctx.windowFlows;
    const set = win.active;
    // Candidates: the live flows in the set's order (indices 0..live-1), then the ended ones kept.
    const live = set.size;
    for (let k = 0; k < live; k++) {
      const slot = set.slots[k]!;
      this.dirBytes[0] += win.bytesIn(slot, 0);
      this.dirBytes[1] += win.bytesIn(slot, 1);
      this.dirPackets[0] += win.packetsIn(slot, 0);
      this.dirPackets[1] += win.packetsIn(slot, 1);
    }
    const total = (c: number): number => {
      if (c >= live) return this.ended.total(c - live);
      const slot = set.slots[c]!;
      return win.bytesIn(slot, 0) + win.bytesIn(slot, 1);
    };
    const joined = (c: number): number => (c >= live ? this.ended.joined[c - live]! : this.joined[set.slots[c]!]!);
    const chosen = topIndices(live + this.ended.size, this.topFlows, total, joined);
    if (this.ctx.shardRole === 'worker') this.part = { joined: chosen.map(joined) };
    const top: TopFlow[] = chosen.map((c) => {
      const isLive = c < live;
      const i = isLive ? set.slots[c]! : c - live;
      const e = this.ended;
      const version = isLive ? flows.version[i]! : e.version[i]!;
      const b0 = isLive ? win.bytesIn(i, 0) : e.bytes[i * 2]!;
      const b1 = isLive ? win.bytesIn(i, 1) : e.bytes[i * 2 + 1]!;
      const packets = isLive ? win.packetsIn(i, 0) + win.packetsIn(i, 1) : e.packets[i * 2]! + e.packets[i * 2 + 1]!;
      return {
        proto: protoName(isLive ? flows.proto[i]! : e.proto[i]!),
        client: formatAddress(version, isLive ? flows.clientAddr(i) : e.client.subarray(i * 4, i * 4 + 4)),
        clientPort: isLive ? flows.clientPort(i) : e.clientPort[i]!,
        server: formatAddress(version, isLive ? flows.serverAddr(i) : e.server.subarray(i * 4, i * 4 + 4)),
        serverPort: isLive ? flows.serverPort(i) : e.serverPort[i]!,
        packets,
        bytes: b0 + b1,
        bytesClientToServer: b0,
        bytesServerToClient: b1,
        bitsPerSecondClientToServer: bps(b0),
        bitsPerSecondServerToClient: bps(b1),
      };
    });
    const metrics: Metrics = {
      seconds,
      packets: win.packets,
      bytes: win.bytes,
      bitsPerSecond: bps(win.bytes),
      clientToServer: { packets: this.dirPackets[0]!, bytes: this.dirBytes[0]!, bitsPerSecond: bps(this.dirBytes[0]!) },
      serverToClient: { packets: this.dirPackets[1]!, bytes: this.dirBytes[1]!, bitsPerSecond: bps(this.dirBytes[1]!) },
      nonFlowBytes: win.bytes - this.dirBytes[0]! - this.dirBytes[1]!,
      flows: set.size + this.endedFlows,
      topFlows: top,
    };
    this.ended.size = 0;
    this.endedFlows = 0;
    this.dirBytes.fill(0);
    this.dirPackets.fill(0);
    return metrics;
  }

  windowPart(): ThroughputPart | null {
    const part = this.part;
    this.part = null;
    return part;
  }

  /** Flow-sharded workers: each flow is in one worker, so the totals add up and the top flows are the first of the workers' own. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const sum = sumMetrics(input.metrics);
    const seconds = input.span.end - input.span.start;
    const bps = (bytes: number): number => round3((bytes * 8) / seconds);
    const direction = (d: unknown): Metrics => {
      const m = d as { packets: number; bytes: number };
      return { packets: m.packets, bytes: m.bytes, bitsPerSecond: bps(m.bytes) };
    };
    const flows: TopFlow[] = [];
    const joined: number[] = [];
    input.metrics.forEach((m, w) => {
      const part = input.parts[w] as ThroughputPart | null;
      (m['topFlows'] as TopFlow[]).forEach((f, i) => { flows.push(f); joined.push(part!.joined[i]!); });
    });
    const chosen = topIndices(flows.length, this.topFlows, (i) => flows[i]!.bytes, (i) => joined[i]!);
    return {
      seconds,
      packets: sum['packets'],
      bytes: sum['bytes'],
      bitsPerSecond: bps(sum['bytes'] as number),
      clientToServer: direction(sum['clientToServer']),
      serverToClient: direction(sum['serverToClient']),
      nonFlowBytes: sum['nonFlowBytes'],
      flows: sum['flows'],
      topFlows: chosen.map((i) => flows[i]!),
    };
  }
}
