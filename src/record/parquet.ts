// Parquet as pyarrow writes it for LeRobot: apache-arrow builds the columns with the Arrow types
// LeRobot's loader expects (fixed_size_list<float32> for vectors, int64, float32, bool, strings,
// lists) and parquet-wasm (the Rust parquet crate compiled to WebAssembly) writes them, snappy
// compressed, with the Arrow schema in the file's key-value metadata as pyarrow does. Chosen
// over a pure-JS writer because it is the reference Arrow/Parquet implementation, so the types
// and encodings are exactly those the Python side reads back.
import { Bool, Field, FixedSizeList, Float32, Float64, Int64, List, Schema, Table, Utf8, makeData, makeVector, tableToIPC, vectorFromArray, type Vector } from 'apache-arrow';
import { Compression, Table as WasmTable, WriterPropertiesBuilder, writeParquet } from 'parquet-wasm/node';

export type Column = Vector;

export function float32Column(values: ArrayLike<number>): Column {
  return makeVector(Float32Array.from(values));
}

export function float64Column(values: ArrayLike<number>): Column {
  return makeVector(Float64Array.from(values));
}

export function int64Column(values: ArrayLike<number>): Column {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(Math.round(values[i]!));
  return makeVector(out);
}

export function boolColumn(values: readonly boolean[]): Column {
  return vectorFromArray(values, new Bool());
}

export function stringColumn(values: readonly string[]): Column {
  return vectorFromArray(values, new Utf8());
}

/**
 * fixed_size_list<float32>[width]: `flat` holds the rows one after another. Width 1 is a plain
 * float32 column: LeRobot's loader takes a feature of shape (1,) as a scalar Value.
 */
export function fixedFloat32Column(flat: Float32Array, width: number): Column {
  if (width === 1) return makeVector(flat);
  const child = makeData({ type: new Float32(), length: flat.length, nullCount: 0, data: flat });
  return makeVector(makeData({ type: new FixedSizeList(width, new Field('item', new Float32(), true)), length: flat.length / width, nullCount: 0, child }));
}

/** fixed_size_list<bool>[width] (width 1: a plain bool column, as for float32). */
export function fixedBoolColumn(rows: readonly boolean[][], width: number): Column {
  if (width === 1) return boolColumn(rows.map((r) => r[0]!));
  const child = vectorFromArray(rows.flat(), new Bool()).data[0]!;
  return makeVector(makeData({ type: new FixedSizeList(width, new Field('item', new Bool(), true)), length: rows.length, nullCount: 0, child }));
}

export function stringListColumn(rows: readonly string[][]): Column {
  return vectorFromArray(rows, new List(new Field('item', new Utf8(), true)));
}

/** list<double>, list<int64>, or for image stats list<list<list<double>>> (numpy's [3, 1, 1]). */
export function nestedFloat64Column(rows: readonly (number[] | number[][][])[]): Column {
  const nested = Array.isArray(rows[0]?.[0]);
  const item = new Field('item', new Float64(), true);
  const type = nested ? new List(new Field('item', new List(new Field('item', new List(item), true)), true)) : new List(item);
  return vectorFromArray(rows as unknown[], type);
}

export function int64ListColumn(rows: readonly number[][]): Column {
  return vectorFromArray(
    rows.map((r) => r.map((v) => BigInt(Math.round(v)))),
    new List(new Field('item', new Int64(), true)),
  );
}

/** Writes the columns (in order) as one parquet file, snappy compressed, with `metadata` as key-value metadata; returns its bytes. */
export function parquetBytes(columns: Record<string, Column>, metadata?: Map<string, string>): Uint8Array {
  const plain = new Table(columns);
  // pyarrow takes the schema's metadata from the Arrow schema stored in the file (ARROW:schema),
  // not from the file's own key-value pairs: it goes in both.
  const table = metadata === undefined ? plain : new Table(new Schema(plain.schema.fields, metadata), plain.batches);
  const wasm = WasmTable.fromIPCStream(tableToIPC(table, 'stream'));
  let builder = new WriterPropertiesBuilder().setCompression(Compression.SNAPPY).setCreatedBy('reflex');
  if (metadata !== undefined) builder = builder.setKeyValueMetadata(metadata);
  const props = builder.build();
  return writeParquet(wasm, props);
}
