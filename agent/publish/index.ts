export { Publisher } from './publisher.js';
export type { OutboundMessage, PublisherStats, PublisherOptions, EnqueueOptions } from './publisher.js';
export { Spool } from './spool.js';
export type { SpoolOptions, SpoolEntry } from './spool.js';
