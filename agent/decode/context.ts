import type { AnomalyCounters } from './anomaly.js';
import type { PacketView } from './packet-view.js';

/** State shared by the layer decoders while one frame is decoded. */
export interface DecodeContext {
  readonly view: PacketView;
  readonly anomalies: AnomalyCounters;
  /** Nesting depth of IP-in-IP tunnels, capped to stop hostile recursion. */
  depth: number;
}

/** Records a malformed layer: counted by name, and the first one kept on the view. */
export function flagAnomaly(ctx: DecodeContext, id: number): void {
  ctx.anomalies.add(id);
  if (ctx.view.anomaly === 0) ctx.view.anomaly = id;
}
