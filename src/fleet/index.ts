export { FleetLink, FLEET_COMMANDS, type FleetOptions, type FleetStatus } from './link.js';
export { Outbox, type OutboxEntry, type OutboxStats } from './outbox.js';
export { LogShipper, type ShippedLog } from './logs.js';
