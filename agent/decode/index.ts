export { Decoder } from './decoder.js';
export type { DecoderOptions } from './decoder.js';
export { PacketView } from './packet-view.js';
export { Proto, Transport, TcpFlag, IpProto, EtherType } from './constants.js';
export { ANOMALY_NAMES, Anomaly, AnomalyCounters } from './anomaly.js';
export { readDnsName } from './dns.js';
