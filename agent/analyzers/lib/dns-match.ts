/**
 * The dns analyzer's response time (dns.time) for the packet being dispatched,
 * so an analyzer that breaks response times down (dimensions) reuses its
 * transaction matching instead of repeating it. The dns analyzer sets it in
 * its onPacket when a response answers a query; a reader later in the
 * registry's order takes it in its own onPacket and clears it.
 */
export class DnsMatch {
  /** True when the current packet answered a query; `time` is then its dns.time in seconds. */
  matched = false;
  time = 0;
}
