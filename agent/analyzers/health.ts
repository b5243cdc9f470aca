/**
 * Health score 0–100 per window and for the whole capture, from the same six
 * weighted components as the PCAP Analyzer this project descends from:
 * retransmissions 25, packet loss 20, RTT 20, DNS 15, jitter 10, anomalies 10.
 * Each component's penalty is its weight times a fraction from its bands
 * (README, "Health score"); a component without data costs nothing.
 * Runs last: it reads the window metrics of the analyzers before it.
 */
import type { Finding, HealthTotals } from '../../common/report.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { scoreHealth, type HealthInputs } from './lib/health-score.js';

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
  /** The last closed window's inputs of the whole-capture score (RangeStats merges them). */
  private closed: HealthTotals | null = null;

  constructor(private readonly ctx: AnalyzerContext) {}

  closeWindow(_span: unknown, earlier: Readonly<Record<string, Metrics>>): Metrics {
    return this.score(earlier, this.ctx.windowFindings());
  }

  /** Sharded: the same score from the merged metrics and findings. */
  mergeWindow(input: WindowMergeInput): Metrics {
    return this.score(input.earlier, input.findings);
  }

  private score(earlier: Readonly<Record<string, Metrics>>, findings: readonly Finding[]): Metrics {
    const tcp = earlier['tcp'];
    const rtt = earlier['rtt'];
    const dns = earlier['dns'];
    const jitter = earlier['jitter'];
    const segments = num(tcp, 'dataSegments');
    const queries = num(dns, 'queries');
    const failures = (num(dns, 'timeouts') ?? 0) + (num(dns, 'serverFailures') ?? 0);
    const anomalies = findings.filter((f) => f.severity !== 'info').length;
    const inputs: HealthInputs = {
      retransmissionRate: pct(num(tcp, 'retransmissions'), segments),
      lossRate: pct(num(tcp, 'lostSegments'), segments),
      rttP90: num(rtt, 'p90'),
      dnsP90: num(dns, 'p90'),
      dnsFailureRate: pct(failures, queries),
      jitterP90: num(jitter, 'p90'),
      anomalies,
    };
    this.closed = {
      dataSegments: segments ?? 0,
      retransmissions: num(tcp, 'retransmissions') ?? 0,
      lostSegments: num(tcp, 'lostSegments') ?? 0,
      dnsQueries: queries ?? 0,
      dnsFailures: failures,
      anomalies,
      rttP90: weighted(inputs.rttP90, num(rtt, 'count')),
      dnsP90: weighted(inputs.dnsP90, num(dns, 'responses')),
      jitterP90: weighted(inputs.jitterP90, num(jitter, 'flows')),
    };
    const health = scoreHealth(inputs, this.ctx.config);
    return { score: health.score, class: health.class, components: health.components };
  }

  rangeInputs(): { health: HealthTotals | null } {
    return { health: this.closed };
  }
}

/** A window's percentile with its weight in the whole-capture mean: its samples, at least 1. */
function weighted(value: number | null, samples: number | null): [number, number] | null {
  return value === null ? null : [value, samples && samples > 0 ? samples : 1];
}
