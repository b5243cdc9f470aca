/**
 * A detector's allow-list (`analyzers.<id>.allowHosts` / `allowPorts`): hosts
 * (CIDR blocks or single addresses) and ports an operator has vouched for, such
 * as a jump host, a monitoring scanner or a backup service. Traffic it matches
 * is not tracked by the detector (counted as `allowed` in its metrics), so it
 * can neither raise a finding nor take a key from real suspects.
 *
 * Parsed once at start (a bad entry is a ConfigError naming it); the checks
 * are a few integer compares, and a detector with an empty list pays one
 * boolean test.
 */
import { Networks } from '../../../common/networks.js';

export interface AllowConfig {
  /** CIDR blocks or addresses (IPv4 or IPv6). */
  allowHosts: readonly string[];
  /** Ports (0-65535). */
  allowPorts?: readonly number[];
}

export class AllowList {
  /** Whether any host or port is listed: when false every check is false. */
  readonly active: boolean;
  private readonly hosts: Networks;
  private readonly hostsListed: boolean;
  private readonly ports = new Uint8Array(65536);

  /** `key` is the detector's config path (`analyzers.port_scan`), for errors. */
  constructor(config: AllowConfig, key: string) {
    this.hosts = new Networks(config.allowHosts, `${key}.allowHosts`);
    this.hostsListed = config.allowHosts.length > 0;
    const ports = config.allowPorts ?? [];
    for (const p of ports) if (Number.isInteger(p) && p >= 0 && p < 65536) this.ports[p] = 1;
    this.active = this.hostsListed || ports.length > 0;
  }

  /** The address (decoder words, IPv4 in word 0) is listed. */
  host(version: number, words: ArrayLike<number>): boolean {
    return this.hostsListed && this.hosts.contains(version, words);
  }

  /** The port is listed. */
  port(port: number): boolean {
    return this.ports[port] === 1;
  }

  /**
   * Traffic between `a` and `b` to `port` (-1: none, e.g. ICMP) involves a
   * listed host or port: the one check every detector makes, once per flow or
   * attempt.
   */
  covers(version: number, a: ArrayLike<number>, b: ArrayLike<number>, port: number): boolean {
    return this.active && ((port >= 0 && this.port(port)) || this.host(version, a) || this.host(version, b));
  }
}

/** One threshold a finding crossed: the measured figure and the setting it reached. */
export interface Crossing {
  /** What was measured (an evidence field name). */
  measured: string;
  value: number;
  /** The setting (`analyzers.<id>.<setting>`). */
  setting: string;
  limit: number;
  /** `>=` (the usual minimum) or `<=` (a maximum, such as a coefficient of variation). */
  op?: '>=' | '<=';
}

/**
 * The evidence's `thresholds` text: each crossing as "measured value op setting
 * limit", joined by "; " (e.g. "distinctPorts 120 >= minPorts 100"), so an
 * operator sees which setting to tune and by how much.
 */
export function thresholdsCrossed(crossings: readonly Crossing[]): string {
  return crossings.map((c) => `${c.measured} ${round(c.value)} ${c.op ?? '>='} ${c.setting} ${round(c.limit)}`).join('; ');
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * A detector's allow-list as its current config section gives it, rebuilt
 * when a reload (SIGHUP) replaced the section, so a jump host added to the
 * list takes effect without a restart (the agent rejects a bad list before it
 * reaches here). One identity compare per use.
 */
export class ConfiguredAllowList {
  private section: AllowConfig | undefined;
  private list: AllowList | undefined;

  constructor(private readonly current: () => AllowConfig, private readonly key: string) {}

  get(): AllowList {
    const section = this.current();
    if (section !== this.section || this.list === undefined) {
      this.list = new AllowList(section, this.key);
      this.section = section;
    }
    return this.list;
  }
}
