// `reflex top`: the live full-screen view. Ink draws it (React without JSX): it owns the raw
// terminal, redraws only what changed, uses the alternate screen and gives the terminal back as
// it was on q, Ctrl-C or an error. One connection to the daemon, one status per refresh (and
// the fault history every few), so watching costs the daemon little.
import { createElement as h, type ReactElement } from 'react';
import { Box, Text, render, useInput, type Key } from 'ink';
import { errorMessage } from '../core/index.js';
import type { DaemonStatus, FaultHistoryView } from '../api/wire.js';
import { Session } from './session.js';
import { topLines, type LatenessWindow } from './top-view.js';

/** The lateness histogram covers about this much of the recent past, s. */
const WINDOW_S = 10;
/** The fault history is read every this many refreshes. */
const FAULTS_EVERY = 8;

function Screen(props: { lines: string[]; onKey: (input: string, key: Key) => void }): ReactElement {
  useInput(props.onKey);
  return h(Box, { flexDirection: 'column' }, ...props.lines.map((l, i) => h(Text, { key: i, wrap: 'truncate' }, l || ' ')));
}

/**
 * Lateness over the last WINDOW_S: the daemon's counts since start less those of the oldest
 * status kept. Until there are two, or after the daemon restarted (counts went down), since start.
 */
function window(s: DaemonStatus, seen: { atMs: number; counts: number[] }[]): LatenessWindow | null {
  const b = s.loop.latenessBuckets as DaemonStatus['loop']['latenessBuckets'] | undefined;
  if (b === undefined) return null;
  const now = Date.now();
  if (seen.some((x) => x.counts.some((c, i) => c > (b.counts[i] ?? 0)))) seen.length = 0;
  seen.push({ atMs: now, counts: b.counts });
  while (seen.length > 2 && now - seen[1]!.atMs >= WINDOW_S * 1000) seen.shift();
  const first = seen[0]!;
  if (seen.length < 2) return { edgesUs: b.edgesUs, counts: b.counts, seconds: null };
  return { edgesUs: b.edgesUs, counts: b.counts.map((c, i) => c - (first.counts[i] ?? 0)), seconds: (now - first.atMs) / 1000 };
}

export async function top(path: string, intervalMs: number): Promise<void> {
  let session: Session | null = null;
  let status: DaemonStatus | null = null;
  let faults: FaultHistoryView | null = null;
  let problem: string | null = null;
  let message = '';
  /** Lateness bucket counts as the daemon reported them, oldest first, within the window. */
  const seen: { atMs: number; counts: number[] }[] = [];
  let lateness: LatenessWindow | null = null;
  let refreshes = 0;
  let stopped = false;

  const screen = (): ReactElement =>
    h(Screen, {
      lines: topLines({ status, faults, lateness, problem, message, width: process.stdout.columns || 80, height: process.stdout.rows || 24 }),
      onKey,
    });
  // A terminal is interactive whatever CI says: Ink would otherwise draw nothing until exit when
  // CI=true is set (a build agent's shell, a technician's laptop that runs CI jobs).
  const ink = render(screen(), { alternateScreen: true, exitOnCtrlC: true, patchConsole: false, maxFps: 20, interactive: Boolean(process.stdout.isTTY) });
  const redraw = () => {
    if (!stopped) ink.rerender(screen());
  };

  async function connected(): Promise<Session> {
    if (session !== null) return session;
    const s = await Session.connect(path, 2000);
    s.onClose(() => {
      if (session === s) session = null;
    });
    session = s;
    return s;
  }

  function act(what: string, run: (s: Session) => Promise<string>): void {
    message = `${what}...`;
    redraw();
    connected()
      .then(run)
      .then(
        (text) => (message = text),
        (err: unknown) => (message = `${what} failed: ${errorMessage(err)}`),
      )
      .finally(redraw);
  }

  function onKey(input: string): void {
    if (input === 'q') return ink.unmount();
    if (input === 'e') return act('e-stop', async (s) => `e-stop: the loop is in ${(await s.request('estop')).mode}`);
    if (input === 'r') return act('reset', async (s) => `reset: the loop is in ${(await s.request('reset', {}, 60_000)).mode}`);
    if (input === 's') return act('policy start', async (s) => `policy start: the loop is in ${(await s.request('policy.start')).mode}`);
    if (input === 'S') return act('policy stop', async (s) => `policy stop: the loop is in ${(await s.request('policy.stop')).mode}`);
  }

  async function refresh(): Promise<void> {
    try {
      const s = await connected();
      status = await s.request('status', {}, Math.max(2000, intervalMs * 4));
      if (refreshes % FAULTS_EVERY === 0) faults = await s.request('faults', { limit: 10 });
      refreshes++;
      lateness = window(status, seen);
      problem = null;
    } catch (err) {
      problem = `daemon unreachable, retrying: ${errorMessage(err)}`;
    }
    redraw();
  }

  const onResize = () => redraw();
  process.stdout.on('resize', onResize);
  const timer = setInterval(() => void refresh(), intervalMs);
  void refresh();
  try {
    await ink.waitUntilExit();
  } finally {
    stopped = true;
    clearInterval(timer);
    process.stdout.off('resize', onResize);
    (session as Session | null)?.close();
  }
}

