/**
 * Health score 0–100 per window and for the whole capture, from the same six
 * weighted components as the PCAP Analyzer this project descends from:
 * retransmissions 25, packet loss 20, RTT 20, DNS 15, jitter 10, anomalies 10.
 * Each component's penalty is its weight times a fraction from its bands
 * (README, "Health score"); a component without data costs nothing.
 * Runs last: it reads the window metrics of the analyzers before it.
 */
import type { Config } from '../../common/config.js';
import type { HealthComponent, HealthScore } from '../../common/report.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

/** Inputs of one score: rates in percent, times in seconds; null when there was nothing to measure. */
interface HealthInputs {
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

export function scoreHealth(x: HealthInputs, config: Readonly<Config>): HealthScore {
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

const num = (m: Metrics | undefined, key: string): number | null => {
  const v = m?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
};
const pct = (part: number | null, whole: number | null): number | null => (whole ? ((part ?? 0) / whole) * 100 : null);

export function createHealthAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new HealthAnalyzer(ctx);
}

class HealthAnalyzer implements Analyzer {
  readonly id = 'health';
  // Whole-capture sums, for the overall score.
  private segments = 0;
  private retransmissions = 0;
  private lost = 0;
  private dnsQueries = 0;
  private dnsFailures = 0;
  private anomalies = 0;
  private readonly weighted = { rtt: [0, 0], dns: [0, 0], jitter: [0, 0] };

  constructor(private readonly ctx: AnalyzerContext) {}


  closeWindow(_span: unknown, earlier: Readonly<Record<string, Metrics>>): Metrics {
    const tcp = earlier['tcp'];
    const rtt = earlier['rtt'];
    const dns = earlier['dns'];
    const jitter = earlier['jitter'];
    const segments = num(tcp, 'dataSegments');
    const queries = num(dns, 'queries');
    const failures = (num(dns, 'timeouts') ?? 0) + (num(dns, 'serverFailures') ?? 0);
    const anomalies = this.ctx.windowFindings().filter((f) => f.severity !== 'info').length;
    const inputs: HealthInputs = {
      retransmissionRate: pct(num(tcp, 'retransmissions'), segments),
      lossRate: pct(num(tcp, 'lostSegments'), segments),
      rttP90: num(rtt, 'p90'),
      dnsP90: num(dns, 'p90'),
      dnsFailureRate: pct(failures, queries),
      jitterP90: num(jitter, 'p90'),
      anomalies,
    };
    this.segments += segments ?? 0;
    this.retransmissions += num(tcp, 'retransmissions') ?? 0;
    this.lost += num(tcp, 'lostSegments') ?? 0;
    this.dnsQueries += queries ?? 0;
    this.dnsFailures += failures;
    this.anomalies += anomalies;
    this.addWeighted(this.weighted.rtt, inputs.rttP90, num(rtt, 'count'));
    this.addWeighted(this.weighted.dns, inputs.dnsP90, num(dns, 'responses'));
    this.addWeighted(this.weighted.jitter, inputs.jitterP90, num(jitter, 'flows'));
    const health = scoreHealth(inputs, this.ctx.config);
    return { score: health.score, class: health.class, components: health.components };
  }

  private addWeighted(acc: number[], value: number | null, weight: number | null): void {
    if (value === null) return;
    const w = weight && weight > 0 ? weight : 1;
    acc[0]! += value * w;
    acc[1]! += w;
  }

  /** The whole capture: rates from totals, percentiles as the sample-weighted mean of the windows' p90s. */
  summary(): Record<string, unknown> {
    const mean = (acc: number[]): number | null => (acc[1] ? acc[0]! / acc[1]! : null);
    return {
      healthScore: scoreHealth({
        retransmissionRate: pct(this.retransmissions, this.segments),
        lossRate: pct(this.lost, this.segments),
        rttP90: mean(this.weighted.rtt),
        dnsP90: mean(this.weighted.dns),
        dnsFailureRate: pct(this.dnsFailures, this.dnsQueries),
        jitterP90: mean(this.weighted.jitter),
        anomalies: this.anomalies,
      }, this.ctx.config),
    };
  }
}
