/**
 * Services and names: the DNS-proved server names of flows, and each flow's
 * behaviour class.
 *
 * DNS: a response with A or AAAA answers (class IN, over UDP or TCP) tells
 * that its receiver (the client) may soon connect to each answered address
 * under the name it asked for (dns.qry.name, not the CNAME chain's end).
 * The pair (client address, answered address) is remembered with that name
 * in a KeyTable of `maxAddresses` entries (least recently answered evicted
 * first, counted), for the answer's TTL, at least MIN_HOLD_SECONDS and at
 * most `dnsMaxAge` seconds (clients keep using an address a while after the
 * TTL). A flow that starts from that client to that address within the bound
 * learns the name (`ctx.names`, source DNS); TLS SNI and HTTP Host override it.
 * Answers are walked bounds-checked (agent/decode/dns.ts skipName); a
 * malformed or cut record ends the walk and is counted. The only allocation
 * is the question's name, read once per response that has usable answers.
 *
 * By service: each flow's first packet in a window files the flow under its
 * service (the proved name it has then, else its transport and server port,
 * labelled with the IANA name at window close) in the window's table of at
 * most MAX_SERVICES services (flows past it are counted under `other`); its
 * packets, bytes, TCP retransmissions (tcp.analysis.retransmission, all three
 * kinds) and ACK RTT samples (tcp.analysis.ack_rtt, as the tcp analyzer takes
 * them) add up there. The window lists the top `TOP_SERVICES` by packets. A
 * name learned later in the window (a TLS SNI on the fourth packet) applies
 * from the next window on.
 *
 * Behaviour: every packet of a flow marks the whole seconds of packet time
 * the flow was active in (two typed arrays by flow slot); at the flow's end
 * flow/behaviour.ts classifies it from the flow table's counters and that
 * count, and the class goes in `ctx.names` for the report's top flows.
 */
import { Transport } from '../decode/constants.js';
import { Quantiles } from './lib/quantiles.js';
import { skipName, readDnsName } from '../decode/dns.js';
import { u16, u32 } from '../decode/bytes.js';
import type { PacketView } from '../decode/packet-view.js';
import { ANY_RETRANSMISSION, BEHAVIOUR_NAMES, NameSource, classifyFlow, portServiceName, protoName, type TcpPacketResult } from '../flow/index.js';
import { KeyTable } from './lib/key-table.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

/** An answered address is kept at least this long, whatever its TTL (many answers have TTLs of seconds). */
const MIN_HOLD_SECONDS = 60;
/** Answer records walked per response at most (hostile counts cost nothing beyond this). */
const MAX_ANSWERS = 64;
const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
/** Key words: client address (4), answered address (4), IP version. */
const KEY_WIDTH = 9;
/** Services tracked per window (the last row is `other`), and listed. */
const MAX_SERVICES = 256;
const TOP_SERVICES = 10;
const OTHER = MAX_SERVICES;

const ANSWERED_BUCKETS = 1 << 16;

/** The bucket of an address (4 words, unused ones 0) in `answered`. */
function addressBucket(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ b ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ (h >>> 13), 0x85ebca6b);
  h = Math.imul(h ^ d ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & (ANSWERED_BUCKETS - 1);
}

export function createServicesAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ServicesAnalyzer(ctx);
}

class ServicesAnalyzer implements Analyzer {
  readonly id = 'services';
  /** (client, answered address, version) -> id. */
  private readonly table: KeyTable;
  /** Per id: the name asked for, and until when (packet time) flows may take it. */
  private readonly nameOfId: Array<string | undefined>;
  private readonly until: Float64Array;
  /** Per flow slot: the last whole second of packet time it had a packet in, and how many such seconds. */
  private readonly lastSecond: Float64Array;
  private readonly activeSeconds: Uint32Array;
  private readonly client = new Uint32Array(4);
  private readonly server = new Uint32Array(4);
  /** Flows ended in the window, by behaviour class. */
  private readonly behaviours = new Float64Array(BEHAVIOUR_NAMES.length);
  private w = { answers: 0, flowsNamed: 0, malformedAnswers: 0 };
  private addressesEvicted = 0;
  private lastDropped = 0;
  private lastReclaimed = 0;
  /** Per flow slot: its row in the window's service table (set at its first packet in the window). */
  private readonly serviceOfSlot: Int32Array;
  /** The window's service rows: by proved name, or by transport << 16 | server port; the row's key kept for its label. */
  private readonly rowOfName = new Map<string, number>();
  private readonly rowOfPort = new Map<number, number>();
  private readonly rowName: Array<string | undefined> = new Array<string | undefined>(MAX_SERVICES + 1);
  private readonly rowPort = new Int32Array(MAX_SERVICES + 1);
  private rows = 0;
  private readonly rowPackets = new Float64Array(MAX_SERVICES + 1);
  private readonly rowBytes = new Float64Array(MAX_SERVICES + 1);
  private readonly rowRetransmissions = new Float64Array(MAX_SERVICES + 1);
  /** Made at a row's first ACK RTT sample of the run (2 KB each), then reused: at most MAX_SERVICES + 1 ever. */
  private readonly rowRtt: Array<Quantiles | undefined> = new Array<Quantiles | undefined>(MAX_SERVICES + 1);
  private flowsOverflow = 0;
  /**
   * Remembered answers per bucket of answered address (a hash): a flow start whose two addresses
   * fall in empty buckets needs no table lookup, which most flow starts are on a busy link.
   */
  private readonly answered = new Uint32Array(ANSWERED_BUCKETS);

  constructor(private readonly ctx: AnalyzerContext) {
    // At most 4 remembered answers per flow slot: more could not name more flows at once.
    const n = Math.min(ctx.config.analyzers.services.maxAddresses, 4 * ctx.flows.capacity);
    this.table = new KeyTable(n, KEY_WIDTH, (id) => {
      this.addressesEvicted++;
      const t = this.table;
      this.answered[addressBucket(t.keyWord(id, 4), t.keyWord(id, 5), t.keyWord(id, 6), t.keyWord(id, 7))]--;
    });
    this.nameOfId = new Array<string | undefined>(n);
    this.until = new Float64Array(n);
    // Not filled: onFlowStart sets a slot's entries before its first packet (analyze touches only the pages it uses).
    this.lastSecond = new Float64Array(ctx.flows.capacity);
    this.activeSeconds = new Uint32Array(ctx.flows.capacity);
    this.serviceOfSlot = new Int32Array(ctx.flows.capacity);
  }

  onWindowFlow(_v: PacketView, slot: number): void {
    const name = this.ctx.names.nameOf(slot);
    const flows = this.ctx.flows;
    let row: number | undefined;
    if (name !== undefined) {
      row = this.rowOfName.get(name);
      if (row === undefined && this.rows < MAX_SERVICES) {
        row = this.rows++;
        this.rowName[row] = name;
        this.rowOfName.set(name, row);
      }
    } else {
      const proto = flows.proto[slot]!;
      // Ports only for TCP and UDP (an ICMP flow's "port" is an echo id).
      const port = proto << 16 | (proto === Transport.TCP || proto === Transport.UDP ? flows.serverPort(slot) : 0);
      row = this.rowOfPort.get(port);
      if (row === undefined && this.rows < MAX_SERVICES) {
        row = this.rows++;
        this.rowName[row] = undefined;
        this.rowPort[row] = port;
        this.rowOfPort.set(port, row);
      }
    }
    if (row === undefined) { row = OTHER; this.flowsOverflow++; }
    this.serviceOfSlot[slot] = row;
  }

  onTcpSegment(_v: PacketView, slot: number, _dir: number, tcp: TcpPacketResult): void {
    const row = this.serviceOfSlot[slot]!;
    if ((tcp.flags & ANY_RETRANSMISSION) !== 0) this.rowRetransmissions[row]++;
    if (tcp.hasAckRtt) (this.rowRtt[row] ??= new Quantiles(true)).add(tcp.ackRtt);
  }

  onPacket(v: PacketView, slot: number): void {
    if (slot < 0) return;
    const row = this.serviceOfSlot[slot]!;
    this.rowPackets[row]++;
    this.rowBytes[row] += v.wireLen;
    const second = Math.floor(v.ts);
    if (second !== this.lastSecond[slot]) {
      this.lastSecond[slot] = second;
      this.activeSeconds[slot]++;
    }
  }

  onFlowStart(slot: number): void {
    this.lastSecond[slot] = NaN; // the first packet's second always differs
    this.activeSeconds[slot] = 0;
    const flows = this.ctx.flows;
    if (this.table.size === 0) return;
    const c = this.client;
    const sv = this.server;
    flows.copyEndpoints(slot, c, sv);
    const version = flows.version[slot]!;
    const answered = this.answered;
    let id = answered[addressBucket(sv[0]!, sv[1]!, sv[2]!, sv[3]!)] === 0 ? -1 : this.lookup(c, sv, version);
    // The first packet seen may have been the server's (capture started mid-flow): try the other way too.
    if (id < 0 && answered[addressBucket(c[0]!, c[1]!, c[2]!, c[3]!)] !== 0) id = this.lookup(sv, c, version);
    if (id < 0 || this.ctx.clock.now > this.until[id]!) return;
    this.ctx.names.learn(slot, NameSource.DNS, this.nameOfId[id]!);
    this.w.flowsNamed++;
  }

  onFlowEnd(slot: number): void {
    const t = this.ctx.flows;
    const code = classifyFlow(t.packets[slot * 2]!, t.bytes[slot * 2]!, t.packets[slot * 2 + 1]!, t.bytes[slot * 2 + 1]!, t.lastTs[slot]! - t.firstTs[slot]!, this.activeSeconds[slot]!);
    this.ctx.names.setBehaviour(slot, code);
    this.behaviours[code]++;
  }

  onDnsMessage(v: PacketView, slot: number): void {
    if (slot < 0 || !v.dnsIsResponse || v.dnsAnCount === 0 || (v.dnsFlags & 0x0f) !== 0 || v.dnsQnameOff < 0) return;
    // A retransmitted or out-of-order TCP segment is not a DNS message in Wireshark.
    if (v.transport === Transport.TCP && this.ctx.tcpSequence.result.payloadRepeated) return;
    const d = v.l4Data;
    const msg = v.dnsOff;
    const end = Math.min(d.length, v.payloadOff + v.payloadCapLen, msg + v.dnsLen);
    let p = msg + 12;
    for (let q = 0; q < v.dnsQdCount && q < MAX_ANSWERS; q++) {
      p = skipName(d, msg, p, end);
      if (p < 0 || p + 4 > end) return; // the decoder counted it
      p += 4;
    }
    let name: string | null | undefined;
    const key = this.table.key;
    const ttlCap = this.ctx.config.analyzers.services.dnsMaxAge;
    for (let i = 0; i < v.dnsAnCount && i < MAX_ANSWERS; i++) {
      p = skipName(d, msg, p, end);
      if (p < 0 || p + 10 > end) { this.w.malformedAnswers++; return; }
      const type = u16(d, p);
      const cls = u16(d, p + 2) & 0x7fff;
      const ttl = u32(d, p + 4);
      const rdLength = u16(d, p + 8);
      const rdata = p + 10;
      if (rdata + rdLength > end) { this.w.malformedAnswers++; return; }
      p = rdata + rdLength;
      const words = type === TYPE_A && rdLength === 4 ? 1 : type === TYPE_AAAA && rdLength === 16 ? 4 : 0;
      // An address of the other IP version than the client's: the flow to it would come from another client address.
      if (words === 0 || cls !== CLASS_IN || (words === 4) !== (v.ipVersion === 6)) continue;
      if (name === undefined) name = readDnsName(d, msg, v.dnsQnameOff, end);
      if (name === null || name.length === 0) return;
      // The client is the response's receiver.
      for (let k = 0; k < 4; k++) key[k] = v.dst[k]!;
      for (let k = 0; k < 4; k++) key[4 + k] = k < words ? u32(d, rdata + 4 * k) : 0;
      key[8] = v.ipVersion;
      const id = this.table.findOrInsert();
      if (this.table.inserted) this.answered[addressBucket(key[4]!, key[5]!, key[6]!, key[7]!)]++;
      this.nameOfId[id] = name;
      this.until[id] = v.ts + Math.min(Math.max(ttl, MIN_HOLD_SECONDS), ttlCap);
      this.w.answers++;
    }
  }

  private lookup(client: Uint32Array, server: Uint32Array, version: number): number {
    const key = this.table.key;
    for (let k = 0; k < 4; k++) { key[k] = client[k]!; key[4 + k] = server[k]!; }
    key[8] = version;
    return this.table.find();
  }

  closeWindow(): Metrics {
    const names = this.ctx.names;
    const w = this.w;
    const metrics: Metrics = {
      dnsAnswers: w.answers,
      flowsNamedByDns: w.flowsNamed,
      malformedAnswers: w.malformedAnswers,
      addresses: this.table.size,
      addressesEvicted: this.addressesEvicted,
      names: names.size,
      namesDropped: names.namesDropped - this.lastDropped,
      namesReclaimed: names.namesReclaimed - this.lastReclaimed,
      behaviours: Object.fromEntries(BEHAVIOUR_NAMES.map((name, i) => [name, this.behaviours[i]!])),
      services: this.rows,
      flowsOverflow: this.flowsOverflow,
      byService: this.topServices(),
    };
    this.clearServices();
    this.behaviours.fill(0);
    this.lastDropped = names.namesDropped;
    this.lastReclaimed = names.namesReclaimed;
    this.addressesEvicted = 0;
    this.w = { answers: 0, flowsNamed: 0, malformedAnswers: 0 };
    return metrics;
  }

  /** The window's top services by packets (ties by label), then `other` when flows overflowed the table. */
  private topServices(): Array<Record<string, string | number | null>> {
    const label = (row: number): string => {
      if (row === OTHER) return 'other';
      const name = this.rowName[row];
      if (name !== undefined) return name;
      const key = this.rowPort[row]!;
      const proto = key >>> 16;
      const port = key & 0xffff;
      if (proto !== Transport.TCP && proto !== Transport.UDP) return protoName(proto);
      return portServiceName(proto, port) ?? `${protoName(proto)}/${port}`;
    };
    const rows: number[] = [];
    for (let r = 0; r < this.rows; r++) if (this.rowPackets[r]! > 0) rows.push(r);
    const labels = rows.map(label);
    const order = rows.map((_, i) => i).sort((a, b) => this.rowPackets[rows[b]!]! - this.rowPackets[rows[a]!]! || (labels[a]! < labels[b]! ? -1 : 1)).slice(0, TOP_SERVICES);
    const pick = order.map((i) => rows[i]!);
    if (this.rowPackets[OTHER]! > 0) pick.push(OTHER);
    return pick.map((r) => {
      const rtt = this.rowRtt[r]?.summary() ?? { count: 0, p50: null };
      return {
        service: label(r), packets: this.rowPackets[r]!, bytes: this.rowBytes[r]!,
        'tcp.analysis.retransmission': this.rowRetransmissions[r]!, 'tcp.analysis.ack_rtt.count': rtt.count, 'tcp.analysis.ack_rtt.p50': rtt.p50,
      };
    });
  }

  private clearServices(): void {
    for (let r = 0; r < this.rows; r++) this.resetRow(r);
    this.resetRow(OTHER);
    this.rows = 0;
    this.rowOfName.clear();
    this.rowOfPort.clear();
    this.flowsOverflow = 0;
  }

  private resetRow(r: number): void {
    this.rowName[r] = undefined;
    this.rowPackets[r] = 0;
    this.rowBytes[r] = 0;
    this.rowRetransmissions[r] = 0;
    const rtt = this.rowRtt[r];
    if (rtt !== undefined && rtt.count > 0) rtt.clear();
  }

  counters(): Record<string, number> {
    return this.ctx.names.namesDropped ? { 'services.names_dropped': this.ctx.names.namesDropped } : {};
  }
}
