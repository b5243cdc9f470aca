/**
 * prom-client's default process and Node.js metrics under their standard
 * names (process_*, nodejs_*), as Node.js dashboards and alerts expect them,
 * for the agent's and the collector's registries.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * Gauges prom-client names with a `_total` suffix, which Prometheus keeps for
 * counters (`promtool check metrics` flags them). Their figures remain, by
 * type, in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
 */
const MISNAMED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function collectStandardMetrics(register: Registry): void {
  collectDefaultMetrics({ register });
  for (const name of MISNAMED_GAUGES) register.removeSingleMetric(name);
}
