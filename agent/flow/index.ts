export { FlowTable, FlowState, FLOW_STATE_NAMES, EndReason, Dir, TcpSynEvent } from './flow-table.js';
export type { FlowTableOptions, FlowListener, EndReasonCode } from './flow-table.js';
export { describeFlow, protoName } from './describe.js';
