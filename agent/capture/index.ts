export { CaptureReader, RECORD, NEED_DATA, END, MAX_PCAP_RECORD } from './capture-reader.js';
export type { CaptureFormat, NextStatus, ReaderFigures, ReaderOptions } from './capture-reader.js';
export { FrameRecord } from './frame-record.js';
export { LinkType, linkTypeName } from './link-types.js';
export { LiveCapture, type LiveCaptureOptions, type LiveCaptureStats } from './live.js';
