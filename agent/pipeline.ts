/**
 * The per-packet path: record -> decode -> counters -> flow table. Used by
 * `analyze` and by the agent. One guard here counts anything unexpected, so no
 * packet can stop the loop.
 */
import type { Config } from '../common/config.js';
import type { FrameRecord } from './capture/frame-record.js';
import { Decoder, Proto, type PacketView } from './decode/index.js';
import { FlowTable } from './flow/index.js';
import { PacketClock } from './window/packet-clock.js';

/** Report counter names (Wireshark display-filter fields) and the presence bit each counts. */
export const FRAME_COUNTERS: ReadonlyArray<readonly [string, number]> = [
  ['eth', Proto.ETH],
  ['vlan', Proto.VLAN],
  ['ip', Proto.IP],
  ['ipv6', Proto.IPV6],
  ['tcp', Proto.TCP],
  ['udp', Proto.UDP],
  ['icmp', Proto.ICMP],
  ['icmpv6', Proto.ICMPV6],
  ['dns', Proto.DNS],
  ['ip.fragments', Proto.IP_FRAGMENT],
];

export class Pipeline {
  readonly decoder: Decoder;
  readonly flows: FlowTable;
  readonly clock = new PacketClock();
  readonly frameCounts = new Float64Array(FRAME_COUNTERS.length);
  private readonly counterBits = Int32Array.from(FRAME_COUNTERS, ([, bit]) => bit);
  packets = 0;
  bytes = 0;
  /** Earliest and latest packet time (seconds, nanoseconds). */
  minSec = Infinity;
  minNsec = 0;
  maxSec = -Infinity;
  maxNsec = 0;
  /** Exceptions caught by the guard: bugs, never expected from any input. */
  unexpected = 0;
  lastError: unknown;

  constructor(config: Readonly<Config>) {
    this.decoder = new Decoder(config.flows);
    this.flows = new FlowTable(config.flows, this.clock);
  }

  process(rec: FrameRecord): void {
    this.packets++;
    this.bytes += rec.wireLen;
    const sec = rec.tsSec;
    const nsec = rec.tsNsec;
    if (sec < this.minSec || (sec === this.minSec && nsec < this.minNsec)) { this.minSec = sec; this.minNsec = nsec; }
    if (sec > this.maxSec || (sec === this.maxSec && nsec > this.maxNsec)) { this.maxSec = sec; this.maxNsec = nsec; }
    try {
      const view: PacketView = this.decoder.decode(rec);
      this.clock.observe(view.ts);
      this.flows.advance();
      const present = view.present;
      const bits = this.counterBits;
      for (let i = 0; i < bits.length; i++) if (present & bits[i]!) this.frameCounts[i]++;
      this.flows.update(view);
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
  }

  /** Ends all flows at end of input. */
  finish(): void {
    this.flows.endAll();
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = { frames: this.packets };
    FRAME_COUNTERS.forEach(([name], i) => { out[name] = this.frameCounts[i]!; });
    out['tcp.streams'] = this.flows.tcpStreams;
    out['udp.streams'] = this.flows.udpStreams;
    return out;
  }
}
