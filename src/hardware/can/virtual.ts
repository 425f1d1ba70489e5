// The virtual CAN bus: endpoints on one hub, in one thread, each frame delivered to every other
// endpoint (as a real bus does), with bounded receive queues and the bus states of a real
// controller, so that drivers and the simulated motors meet the same conditions.
import type { CanBusState, CanFilter, CanStats, CanTransport } from './transport.js';

const QUEUE = 256;

export class VirtualCanHub {
  private readonly ends = new Set<VirtualCan>();

  endpoint(name: string): VirtualCan {
    const e = new VirtualCan(name, this);
    this.ends.add(e);
    return e;
  }

  /** @internal */
  broadcast(from: VirtualCan, id: number, data: Uint8Array, length: number): void {
    for (const e of this.ends) if (e !== from) e.deliver(id, data, length);
  }

  /** @internal */
  remove(e: VirtualCan): void {
    this.ends.delete(e);
  }
}

export class VirtualCan implements CanTransport {
  state: CanBusState = 'error-active';
  readonly stats: CanStats = { sent: 0, received: 0, refused: 0, overruns: 0, busOffs: 0 };
  private readonly ids = new Uint32Array(QUEUE);
  private readonly lens = new Uint8Array(QUEUE);
  private readonly data = new Uint8Array(QUEUE * 8);
  private head = 0;
  private count = 0;
  private filters: readonly CanFilter[] = [];
  private readonly view = new Uint8Array(8);

  constructor(
    readonly name: string,
    private readonly hub: VirtualCanHub,
  ) {}

  send(id: number, data: Uint8Array, length: number): boolean {
    if (this.state === 'bus-off' || length > 8) {
      this.stats.refused++;
      return false;
    }
    this.stats.sent++;
    this.hub.broadcast(this, id, data, length);
    return true;
  }

  /** @internal */
  deliver(id: number, data: Uint8Array, length: number): void {
    if (this.filters.length > 0 && !this.filters.some((f) => (id & f.mask) === (f.id & f.mask))) return;
    if (this.count === QUEUE) {
      this.stats.overruns++;
      return;
    }
    const slot = (this.head + this.count) % QUEUE;
    this.ids[slot] = id;
    this.lens[slot] = length;
    for (let i = 0; i < length; i++) this.data[slot * 8 + i] = data[i]!;
    this.count++;
  }

  receive(take: (id: number, data: Uint8Array, length: number) => void): number {
    let n = 0;
    while (this.count > 0) {
      const slot = this.head;
      const len = this.lens[slot]!;
      for (let i = 0; i < len; i++) this.view[i] = this.data[slot * 8 + i]!;
      this.head = (this.head + 1) % QUEUE;
      this.count--;
      this.stats.received++;
      n++;
      take(this.ids[slot]!, this.view, len);
    }
    return n;
  }

  setFilters(filters: readonly CanFilter[]): void {
    this.filters = filters.map((f) => ({ ...f }));
  }

  /** Fault injection: the controller goes error-passive or bus-off, as a shorted bus makes it. */
  injectState(state: CanBusState): void {
    if (state === 'bus-off' && this.state !== 'bus-off') this.stats.busOffs++;
    this.state = state;
  }

  restart(): void {
    this.state = 'error-active';
  }

  close(): void {
    this.hub.remove(this);
  }
}
