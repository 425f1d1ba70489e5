// `reflex top`: the live full-screen view. Ink draws it (React without JSX): it owns the raw
// terminal, redraws only what changed, uses the alternate screen and gives the terminal back as
// it was on q, Ctrl-C or an error. One connection to the daemon, one status per refresh (and
// the fault history every few), so watching costs the daemon little.
import { createElement as h, type ReactElement } from 'react';
import { Box, Text, render, useInput, type Key } from 'ink';
import { errorMessage } from '../core/index.js';
import type { DaemonStatus, FaultHistoryView } from '../api/index.js';
import { Session } from './session.js';
import { topLines } from './top-view.js';

/** Refreshes of p99 lateness the sparkline keeps. */
const HISTORY = 40;
/** The fault history is read every this many refreshes. */
const FAULTS_EVERY = 8;

function Screen(props: { lines: string[]; onKey: (input: string, key: Key) => void }): ReactElement {
  useInput(props.onKey);
  return h(Box, { flexDirection: 'column' }, ...props.lines.map((l, i) => h(Text, { key: i, wrap: 'truncate' }, l || ' ')));
}

export async function top(path: string, intervalMs: number): Promise<void> {
  let session: Session | null = null;
  let status: DaemonStatus | null = null;
  let faults: FaultHistoryView | null = null;
  let problem: string | null = null;
  let message = '';
  const history: number[] = [];
  let refreshes = 0;
  let stopped = false;

  const screen = (): ReactElement =>
    h(Screen, {
      lines: topLines({ status, faults, latenessHistory: history, problem, message, width: process.stdout.columns || 80, height: process.stdout.rows || 24 }),
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
      history.push(status.loop.latenessUs.p99);
      if (history.length > HISTORY) history.shift();
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

