/** The analyzers that can run flow-sharded (a mergeWindow), as a configuration and as the agent's environment. */
import { buildConfig, loadConfig, type Config } from '../../common/config.js';
import { unshardableAnalyzers } from '../../agent/shard/workers.js';

/** The default configuration with only the analyzers that can run sharded. */
export function shardableConfig(): Readonly<Config> {
  const defaults = loadConfig();
  const off = new Set(unshardableAnalyzers(defaults));
  const analyzers = Object.fromEntries(Object.keys(defaults.analyzers).map((id) => [id, { enabled: !off.has(id) }]));
  return buildConfig({ analyzers });
}

/** Environment variables that switch off the analyzers that cannot run sharded (PCAP_ANALYZER_ANALYZERS_<ID>_ENABLED). */
export function shardableEnv(): Record<string, string> {
  return Object.fromEntries(unshardableAnalyzers(loadConfig()).map((id) => [`PCAP_ANALYZER_ANALYZERS_${id.toUpperCase()}_ENABLED`, 'false']));
}
