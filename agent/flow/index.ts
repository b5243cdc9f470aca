export { FlowTable, FlowState, FLOW_STATE_NAMES, EndReason, Dir } from './flow-table.js';
export type { FlowTableOptions, FlowListener, EndReasonCode } from './flow-table.js';
