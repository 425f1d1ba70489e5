// The virtual CAN bus: endpoints on one hub, in one thread, each frame delivered to every other
// endpoint (as a real bus does), with bounded receive queues and the bus states of a real
// controller, so that drivers and the simulated motors meet the same conditions. Simulated
// devices listen with a callback and answer at once; other threads and processes reach the
// hub through VirtualCanServer.
import type { CanBusState, CanFilter, CanStats, CanTransport } from './transport.js';

const QUEUE = 256;

export type FrameHandler = (id: number, data: Uint8Array, length: number, flags: number) => void;

interface Node {
  deliver(id: number, data: Uint8Array, length: number, flags: number): void;
}

export class VirtualCanHub {
  private readonly nodes = new Set<Node>();

  endpoint(name: string): VirtualCan {
    const e = new VirtualCan(name, this);
    this.nodes.add(e);
    return e;
  }

  /** A device on the bus: `handle` sees every frame others send, as they send it. */
  listen(handle: FrameHandler): { send(id: number, data: Uint8Array, length: number, flags?: number): void; close(): void } {
    const node: Node = { deliver: handle };
    this.nodes.add(node);
    return {
      send: (id, data, length, flags = 0) => this.broadcast(node, id, data, length, flags),
      close: () => this.nodes.delete(node),
    };
  }

  /** @internal */
  broadcast(from: Node, id: number, data: Uint8Array, length: number, flags: number): void {
    for (const e of this.nodes) if (e !== from) e.deliver(id, data, length, flags);
  }

  /** @internal */
  remove(e: Node): void {
    this.nodes.delete(e);
  }
}

export class VirtualCan implements CanTransport {
  state: CanBusState = 'error-active';
  readonly stats: CanStats = { sent: 0, received: 0, refused: 0, overruns: 0, busOffs: 0, errorFrames: 0 };
  private readonly ids = new Uint32Array(QUEUE);
  private readonly lens = new Uint8Array(QUEUE);
  private readonly flags = new Uint8Array(QUEUE);
  private readonly data = new Uint8Array(QUEUE * 8);
  private head = 0;
  private count = 0;
  private filterList: readonly CanFilter[] = [];
  private readonly view = new Uint8Array(8);

  constructor(
    readonly name: string,
    private readonly hub: VirtualCanHub,
  ) {}

  send(id: number, data: Uint8Array, length: number, flags = 0): boolean {
    if (this.state === 'bus-off' || length > 8) {
      this.stats.refused++;
      return false;
    }
    this.stats.sent++;
    this.hub.broadcast(this, id, data, length, flags);
    return true;
  }

  /** @internal */
  deliver(id: number, data: Uint8Array, length: number, flags: number): void {
    if (!passes(this.filterList, id)) return;
    if (this.count === QUEUE) {
      this.stats.overruns++;
      return;
    }
    const slot = (this.head + this.count) % QUEUE;
    this.ids[slot] = id;
    this.lens[slot] = length;
    this.flags[slot] = flags;
    for (let i = 0; i < length; i++) this.data[slot * 8 + i] = data[i]!;
    this.count++;
  }

  receive(take: FrameHandler): number {
    let n = 0;
    while (this.count > 0) {
      const slot = this.head;
      const len = this.lens[slot]!;
      for (let i = 0; i < len; i++) this.view[i] = this.data[slot * 8 + i]!;
      this.head = (this.head + 1) % QUEUE;
      this.count--;
      this.stats.received++;
      n++;
      take(this.ids[slot]!, this.view, len, this.flags[slot]!);
    }
    return n;
  }

  /** Nothing else in this thread can send while we wait: what is queued is all there will be. */
  wait(_timeoutUs: number): boolean {
    return this.count > 0;
  }

  setFilters(filters: readonly CanFilter[]): void {
    this.filterList = filters.map((f) => ({ ...f }));
  }

  /** Fault injection: the controller goes error-passive or bus-off, as a shorted bus makes it. */
  injectState(state: CanBusState): void {
    if (state === 'bus-off' && this.state !== 'bus-off') this.stats.busOffs++;
    this.stats.errorFrames++;
    this.state = state;
  }

  restart(): void {
    this.state = 'error-active';
  }

  close(): void {
    this.hub.remove(this);
  }
}

/** Whether a frame passes a receive filter list (none: every frame). */
export function passes(filters: readonly CanFilter[], id: number): boolean {
  if (filters.length === 0) return true;
  for (const f of filters) if (((id ^ f.id) & f.mask) === 0) return true;
  return false;
}
