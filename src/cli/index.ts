// The technician's client. The daemon's side of the control socket (the command catalog, the
// server, the wire protocol) lives in src/api/.
export { request } from './client.js';
