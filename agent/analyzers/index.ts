export { ANALYZERS, createAnalyzers } from './registry.js';
export type { Analyzer, AnalyzerContext, AnalyzerFactory, FindingDraft, Metrics, ShardRole, WindowSpan } from './analyzer.js';
export { TcpPacketResult, TcpAnalysisFlag, ANY_RETRANSMISSION } from '../flow/tcp-result.js';
