/**
 * Protocol mix per window: packets and bytes (frame lengths) per transport
 * (tcp, udp, icmp, icmpv6, other IP, non-ip) and per service. The service of
 * a TCP or UDP packet is named after its flow's server port (the port the
 * client connected to, so both directions count for the service): a name
 * from the small table below (`http`, `dns`, ...; the same name for TCP and
 * UDP where the port means the same service), else `tcp/<port>` or
 * `udp/<port>` for ports below 1024, else `tcp/other` or `udp/other`.
 *
 * Every service has a fixed index computed at construction. Packets of flows
 * are not counted here one by one: each flow's packets and bytes in the
 * window come from the window flow accounting (`ctx.windowFlows`, the flow
 * table's counters), added by the flow's transport and service at window
 * close, or at the flow's end when it ends during the window. Only packets
 * without a flow (non-IP, IP without a transport header) are counted per
 * packet.
 */
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';

/** Well-known server ports: [port, tcp name, udp name] (null: the port has no such service on that transport). */
const WELL_KNOWN: ReadonlyArray<readonly [number, string | null, string | null]> = [
  [20, 'ftp-data', null],
  [21, 'ftp', null],
  [22, 'ssh', null],
  [23, 'telnet', null],
  [25, 'smtp', null],
  [53, 'dns', 'dns'],
  [67, null, 'dhcp'],
  [68, null, 'dhcp'],
  [69, null, 'tftp'],
  [80, 'http', null],
  [88, 'kerberos', 'kerberos'],
  [110, 'pop3', null],
  [123, null, 'ntp'],
  [137, null, 'netbios-ns'],
  [138, null, 'netbios-dgm'],
  [139, 'netbios-ssn', null],
  [143, 'imap', null],
  [161, null, 'snmp'],
  [162, null, 'snmp-trap'],
  [389, 'ldap', 'ldap'],
  [443, 'https', 'quic'],
  [445, 'smb', null],
  [465, 'smtps', null],
  [500, null, 'isakmp'],
  [514, 'syslog', 'syslog'],
  [547, null, 'dhcpv6'],
  [587, 'submission', null],
  [636, 'ldaps', null],
  [853, 'dns-over-tls', 'dns-over-quic'],
  [993, 'imaps', null],
  [995, 'pop3s', null],
  [1194, 'openvpn', 'openvpn'],
  [1433, 'mssql', null],
  [1900, null, 'ssdp'],
  [3306, 'mysql', null],
  [3389, 'rdp', 'rdp'],
  [4500, null, 'ipsec-nat-t'],
  [5060, 'sip', 'sip'],
  [5353, null, 'mdns'],
  [5432, 'postgresql', null],
  [6379, 'redis', null],
  [8080, 'http-alt', null],
  [8443, 'https-alt', null],
];

const TRANSPORTS = ['tcp', 'udp', 'icmp', 'icmpv6', 'other', 'non-ip'] as const;
const T_TCP = 0;
const T_UDP = 1;
const T_ICMP = 2;
const T_ICMPV6 = 3;
const T_OTHER = 4;
const T_NON_IP = 5;

export function createProtocolsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ProtocolsAnalyzer(ctx);
}

class ProtocolsAnalyzer implements Analyzer {
  readonly id = 'protocols';
  private readonly transportPackets = new Float64Array(TRANSPORTS.length);
  private readonly transportBytes = new Float64Array(TRANSPORTS.length);
  /** Service index by server port, for TCP and UDP. */
  private readonly tcpService = new Uint16Array(65536);
  private readonly udpService = new Uint16Array(65536);
  private readonly serviceNames: string[] = [];
  private readonly servicePackets: Float64Array;
  private readonly serviceBytes: Float64Array;

  constructor(private readonly ctx: AnalyzerContext) {
    const ids = new Map<string, number>();
    const id = (name: string): number => {
      let i = ids.get(name);
      if (i === undefined) { i = this.serviceNames.length; this.serviceNames.push(name); ids.set(name, i); }
      return i;
    };
    const tcpOther = id('tcp/other');
    const udpOther = id('udp/other');
    this.tcpService.fill(tcpOther);
    this.udpService.fill(udpOther);
    for (let port = 0; port < 1024; port++) {
      this.tcpService[port] = id(`tcp/${port}`);
      this.udpService[port] = id(`udp/${port}`);
    }
    for (const [port, tcpName, udpName] of WELL_KNOWN) {
      if (tcpName !== null) this.tcpService[port] = id(tcpName);
      if (udpName !== null) this.udpService[port] = id(udpName);
    }
    this.servicePackets = new Float64Array(this.serviceNames.length);
    this.serviceBytes = new Float64Array(this.serviceNames.length);
  }

  /** Non-IP frames, and IP packets without a transport header (no flow: counted as other IP). */
  onFlowlessPacket(v: PacketView): void {
    const ti = v.ipVersion === 0 ? T_NON_IP : T_OTHER;
    this.transportPackets[ti]++;
    this.transportBytes[ti] += v.wireLen;
  }

  onFlowEnd(slot: number): void {
    if (this.ctx.windowFlows.active.has(slot)) this.addFlow(slot);
  }

  /** A flow's packets and bytes in the window, by its transport and (TCP, UDP) its server port's service. */
  private addFlow(slot: number): void {
    const win = this.ctx.windowFlows;
    const packets = win.packetsIn(slot, Dir.CLIENT_TO_SERVER) + win.packetsIn(slot, Dir.SERVER_TO_CLIENT);
    const bytes = win.bytesIn(slot, Dir.CLIENT_TO_SERVER) + win.bytesIn(slot, Dir.SERVER_TO_CLIENT);
    const flows = this.ctx.flows;
    const p = flows.proto[slot];
    const ti = p === Transport.TCP ? T_TCP : p === Transport.UDP ? T_UDP
      : p === Transport.ICMP ? T_ICMP : p === Transport.ICMPV6 ? T_ICMPV6 : T_OTHER;
    this.transportPackets[ti] += packets;
    this.transportBytes[ti] += bytes;
    if (ti !== T_TCP && ti !== T_UDP) return;
    const port = flows.serverPort(slot);
    const s = ti === T_TCP ? this.tcpService[port]! : this.udpService[port]!;
    this.servicePackets[s] += packets;
    this.serviceBytes[s] += bytes;
  }

  closeWindow(): Metrics {
    const set = this.ctx.windowFlows.active;
    for (let k = 0; k < set.size; k++) this.addFlow(set.slots[k]!);
    const transports: Record<string, { packets: number; bytes: number }> = {};
    TRANSPORTS.forEach((name, i) => { transports[name] = { packets: this.transportPackets[i]!, bytes: this.transportBytes[i]! }; });
    const services: Record<string, { packets: number; bytes: number }> = {};
    for (let i = 0; i < this.serviceNames.length; i++) {
      if (this.servicePackets[i]! > 0) services[this.serviceNames[i]!] = { packets: this.servicePackets[i]!, bytes: this.serviceBytes[i]! };
    }
    this.transportPackets.fill(0);
    this.transportBytes.fill(0);
    this.servicePackets.fill(0);
    this.serviceBytes.fill(0);
    return { transports, services: byBytes(services) };
  }

  /** Flow-sharded workers: every flow is counted in one worker, so the counts add up; services are sorted again. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const merged = sumMetrics(input.metrics);
    return { transports: merged['transports'], services: byBytes(merged['services'] as Record<string, { packets: number; bytes: number }>) };
  }
}

/** Services by bytes, the most first (ties: by name). */
function byBytes(services: Record<string, { packets: number; bytes: number }>): Record<string, { packets: number; bytes: number }> {
  const names = Object.keys(services).sort((a, b) => services[b]!.bytes - services[a]!.bytes || (a < b ? -1 : 1));
  const out: Record<string, { packets: number; bytes: number }> = {};
  for (const name of names) out[name] = services[name]!;
  return out;
}
