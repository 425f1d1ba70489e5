// The api room. A client of the control socket (the technician's `reflex`) imports ./wire.js
// instead: the protocol and `request` without the server side this file also loads.
export { command, NO_ARGS, str, num, oneOf, bool, argsMessage, type CommandSpec, type Catalog, type ArgsOf, type ArgsIn, type ResultOf, type Handler, type Handlers } from './command.js';
export { CommandRegistry, type CommandRunner, type RegistryOptions } from './registry.js';
export { CATALOG, isDaemonCommand, type JointHealth, type DaemonStatus, type ModeResult, type DaemonCatalog, type DaemonCommand, type DaemonHandlers, type DaemonArgs, type DaemonResult } from './catalog.js';
export { ControlSocketServer, RESERVED_COMMAND, groupId, type ControlSocketOptions, type SocketStatus } from './server.js';
export * from './protocol.js';
export { request, remoteError } from './client.js';
export { FaultHistory, describeOrigin, type FaultEntry, type FaultHistoryView } from './faults.js';
export { INTERNAL, needsOperator, changesState, refusal, peerOf, userName, type Origin, type Peer, type AccessOptions } from './access.js';
