// meta/stats.json and the episodes' stats columns, as LeRobot computes them
// (compute_stats.py): per feature min, max, mean, std, count and the quantiles q01..q99 over
// the episode's rows; images per RGB channel on [0, 1], shaped [3, 1, 1]; episodes combined by
// count-weighted mean and the parallel variance formula, quantiles count-weighted.

export const QUANTILES = [0.01, 0.1, 0.5, 0.9, 0.99] as const;
const Q_KEYS = ['q01', 'q10', 'q50', 'q90', 'q99'] as const;

/** A feature's stats: vectors of its width (images: nested [3][1][1]), count as [n]. */
export type FeatureStats = Record<string, number[] | number[][][]>;
export type EpisodeStats = Record<string, FeatureStats>;

/** Stats of `columns[k]` = the k-th component over the rows. */
export function vectorStats(columns: readonly Float64Array[] | readonly number[][], rows: number): FeatureStats {
  const min: number[] = [];
  const max: number[] = [];
  const mean: number[] = [];
  const std: number[] = [];
  const qs: number[][] = Q_KEYS.map(() => []);
  for (const col of columns) {
    const sorted = Float64Array.from(col).sort();
    let sum = 0;
    for (const v of sorted) sum += v;
    const m = rows > 0 ? sum / rows : 0;
    let sq = 0;
    for (const v of sorted) sq += (v - m) * (v - m);
    min.push(rows > 0 ? sorted[0]! : 0);
    max.push(rows > 0 ? sorted[rows - 1]! : 0);
    mean.push(m);
    std.push(rows > 0 ? Math.sqrt(sq / rows) : 0);
    QUANTILES.forEach((q, i) => qs[i]!.push(rows > 0 ? quantile(sorted, q) : 0));
  }
  const out: FeatureStats = { min, max, mean, std, count: [rows] };
  Q_KEYS.forEach((k, i) => (out[k] = qs[i]!));
  return out;
}

/** Linear interpolation between order statistics (numpy's default). */
function quantile(sorted: Float64Array, q: number): number {
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** Per-channel pixel sums over an episode's sampled frames (values 0..255). */
export interface PixelSums {
  min: [number, number, number];
  max: [number, number, number];
  sum: [number, number, number];
  sumSq: [number, number, number];
  /** Pixels sampled per channel. */
  n: number;
  /** Frames sampled (LeRobot's count for images). */
  frames: number;
}

export function emptyPixelSums(): PixelSums {
  return { min: [255, 255, 255], max: [0, 0, 0], sum: [0, 0, 0], sumSq: [0, 0, 0], n: 0, frames: 0 };
}

/** Image stats in LeRobot's shape: each stat [3][1][1] on [0, 1], count [frames]. */
export function imageStats(p: PixelSums): FeatureStats {
  const ch = (f: (c: number) => number) => [0, 1, 2].map((c) => [[f(c) / 255]]);
  const mean = (c: number) => (p.n > 0 ? p.sum[c]! / p.n : 0);
  const std = (c: number) => (p.n > 0 ? Math.sqrt(Math.max(0, p.sumSq[c]! / p.n - mean(c) ** 2)) : 0);
  return { min: ch((c) => (p.n > 0 ? p.min[c]! : 0)), max: ch((c) => (p.n > 0 ? p.max[c]! : 0)), mean: ch(mean), std: ch(std), count: [p.frames] };
}

/** Combines episodes' stats of one feature (LeRobot's aggregate_feature_stats). */
export function aggregateFeature(list: readonly FeatureStats[]): FeatureStats {
  const flat = list.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, (v as unknown[]).flat(2) as number[]])));
  const shape = list[0]!;
  const counts = flat.map((s) => s.count![0]!);
  const total = counts.reduce((a, b) => a + b, 0);
  const width = flat[0]!.mean!.length;
  const mean: number[] = [];
  const std: number[] = [];
  const min: number[] = [];
  const max: number[] = [];
  for (let k = 0; k < width; k++) {
    const m = total > 0 ? flat.reduce((a, s, i) => a + s.mean![k]! * counts[i]!, 0) / total : 0;
    const v = total > 0 ? flat.reduce((a, s, i) => a + (s.std![k]! ** 2 + (s.mean![k]! - m) ** 2) * counts[i]!, 0) / total : 0;
    mean.push(m);
    std.push(Math.sqrt(v));
    min.push(Math.min(...flat.map((s) => s.min![k]!)));
    max.push(Math.max(...flat.map((s) => s.max![k]!)));
  }
  const reshape = (v: number[]) => (Array.isArray(shape.mean![0]) ? v.map((x) => [[x]]) : v);
  const out: FeatureStats = { min: reshape(min), max: reshape(max), mean: reshape(mean), std: reshape(std), count: [total] };
  for (const q of Q_KEYS) {
    if (!flat.every((s) => s[q] !== undefined)) continue;
    const v: number[] = [];
    for (let k = 0; k < width; k++) v.push(total > 0 ? flat.reduce((a, s, i) => a + s[q]![k]! * counts[i]!, 0) / total : 0);
    out[q] = reshape(v);
  }
  return out;
}

export function aggregateStats(episodes: readonly EpisodeStats[]): EpisodeStats {
  const out: EpisodeStats = {};
  if (episodes.length === 0) return out;
  for (const key of Object.keys(episodes[0]!)) {
    const list = episodes.map((e) => e[key]).filter((s): s is FeatureStats => s !== undefined);
    out[key] = aggregateFeature(list);
  }
  return out;
}
