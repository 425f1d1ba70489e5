export { FleetLink, type Backoff, type FleetOptions, type FleetStatus } from './link.js';
export { Outbox, type OutboxEntry, type OutboxFs, type OutboxOptions, type OutboxStats } from './outbox.js';
export { LogShipper, type ShippedLog } from './logs.js';
