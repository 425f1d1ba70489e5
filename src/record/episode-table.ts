// An episode's data file read back (another robot's, brought in by merge.ts): whether its
// columns are the ones a dataset of this shape writes, and the stats of its rows, computed from
// the rows themselves rather than taken on trust, exactly as the recorder computes them.
import { DataType, Precision, Type, type Table } from 'apache-arrow';
import type { Feature } from './format.js';
import type { Column } from './parquet.js';
import { vectorStats, type EpisodeStats, type FeatureStats } from './stats.js';
import type { EpisodeFlag, Outcome } from './dataset.js';

/** An episode recorded elsewhere, its files checked: what Dataset.adopt appends. */
export interface AdoptedEpisode {
  /** The id it had on its robot: an episode already in the dataset under it is not added again. */
  id: string;
  device: string;
  /** Its data rows (renumbered when adopted). */
  table: Table;
  task: string;
  flags: EpisodeFlag[];
  outcome: Outcome | null;
  policy: { name: string; version: string } | null;
  startedAt: string;
  repeatedFrames: number;
  /** Per video feature, its image stats (the frames are not decoded here: the robot's numbers). */
  videoStats: EpisodeStats;
  /** Per camera in shape order, the episode's MP4 (copied into the dataset). */
  videos: string[];
}

function scalarIs(t: DataType, dtype: Feature['dtype']): boolean {
  switch (dtype) {
    case 'float32':
      return DataType.isFloat(t) && t.precision === Precision.SINGLE;
    case 'int64':
      return DataType.isInt(t) && t.bitWidth === 64 && t.isSigned;
    case 'bool':
      return DataType.isBool(t);
    case 'video':
      return false;
  }
}

/** Why the table is not a data file of `features` (its columns, their types, nulls); null when it is. */
export function columnsDiffer(table: Table, features: Record<string, Feature>): string | null {
  const want = Object.entries(features).filter(([, f]) => f.dtype !== 'video');
  const have = table.schema.fields.map((f) => f.name);
  const missing = want.map(([k]) => k).filter((k) => !have.includes(k));
  const extra = have.filter((k) => !want.some(([w]) => w === k));
  if (missing.length > 0 || extra.length > 0) {
    return `its columns differ${missing.length > 0 ? `; missing ${missing.join(', ')}` : ''}${extra.length > 0 ? `; not in the features ${extra.join(', ')}` : ''}`;
  }
  for (const [key, f] of want) {
    const col = table.getChild(key)!;
    const width = f.shape[0] ?? 1;
    const t = col.type as DataType;
    const ok = width === 1 ? scalarIs(t, f.dtype) : DataType.isFixedSizeList(t) && t.listSize === width && scalarIs(t.children[0]!.type as DataType, f.dtype);
    if (!ok) return `column ${key} is of Arrow type ${Type[t.typeId]}, the feature is ${f.dtype}[${width}]`;
    if (col.nullCount > 0) return `column ${key} has empty values`;
  }
  return null;
}

/** The k-th component of each row of `col` (a scalar column, or fixed-size lists of `width`). */
function components(col: Column, width: number): Float64Array[] {
  const n = col.length;
  const out = Array.from({ length: width }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const v: unknown = col.get(i);
    if (width === 1) out[0]![i] = Number(v);
    else {
      const items = (v as Column).toArray() as ArrayLike<unknown>;
      for (let k = 0; k < width; k++) out[k]![i] = Number(items[k]);
    }
  }
  return out;
}

/** Stats of every feature that is a column (checked by columnsDiffer), as the recorder computes them. */
export function columnStats(columns: Record<string, Column>, features: Record<string, Feature>): EpisodeStats {
  const stats: EpisodeStats = {};
  for (const [key, f] of Object.entries(features)) {
    if (f.dtype === 'video') continue;
    const col = columns[key]!;
    stats[key] = vectorStats(components(col, f.shape[0] ?? 1), col.length) satisfies FeatureStats;
  }
  return stats;
}
