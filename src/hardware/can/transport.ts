/**
 * A CAN interface as the control loop uses it, whatever is underneath (SocketCAN on a Jetson's
 * mttcan or a USB adapter, or the virtual bus of the simulated robot). Everything here is
 * non-blocking: the loop sends its frames and takes what has arrived, once per tick.
 */
export interface CanTransport {
  readonly name: string;
  /** error-active is normal; error-passive and bus-off are reported, bus-off stops sending. */
  readonly state: CanBusState;
  /**
   * Queues a frame for sending; false (and counted) when it cannot go now: the queue is full
   * or the controller is bus-off. Never waits.
   */
  send(id: number, data: Uint8Array, length: number): boolean;
  /** Hands every frame received since the last call, that passes the filters, to `take`. */
  receive(take: (id: number, data: Uint8Array, length: number) => void): number;
  /** Only frames whose id & mask equals filter id & mask are received (none set: all). */
  setFilters(filters: readonly CanFilter[]): void;
  /** Leaves bus-off (the controller restart a SocketCAN interface does with restart-ms). */
  restart(): void;
  readonly stats: CanStats;
  close(): void;
}

export type CanBusState = 'error-active' | 'error-passive' | 'bus-off';

export interface CanFilter {
  id: number;
  mask: number;
}

export interface CanStats {
  sent: number;
  received: number;
  /** Sends refused (queue full, bus-off). */
  refused: number;
  /** Received frames dropped because the receive queue was full. */
  overruns: number;
  busOffs: number;
}
