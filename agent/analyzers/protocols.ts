/**
 * Protocol mix per window: packets and bytes (frame lengths) per transport
 * (tcp, udp, icmp, icmpv6, other IP, non-ip) and per service. The service of
 * a TCP or UDP packet is named after its flow's server port (the port the
 * client connected to, so both directions count for the service): a name
 * from the small table below (`http`, `dns`, ...; the same name for TCP and
 * UDP where the port means the same service), else `tcp/<port>` or
 * `udp/<port>` for ports below 1024, else `tcp/other` or `udp/other`.
 *
 * Every service has a fixed index computed at construction, so the
 * per-packet path is two array look-ups and two additions.
 */
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

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

  onPacket(v: PacketView, slot: number): void {
    const len = v.wireLen;
    const t = v.transport;
    const ti = v.ipVersion === 0 ? T_NON_IP
      : t === Transport.TCP ? T_TCP : t === Transport.UDP ? T_UDP
        : t === Transport.ICMP ? T_ICMP : t === Transport.ICMPV6 ? T_ICMPV6 : T_OTHER;
    this.transportPackets[ti]++;
    this.transportBytes[ti] += len;
    if ((ti !== T_TCP && ti !== T_UDP) || slot < 0) return;
    const port = this.ctx.flows.serverPort(slot);
    const s = ti === T_TCP ? this.tcpService[port]! : this.udpService[port]!;
    this.servicePackets[s]++;
    this.serviceBytes[s] += len;
  }

  closeWindow(): Metrics {
    const transports: Record<string, { packets: number; bytes: number }> = {};
    TRANSPORTS.forEach((name, i) => { transports[name] = { packets: this.transportPackets[i]!, bytes: this.transportBytes[i]! }; });
    const used: number[] = [];
    for (let i = 0; i < this.serviceNames.length; i++) if (this.servicePackets[i]! > 0) used.push(i);
    used.sort((a, b) => this.serviceBytes[b]! - this.serviceBytes[a]! || (this.serviceNames[a]! < this.serviceNames[b]! ? -1 : 1));
    const services: Record<string, { packets: number; bytes: number }> = {};
    for (const i of used) services[this.serviceNames[i]!] = { packets: this.servicePackets[i]!, bytes: this.serviceBytes[i]! };
    this.transportPackets.fill(0);
    this.transportBytes.fill(0);
    this.servicePackets.fill(0);
    this.serviceBytes.fill(0);
    return { transports, services };
  }
}
