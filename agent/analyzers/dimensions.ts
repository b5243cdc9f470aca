/**
 * Sub-totals per VLAN and per capture interface in every window: packets,
 * bytes (frame.len), TCP retransmissions (frames tcp.analysis.retransmission
 * matches: plain, fast or spurious), ACK RTT (the samples the rtt analyzer
 * takes: tcp.analysis.ack_rtt by Karn's rule) and DNS response times (dns.time
 * as the dns analyzer matches them, read from `ctx.dnsMatch`: no second
 * matching here). The VLAN is the outer tag (the first vlan.id Wireshark
 * lists; QinQ's inner tags are not a dimension), "untagged" for frames without
 * one; the interface is frame.interface_id (pcapng; 0 for classic pcap and the
 * agent's one live interface). An RTT sample counts where its ACK was seen, a
 * DNS time where its response was.
 *
 * Bounded: at most `maxValues` distinct values per dimension per window (the
 * first seen, "untagged" included); the rest share one "other" row and are
 * counted (`vlanValuesOther`, `interfaceValuesOther`). A value maps to its row
 * through a typed array indexed by the value (VLAN ids are 12 bits, pcapng
 * interface ids 16), so the packet path allocates nothing. Percentile sets keep
 * EXACT_SAMPLES samples exactly, then 1 % log buckets (lib/quantiles.ts).
 *
 * Whole-capture frame counts go to the report's counters as the display
 * filters tshark counts them with: `vlan.id#1==<id>` (outer tag) and, when a
 * frame came from an interface other than the first, `frame.interface_id==<id>`.
 */
import type { QuantileSummary } from './lib/quantiles.js';
import { Quantiles } from './lib/quantiles.js';
import type { PacketView } from '../decode/packet-view.js';
import { ANY_RETRANSMISSION, type TcpPacketResult } from '../flow/tcp-result.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

/** The VLAN key of untagged frames (VLAN ids are 0..4095). */
const UNTAGGED = 4096;
const VLAN_KEYS = 4097;
/** pcapng interface ids are below this (the reader refuses more Interface Description Blocks per section). */
const INTERFACE_KEYS = 65536;
/** Samples each value's RTT and DNS sets keep exactly before bucketing: up to 2 × 2 × (maxValues + 1) sets live at once. */
const EXACT_SAMPLES = 1024;

export function createDimensionsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DimensionsAnalyzer(ctx);
}

/** One row of a window's sub-totals. */
interface DimensionRow {
  packets: number;
  bytes: number;
  retransmissions: number;
  rtt: QuantileSummary;
  dnsTime: QuantileSummary;
  /** The "other" row: how many distinct values it holds. */
  values?: number;
}

/**
 * One dimension's window: values map to rows 0..max-1 in order of first sight,
 * row `max` is "other". `rowOf` is -1 for a value not seen in the window.
 */
class Dimension {
  private readonly rowOf: Int16Array;
  /** The value of each kept row, then (from `max` on) the values folded into "other", to reset `rowOf` at close. */
  private readonly valueOf: Int32Array;
  private used = 0;
  private folded = 0;
  readonly packets: Float64Array;
  readonly bytes: Float64Array;
  readonly retransmissions: Float64Array;
  readonly rtt: Quantiles[] = [];
  readonly dnsTime: Quantiles[] = [];

  constructor(keys: number, private readonly max: number, private readonly label: (value: number) => string) {
    this.rowOf = new Int16Array(keys).fill(-1);
    this.valueOf = new Int32Array(keys + max);
    this.packets = new Float64Array(max + 1);
    this.bytes = new Float64Array(max + 1);
    this.retransmissions = new Float64Array(max + 1);
    for (let i = 0; i <= max; i++) {
      this.rtt.push(new Quantiles(false, EXACT_SAMPLES));
      this.dnsTime.push(new Quantiles(false, EXACT_SAMPLES));
    }
  }

  /** The row of `value` in this window: a new one while fewer than `max` are kept, else "other". */
  row(value: number): number {
    const r = this.rowOf[value]!;
    if (r >= 0) return r;
    const row = this.used < this.max ? this.used++ : this.max;
    if (row === this.max) this.valueOf[this.max + this.folded++] = value;
    else this.valueOf[row] = value;
    this.rowOf[value] = row;
    return row;
  }

  /** The window's rows, by value (numbers ascending, then "untagged"), "other" last; resets the window. */
  close(): { rows: Record<string, DimensionRow>; other: number } {
    const order: number[] = [];
    for (let r = 0; r < this.used; r++) order.push(r);
    order.sort((a, b) => this.valueOf[a]! - this.valueOf[b]!);
    const rows: Record<string, DimensionRow> = {};
    for (const r of order) rows[this.label(this.valueOf[r]!)] = this.rowSummary(r);
    if (this.folded > 0) rows['other'] = { ...this.rowSummary(this.max), values: this.folded };
    const other = this.folded;
    for (let r = 0; r < this.used; r++) this.rowOf[this.valueOf[r]!] = -1;
    for (let i = 0; i < this.folded; i++) this.rowOf[this.valueOf[this.max + i]!] = -1;
    for (let r = 0; r <= this.max; r++) {
      this.packets[r] = this.bytes[r] = this.retransmissions[r] = 0;
      this.rtt[r]!.clear();
      this.dnsTime[r]!.clear();
    }
    this.used = 0;
    this.folded = 0;
    return { rows, other };
  }

  private rowSummary(r: number): DimensionRow {
    return { packets: this.packets[r]!, bytes: this.bytes[r]!, retransmissions: this.retransmissions[r]!, rtt: this.rtt[r]!.summary(), dnsTime: this.dnsTime[r]!.summary() };
  }
}

class DimensionsAnalyzer implements Analyzer {
  readonly id = 'dimensions';
  private readonly vlan: Dimension;
  private readonly iface: Dimension;
  /** The current packet's rows (set in onPacket, which runs before onTcpSegment). */
  private vlanRow = 0;
  private ifaceRow = 0;
  /** Whole-capture frames per outer VLAN id, and per interface id. */
  private readonly vlanFrames = new Float64Array(VLAN_KEYS);
  private readonly interfaceFrames = new Float64Array(INTERFACE_KEYS);
  /** A tagged frame was seen: windows list the VLAN dimension from then on. */
  private tagged = false;
  /** A frame came from an interface other than 0: the report lists frames per interface. */
  private multiInterface = false;

  constructor(private readonly ctx: AnalyzerContext) {
    // maxValues is fixed at start (the rows are preallocated); the config bounds it to 1..1024.
    const max = ctx.config.analyzers.dimensions.maxValues;
    this.vlan = new Dimension(VLAN_KEYS, max, (v) => (v === UNTAGGED ? 'untagged' : String(v)));
    this.iface = new Dimension(INTERFACE_KEYS, max, String);
  }

  onPacket(v: PacketView): void {
    const vlanKey = v.vlan >= 0 ? v.vlan & 0x0fff : UNTAGGED;
    // The reader keeps interface ids below 65536; masked all the same, as the rows are typed arrays.
    const ifaceKey = v.interfaceId & 0xffff;
    if (vlanKey !== UNTAGGED) this.tagged = true;
    if (ifaceKey !== 0) this.multiInterface = true;
    this.vlanFrames[vlanKey]++;
    this.interfaceFrames[ifaceKey]++;
    const vr = this.vlanRow = this.vlan.row(vlanKey);
    const ir = this.ifaceRow = this.iface.row(ifaceKey);
    const bytes = v.wireLen;
    this.vlan.packets[vr]++;
    this.vlan.bytes[vr] += bytes;
    this.iface.packets[ir]++;
    this.iface.bytes[ir] += bytes;
    const dns = this.ctx.dnsMatch;
    if (dns.matched) {
      dns.matched = false;
      this.vlan.dnsTime[vr]!.add(dns.time);
      this.iface.dnsTime[ir]!.add(dns.time);
    }
  }

  onTcpSegment(_v: PacketView, _slot: number, _dir: number, tcp: TcpPacketResult): void {
    if ((tcp.flags & ANY_RETRANSMISSION) !== 0) {
      this.vlan.retransmissions[this.vlanRow]++;
      this.iface.retransmissions[this.ifaceRow]++;
    }
    const rtt = tcp.karnRtt;
    if (rtt > 0) {
      this.vlan.rtt[this.vlanRow]!.add(rtt);
      this.iface.rtt[this.ifaceRow]!.add(rtt);
    }
  }

  closeWindow(): Metrics {
    const vlan = this.vlan.close();
    const iface = this.iface.close();
    return {
      vlan: this.tagged ? vlan.rows : {},
      interface: iface.rows,
      vlanValuesOther: vlan.other,
      interfaceValuesOther: iface.other,
    };
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let id = 0; id < UNTAGGED; id++) if (this.vlanFrames[id]! > 0) out[`vlan.id#1==${id}`] = this.vlanFrames[id]!;
    if (this.multiInterface) {
      for (let id = 0; id < INTERFACE_KEYS; id++) if (this.interfaceFrames[id]! > 0) out[`frame.interface_id==${id}`] = this.interfaceFrames[id]!;
    }
    return out;
  }
}
