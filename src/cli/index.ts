// The technician's client: the `reflex` command (main.ts), its status table and motor tools.
// The client side of the wire protocol (`request`) lives with the protocol, in src/api/.
export { formatStatus } from './format.js';
