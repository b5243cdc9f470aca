export { FlowTable, FlowState, FLOW_STATE_NAMES, EndReason, Dir, TcpSynEvent } from './flow-table.js';
export type { FlowTableOptions, FlowListener, EndReasonCode } from './flow-table.js';
export { connectionKey, describeFlow, describeFlowWithService, flowRef, protoName, withService } from './describe.js';
export { TcpSequenceAnalysis } from './tcp-sequence.js';
export { TcpPacketResult, TcpAnalysisFlag, ANY_RETRANSMISSION } from './tcp-result.js';
export { ConnectionAttempts, AttemptEvent, ATTEMPT_TIMEOUT, type AttemptEventCode } from './connection-attempts.js';
export { FlowNames, NameSource, NAME_SOURCE_NAMES, type NameSourceCode } from './flow-names.js';
export { Behaviour, BEHAVIOUR_NAMES, classifyFlow, type BehaviourCode, type BehaviourName } from './behaviour.js';
export { portServiceName } from './port-service.js';
