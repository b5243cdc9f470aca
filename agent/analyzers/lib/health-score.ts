/**
 * The health score from its inputs (README, "Health score"): each of six
 * weighted components loses its weight times a fraction from its bands.
 * Used per window by the health analyzer and for a whole report by RangeStats.
 */
import type { Config } from '../../../common/config.js';
import type { HealthComponent, HealthScore } from '../../../common/report.js';

/** Inputs of one score: rates in percent, times in seconds; null when there was nothing to measure. */
export interface HealthInputs {
  retransmissionRate: number | null;
  lossRate: number | null;
  rttP90: number | null;
  dnsP90: number | null;
  dnsFailureRate: number | null;
  jitterP90: number | null;
  anomalies: number;
}

/** Fraction of the weight lost for `value` given ascending band edges and the fraction at each. */
function band(value: number | null, edges: readonly number[], fractions: readonly number[]): number {
  if (value === null) return 0;
  let f = 0;
  for (let i = 0; i < edges.length; i++) if (value >= edges[i]!) f = fractions[i]!;
  return f;
}

export function scoreHealth(x: HealthInputs, config: Readonly<Pick<Config, 'analyzers'>>): HealthScore {
  const a = config.analyzers;
  const [rc1, rc2, rc3] = a.tcp.retransmissionRate as [number, number, number];
  const dnsLatency = band(x.dnsP90, [a.dns.warning, a.dns.critical], [0.5, 1]);
  const dnsFailures = band(x.dnsFailureRate, [1, 5], [0.5, 1]);
  const parts: Array<[string, number | null, number, number]> = [
    ['retransmissions', x.retransmissionRate, 25, band(x.retransmissionRate, [rc1, rc2, rc3], [0.3, 0.6, 1])],
    ['packet_loss', x.lossRate, 20, band(x.lossRate, [0.5, 1, 2, 5], [0.25, 0.5, 0.75, 1])],
    ['rtt', x.rttP90, 20, band(x.rttP90, [a.rtt.warning, a.rtt.critical], [0.5, 1])],
    ['dns', x.dnsP90 === null && x.dnsFailureRate === null ? null : Math.max(x.dnsP90 ?? 0, 0), 15, Math.max(dnsLatency, dnsFailures)],
    ['jitter', x.jitterP90, 10, band(x.jitterP90, [a.jitter.warning, a.jitter.critical], [0.5, 1])],
    ['anomalies', x.anomalies, 10, band(x.anomalies, [1, 3, 6], [0.3, 0.6, 1])],
  ];
  const components: HealthComponent[] = parts.map(([name, value, weight, fraction]) => ({
    name, value: value === null ? null : Math.round(value * 1e6) / 1e6, penalty: Math.round(weight * fraction * 100) / 100, weight,
  }));
  const score = Math.max(0, Math.round((100 - components.reduce((s, c) => s + c.penalty, 0)) * 10) / 10);
  return { score, class: healthClass(score), components };
}

export function healthClass(score: number): string {
  return score >= 90 ? 'excellent' : score >= 75 ? 'good' : score >= 65 ? 'fair' : score >= 50 ? 'poor' : 'critical';
}

