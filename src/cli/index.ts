export { CommandRegistry, numberArg, stringArg, type Command } from './commands.js';
export { ControlSocketServer, type ControlSocketOptions } from './server.js';
export { request } from './client.js';
export * from './protocol.js';
