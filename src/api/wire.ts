// The api room's second entry: the client side of the control socket only (the wire protocol,
// one-shot requests, the catalog's types), for the technician's `reflex` command. The room's
// index.ts also loads the server side (the command catalog's zod schemas, the socket server,
// access control), which a client never runs and which costs `reflex status` a large share of
// its start-up. Types from the catalog travel as types only (erased at run time), so nothing
// here loads the catalog.
export { LineSplitter, OVERLONG, MAX_LINE_BYTES, isObject, type Request, type RequestId, type Response } from './protocol.js';
export { request, remoteError } from './client.js';
export type { JointHealth, DaemonStatus, ModeResult, DaemonCommand, DaemonArgs, DaemonResult } from './catalog.js';
export type { FaultEntry, FaultHistoryView } from './faults.js';
