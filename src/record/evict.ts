// Eviction's file work: an episode that moves to a lower index (the ones before it were
// deleted) gets its data file rewritten with the new episode_index and index columns, and its
// videos linked under the new name. Everything is first staged in .reflex/evict/ beside the
// untouched originals; the commit (episodes.json naming the moves) is the point of no return;
// the moves after it are renames that a restart repeats for whatever is still staged.
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { fsyncDir, writeFileAtomic } from './files.js';
import { int64Column, parquetBytes, type Column } from './parquet.js';

export const EVICT_DIR = '.reflex/evict';

/** A staged file and where it goes once the eviction is committed (paths relative to the dataset). */
export interface Move {
  from: string;
  to: string;
}

/** An episode's data file, read back as an Arrow table. */
export function readTable(bytes: Uint8Array): Table {
  return tableFromIPC(readParquet(bytes).intoIPCStream());
}

/**
 * The table's columns in file order, its rows renumbered: episode `episodeIndex`, dataset rows
 * from `from`, and task `taskIndex` when given (an episode from another dataset, whose tasks are
 * numbered differently).
 */
export function renumberedColumns(table: Table, episodeIndex: number, from: number, taskIndex?: number): Record<string, Column> {
  const n = table.numRows;
  const columns: Record<string, Column> = {};
  for (const f of table.schema.fields) columns[f.name] = table.getChild(f.name)!;
  columns.episode_index = int64Column(Array.from({ length: n }, () => episodeIndex));
  columns.index = int64Column(Array.from({ length: n }, (_, i) => from + i));
  if (taskIndex !== undefined) columns.task_index = int64Column(Array.from({ length: n }, () => taskIndex));
  // Same column order as written, so the file reads as the others do.
  return Object.fromEntries(table.schema.fields.map((f) => [f.name, columns[f.name]!])) as Record<string, Column>;
}

/** An episode's data file with its rows renumbered: episode `episodeIndex`, dataset rows from `from`. */
export function renumberedData(bytes: Uint8Array, episodeIndex: number, from: number): Uint8Array {
  return parquetBytes(renumberedColumns(readTable(bytes), episodeIndex, from));
}

/** Stages the data file `dataFrom` renumbered, and hard links of `videos` [from, to], under EVICT_DIR; returns the moves. */
export function stageEpisode(dir: string, dataFrom: string, dataTo: string, episodeIndex: number, from: number, videos: readonly [string, string][]): Move[] {
  const stage = join(dir, EVICT_DIR);
  mkdirSync(stage, { recursive: true });
  const moves: Move[] = [];
  const staged = (to: string) => join(EVICT_DIR, to.replaceAll('/', '__'));
  const data = staged(dataTo);
  writeFileAtomic(join(dir, data), renumberedData(readFileSync(join(dir, dataFrom)), episodeIndex, from));
  moves.push({ from: data, to: dataTo });
  for (const [vFrom, vTo] of videos) {
    const s = staged(vTo);
    rmSync(join(dir, s), { force: true });
    linkSync(join(dir, vFrom), join(dir, s));
    moves.push({ from: s, to: vTo });
  }
  fsyncDir(stage);
  return moves;
}

/** Puts the staged files of a committed eviction in place; a move already done (nothing staged) is skipped. */
export function applyMoves(dir: string, moves: readonly Move[]): void {
  for (const m of moves) {
    const from = join(dir, m.from);
    if (!existsSync(from)) continue;
    const to = join(dir, m.to);
    mkdirSync(dirname(to), { recursive: true });
    renameSync(from, to);
    fsyncDir(dirname(to));
  }
}

export function clearStage(dir: string): void {
  rmSync(join(dir, EVICT_DIR), { recursive: true, force: true });
}
