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
   * Queues a frame for sending (id of 11 or 29 bits; flags: CanFlag.RTR, CanFlag.EXTENDED); false (and counted) when it cannot go now: the queue is full
   * or the controller is bus-off. Never waits.
   */
  send(id: number, data: Uint8Array, length: number, flags?: number): boolean;
  /**
   * Hands every frame received since the last call, that passes the filters, to `take`. Error
   * frames are not handed on: they update `state` and are counted.
   */
  receive(take: (id: number, data: Uint8Array, length: number, flags: number) => void): number;
  /** Waits at most `timeoutUs` for a frame to arrive; true when one is there to receive. */
  wait(timeoutUs: number): boolean;
  /** Only frames whose id & mask equals filter id & mask are received (none set: all). */
  setFilters(filters: readonly CanFilter[]): void;
  /**
   * Asks to leave bus-off. The virtual bus restarts at once; a SocketCAN interface restarts by
   * itself after its restart-ms (set where the interface is brought up), and the error frame
   * that says so returns `state` to error-active.
   */
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
  /** Error frames seen (bus errors, state changes, restarts). */
  errorFrames: number;
}
