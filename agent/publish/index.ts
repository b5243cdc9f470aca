export { Publisher, STREAM_SUBJECTS, redactUrl } from './publisher.js';
export type { OutboundMessage, PublisherStats, PublisherOptions, EnqueueOptions } from './publisher.js';
export { Spool } from './spool.js';
export type { SpoolOptions, SpoolEntry } from './spool.js';
