/**
 * Every analyzer, in the order they see each packet and close each window.
 * Adding an analyzer is one file and one line here (plus its defaults under
 * `analyzers.<id>` in common/config.ts and config.yaml). `tcp` runs first: the
 * others read its per-packet result; `health` runs last: it reads the others'
 * window metrics.
 */
import type { AnalyzersConfig, Config } from '../../common/config.js';
import type { Analyzer, AnalyzerContext, AnalyzerFactory } from './analyzer.js';
import { createDnsAnalyzer } from './dns.js';
import { createHandshakeAnalyzer } from './handshake.js';
import { createHealthAnalyzer } from './health.js';
import { createHttpAnalyzer } from './http.js';
import { createIcmpAnalyzer } from './icmp.js';
import { createIpFragmentsAnalyzer } from './ip-fragments.js';
import { createResetsAnalyzer } from './resets.js';
import { createRttAnalyzer } from './rtt.js';
import { createTcpAnalyzer } from './tcp.js';
import { createTcpWindowAnalyzer } from './tcp-window.js';
import { createJitterAnalyzer } from './jitter.js';
import { createBurstsAnalyzer } from './bursts.js';
import { createThroughputAnalyzer } from './throughput.js';
import { createTalkersAnalyzer } from './talkers.js';
import { createProtocolsAnalyzer } from './protocols.js';
import { createAsymmetryAnalyzer } from './asymmetry.js';
import { createCaptureAnalyzer } from './capture.js';
import { createSackAnalyzer } from './sack.js';
import { createTlsAnalyzer } from './tls.js';
import { createDimensionsAnalyzer } from './dimensions.js';
import { createServicesAnalyzer } from './services.js';
import { createFloodAnalyzer } from './flood.js';
import { createExfiltrationAnalyzer } from './exfiltration.js';
import { createBeaconingAnalyzer } from './beaconing.js';
import { createPortScanAnalyzer } from './port-scan.js';
import { createBruteForceAnalyzer } from './brute-force.js';
import { createLateralMovementAnalyzer } from './lateral-movement.js';
import { createDnsTunnelingAnalyzer } from './dns-tunneling.js';

export const ANALYZERS: ReadonlyArray<readonly [keyof AnalyzersConfig, AnalyzerFactory]> = [
  ['tcp', createTcpAnalyzer],
  ['handshake', createHandshakeAnalyzer],
  ['rtt', createRttAnalyzer],
  ['tcp_window', createTcpWindowAnalyzer],
  ['resets', createResetsAnalyzer],
  ['dns', createDnsAnalyzer],
  ['http', createHttpAnalyzer],
  ['icmp', createIcmpAnalyzer],
  ['ip_fragments', createIpFragmentsAnalyzer],
  ['jitter', createJitterAnalyzer],
  ['bursts', createBurstsAnalyzer],
  ['throughput', createThroughputAnalyzer],
  ['talkers', createTalkersAnalyzer],
  ['protocols', createProtocolsAnalyzer],
  ['asymmetry', createAsymmetryAnalyzer],
  ['capture', createCaptureAnalyzer],
  ['sack', createSackAnalyzer],
  ['tls', createTlsAnalyzer],
  // after dns: reads the dns.time it matched for the packet (ctx.dnsMatch)
  ['dimensions', createDimensionsAnalyzer],
  ['services', createServicesAnalyzer],
  ['flood', createFloodAnalyzer],
  ['exfiltration', createExfiltrationAnalyzer],
  ['beaconing', createBeaconingAnalyzer],
  ['port_scan', createPortScanAnalyzer],
  ['brute_force', createBruteForceAnalyzer],
  ['lateral_movement', createLateralMovementAnalyzer],
  ['dns_tunneling', createDnsTunnelingAnalyzer],
  // keep last: reads the metrics of the analyzers above
  ['health', createHealthAnalyzer],
];

/** Builds the enabled analyzers; disabled ones are never constructed, so they cost nothing per packet. */
export function createAnalyzers(config: Readonly<Config>, ctx: AnalyzerContext): Analyzer[] {
  return ANALYZERS.filter(([id]) => config.analyzers[id].enabled).map(([, create]) => create(ctx));
}
