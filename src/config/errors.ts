import type { ZodIssue } from 'zod';

/** One problem in a config: the key at fault, the value it got, and what it wants. */
export interface ConfigProblem {
  key: string;
  got: string;
  want: string;
}

export function keyOf(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(top level)' : out;
}

function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let v = input;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(v) ?? typeof v;
  } catch {
    // A value JSON cannot write (a cycle, a BigInt) must still be reported, not crash the report.
    s = Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function bound(kind: string, n: number | bigint, inclusive: boolean, dir: 'min' | 'max'): string {
  switch (kind) {
    case 'string':
      return `${dir === 'min' ? 'at least' : 'at most'} ${n} characters`;
    case 'array':
      return `${dir === 'min' ? 'at least' : 'at most'} ${n} entries`;
    default:
      return `a number ${dir === 'min' ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<'} ${n}`;
  }
}

function want(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'integer' ? 'an integer' : `a ${issue.expected}`;
    case 'invalid_literal':
      return JSON.stringify(issue.expected);
    case 'invalid_enum_value':
      return `one of ${issue.options.join(', ')}`;
    case 'invalid_union_discriminator':
      return `one of ${issue.options.map(String).join(', ')}`;
    case 'invalid_union': {
      const alts = issue.unionErrors.map((e) => (e.issues[0] ? want(e.issues[0]) : '?'));
      return [...new Set(alts)].join(' or ');
    }
    case 'too_small':
      return bound(issue.type, issue.minimum, issue.inclusive, 'min');
    case 'too_big':
      return bound(issue.type, issue.maximum, issue.inclusive, 'max');
    case 'not_finite':
      return 'a finite number';
    case 'unrecognized_keys':
      return 'no such key (a misspelling?)';
    default:
      return issue.message;
  }
}

/** Turns zod's issues into problems that name the key, the value and what is wanted. */
export function problemsOf(issues: readonly ZodIssue[], input: unknown, origin: (key: string) => string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const path = [...issue.path, k];
        out.push({ key: origin(keyOf(path)), got: show(valueAt(input, path)), want: want(issue) });
      }
      continue;
    }
    out.push({ key: origin(keyOf(issue.path)), got: show(valueAt(input, issue.path)), want: want(issue) });
  }
  return out;
}

export function formatProblems(source: string, problems: readonly ConfigProblem[]): string {
  const lines = problems.map((p) => `  ${p.key}: got ${p.got}; want ${p.want}`);
  return `invalid config ${source}:\n${lines.join('\n')}`;
}
