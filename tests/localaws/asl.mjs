// asl.mjs: an Amazon States Language interpreter that behaves like AWS Step
// Functions (STANDARD workflows, JSONPath query language) where AWS is
// stricter than the emulators: payload limits, the 25,000-event history,
// Distributed Map child executions with their own histories, history events
// shaped as GetExecutionHistory returns them. Plain Node 20 ESM, no deps.
//
// Sources, and how much to trust each, are named where a behaviour is
// implemented. Three kinds:
//   [doc]      AWS documentation (developer guide, API reference, the ASL spec).
//   [recorded] responses recorded against real AWS: the snapshot files of
//              localstack's tests marked `markers.aws.validated`
//              (tests/aws/services/stepfunctions/v2/**/*.snapshot.json), and
//              measurements quoted in floci-io/floci issues #2733, #2734.
//   [guess]    not confirmed anywhere: the closest plausible behaviour.
// Where [doc] and [recorded] disagree, [recorded] wins (see DataLimitExceeded).
//
// ---------------------------------------------------------------------------
// Payload limit (PAYLOAD_LIMIT_BYTES, UTF-8 bytes of the JSON text), checked at:
//   1. the execution input (startExecution)                 -> terminal
//   2. each state's raw input as it enters the state         -> terminal
//   3. a Task's effective input after InputPath+Parameters   -> terminal
//      (what would be sent to the service)
//   4. a Task's result (the handler's resolved value)        -> a task failure:
//      TaskFailed / LambdaFunctionFailed with States.DataLimitExceeded, which
//      Retry/Catch DO see. [recorded] localstack
//      error_handling/test_states_errors.snapshot.json (AWS, 2024-03-21):
//      a Catch on States.ALL caught it and the execution SUCCEEDED, although
//      the developer guide calls the error terminal.
//   5. each state's output (after ResultSelector/ResultPath/OutputPath, and
//      the output a Catch produces)                         -> terminal
//      ([recorded] test_start_large_input: ExecutionFailed right after
//      PassStateEntered, no PassStateExited)
//   6. each Map item after ItemSelector (inline and distributed) -> terminal
//   7. each Distributed Map child execution input (after ItemBatcher) -> terminal
//   8. the execution output                                  -> terminal
// "terminal": no Retry or Catch sees it, the whole execution FAILS (also from
// inside Map iterations and Parallel branches). [doc] concepts-error-handling:
// "States.DataLimitExceeded: A terminal error which cannot be caught by the
// States.ALL error type"; "A States.Runtime error isn't retriable, and will
// always cause the execution to fail. A retry or catch on States.ALL won't
// catch States.Runtime errors."
//
// History limit (HISTORY_LIMIT_EVENTS): when the next event would be the
// 25,000th and is not the execution's closing event, the execution fails
// instead and ExecutionFailed IS event 25,000, error States.Runtime, cause
// "The execution reached the maximum number of history events (25000)."
// [recorded] floci-io/floci#2734 (GetExecutionHistory of a runaway loop on
// AWS: id 25000 ExecutionFailed, previousEventId 24999). [doc] quotas: "If the
// execution history reaches this quota, the execution will fail."
// ---------------------------------------------------------------------------

import { createHash, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';

export const PAYLOAD_LIMIT_BYTES = 262144; // 256 KiB
export const HISTORY_LIMIT_EVENTS = 25000;

/** Thrown by handlers: `error` is the error name Retry/Catch match, `cause` a string. */
export class TaskFailure extends Error {
  constructor(error, cause) {
    super(cause === undefined || cause === null ? String(error) : String(cause));
    this.name = 'TaskFailure';
    this.error = String(error);
    this.cause = cause === undefined || cause === null ? undefined : String(cause);
  }
}

// ===========================================================================
// Small helpers
// ===========================================================================

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const byteLength = (text) => Buffer.byteLength(text, 'utf8');
const jsonText = (v) => JSON.stringify(v === undefined ? null : v);
const clone = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));
const LAMBDA_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/;
const SERVICE_ARN = /^arn:aws[a-z-]*:states:::([a-z0-9-]+):(.+)$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function parseTimestamp(v) {
  if (typeof v !== 'string' || !TIMESTAMP.test(v)) return null;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : ms;
}

/** Choice StringMatches: `*` matches any run of characters; `\\*` and `\\\\` are literal. [doc] ASL spec */
function stringMatches(value, pattern) {
  let re = '^';
  const esc = (c) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  for (let k = 0; k < pattern.length; k += 1) {
    const c = pattern[k];
    if (c === '\\') {
      re += esc(pattern[k + 1] ?? '');
      k += 1;
    } else if (c === '*') re += '[\\s\\S]*';
    else re += esc(c);
  }
  return new RegExp(`${re}$`, 'u').test(value);
}

/** Deep equality of JSON values; object key order does not matter (Jackson's JsonNode.equals). */
function jsonEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** An error as a state reports it: `error` name + `cause`; `terminal` ones skip Retry/Catch. */
class StatesError extends Error {
  constructor(error, cause, { terminal } = {}) {
    super(cause ?? error);
    this.error = error;
    this.cause = cause;
    this.terminal = terminal ?? (error === 'States.Runtime' || error === 'States.DataLimitExceeded');
    this.prevId = undefined; // the history event the failure chains from
  }
}

/** Unwinds running work without recording anything: `closed` (execution over) or `aborted` (sibling failed). */
class Interrupt extends Error {
  constructor(kind, prevId) {
    super(kind);
    this.kind = kind;
    this.prevId = prevId;
  }
}

// ===========================================================================
// JSONPath
// ---------------------------------------------------------------------------
// Written by hand rather than with jsonpath-plus: AWS evaluates paths with
// Jayway JsonPath, where a *definite* path (only names and single indices)
// yields one value or fails ("No results for path" / "Missing property in
// path", the texts AWS puts in its States.Runtime causes), while an
// *indefinite* path (wildcards, slices, unions, filters, deep scan) yields a
// list. Generic libraries always return lists and cannot tell "missing" from
// "null"; reference paths must also be validated as single-node. Supported:
// $ / $$ roots, .name (with \-escapes), ['name'], [n], [-n], [*], .*, ..x,
// [a,b], ['a','b'], [start:end:step], [?(@.x OP literal)] with && || and
// existence tests. Anything else is a syntax problem reported by
// validateDefinition.
// ===========================================================================

class PathSyntaxError extends Error {}

const pathCache = new Map();

function parsePath(text) {
  if (pathCache.has(text)) return pathCache.get(text);
  const parsed = parsePathUncached(text, '$');
  pathCache.set(text, parsed);
  return parsed;
}

function parsePathUncached(text, rootChar) {
  if (typeof text !== 'string') throw new PathSyntaxError('a path must be a string');
  let i;
  let root;
  if (rootChar === '@') {
    if (text[0] !== '@') throw new PathSyntaxError(`'${text}' must start with @`);
    root = '@';
    i = 1;
  } else if (text.startsWith('$$')) {
    root = '$$';
    i = 2;
  } else if (text[0] === '$') {
    root = '$';
    i = 1;
  } else {
    throw new PathSyntaxError(`'${text}' does not start with $`);
  }
  const segs = [];
  const n = text.length;
  const readName = () => {
    let name = '';
    while (i < n && text[i] !== '.' && text[i] !== '[') {
      if (text[i] === '\\' && i + 1 < n) {
        name += text[i + 1];
        i += 2;
      } else {
        name += text[i];
        i += 1;
      }
    }
    return name;
  };
  const parseBracket = () => {
    // text[i] === '['
    const start = i;
    i += 1;
    while (text[i] === ' ') i += 1;
    if (text[i] === '*') {
      i += 1;
      while (text[i] === ' ') i += 1;
      if (text[i] !== ']') throw new PathSyntaxError(`'${text}': expected ] at ${i}`);
      i += 1;
      return { type: 'wild' };
    }
    if (text[i] === '?') {
      i += 1;
      if (text[i] !== '(') throw new PathSyntaxError(`'${text}': expected ( after ? at ${i}`);
      let depth = 0;
      let quote = null;
      const exprStart = i + 1;
      for (; i < n; i += 1) {
        const c = text[i];
        if (quote) {
          if (c === '\\') i += 1;
          else if (c === quote) quote = null;
        } else if (c === "'" || c === '"') quote = c;
        else if (c === '(') depth += 1;
        else if (c === ')') {
          depth -= 1;
          if (depth === 0) break;
        }
      }
      if (i >= n) throw new PathSyntaxError(`'${text}': unterminated filter`);
      const expr = text.slice(exprStart, i);
      i += 1;
      while (text[i] === ' ') i += 1;
      if (text[i] !== ']') throw new PathSyntaxError(`'${text}': expected ] after filter`);
      i += 1;
      return { type: 'filter', expr: parseFilter(expr, text) };
    }
    if (text[i] === "'" || text[i] === '"') {
      const names = [];
      for (;;) {
        const q = text[i];
        if (q !== "'" && q !== '"') throw new PathSyntaxError(`'${text}': expected a quoted name at ${i}`);
        i += 1;
        let name = '';
        while (i < n && text[i] !== q) {
          if (text[i] === '\\' && i + 1 < n) {
            name += text[i + 1];
            i += 2;
          } else {
            name += text[i];
            i += 1;
          }
        }
        if (i >= n) throw new PathSyntaxError(`'${text}': unterminated quoted name`);
        i += 1;
        names.push(name);
        while (text[i] === ' ') i += 1;
        if (text[i] === ',') {
          i += 1;
          while (text[i] === ' ') i += 1;
          continue;
        }
        if (text[i] === ']') {
          i += 1;
          break;
        }
        throw new PathSyntaxError(`'${text}': expected , or ] at ${i}`);
      }
      return names.length === 1 ? { type: 'prop', name: names[0] } : { type: 'union', keys: names };
    }
    const close = text.indexOf(']', i);
    if (close < 0) throw new PathSyntaxError(`'${text}': unterminated [ at ${start}`);
    const body = text.slice(i, close).replace(/\s+/g, '');
    i = close + 1;
    if (/^-?\d+$/.test(body)) return { type: 'index', index: Number(body) };
    if (/^-?\d+(,-?\d+)+$/.test(body)) return { type: 'union', keys: body.split(',').map(Number) };
    const slice = /^(-?\d+)?:(-?\d+)?(?::(-?\d+)?)?$/.exec(body);
    if (slice) {
      return {
        type: 'slice',
        start: slice[1] === undefined ? undefined : Number(slice[1]),
        end: slice[2] === undefined ? undefined : Number(slice[2]),
        step: slice[3] === undefined ? 1 : Number(slice[3]),
      };
    }
    throw new PathSyntaxError(`'${text}': unsupported bracket expression [${body}]`);
  };
  while (i < n) {
    const c = text[i];
    if (c === '.') {
      if (text[i + 1] === '.') {
        i += 2;
        let inner;
        if (text[i] === '[') inner = parseBracket();
        else if (text[i] === '*') {
          i += 1;
          inner = { type: 'wild' };
        } else {
          const name = readName();
          if (!name) throw new PathSyntaxError(`'${text}': empty name after ..`);
          inner = { type: 'prop', name };
        }
        segs.push({ type: 'deep', inner });
      } else if (text[i + 1] === '[') {
        i += 1; // ".['name']", as AWS's own examples write it
      } else if (text[i + 1] === '*' && (i + 2 === n || text[i + 2] === '.' || text[i + 2] === '[')) {
        i += 2;
        segs.push({ type: 'wild' });
      } else {
        i += 1;
        const name = readName();
        if (!name) throw new PathSyntaxError(`'${text}': empty name at ${i}`);
        segs.push({ type: 'prop', name });
      }
    } else if (c === '[') {
      segs.push(parseBracket());
    } else {
      throw new PathSyntaxError(`'${text}': unexpected '${c}' at ${i}`);
    }
  }
  const definite = segs.every((s) => s.type === 'prop' || s.type === 'index');
  return { text, root, segs, definite };
}

function parseFilter(expr, whole) {
  const splitTop = (s, op) => {
    const parts = [];
    let quote = null;
    let depth = 0;
    let last = 0;
    for (let k = 0; k < s.length; k += 1) {
      const c = s[k];
      if (quote) {
        if (c === '\\') k += 1;
        else if (c === quote) quote = null;
      } else if (c === "'" || c === '"') quote = c;
      else if (c === '(') depth += 1;
      else if (c === ')') depth -= 1;
      else if (depth === 0 && s.startsWith(op, k)) {
        parts.push(s.slice(last, k));
        last = k + op.length;
        k += op.length - 1;
      }
    }
    parts.push(s.slice(last));
    return parts;
  };
  const parseOperand = (s) => {
    const t = s.trim();
    if (t.startsWith('@')) return { kind: 'path', path: parsePathUncached(t, '@') };
    if (t.startsWith('$')) return { kind: 'path', path: parsePathUncached(t, '$') };
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return { kind: 'lit', value: Number(t) };
    if (t === 'true' || t === 'false') return { kind: 'lit', value: t === 'true' };
    if (t === 'null') return { kind: 'lit', value: null };
    const q = /^'((?:[^'\\]|\\.)*)'$|^"((?:[^"\\]|\\.)*)"$/.exec(t);
    if (q) return { kind: 'lit', value: (q[1] ?? q[2]).replace(/\\(.)/g, '$1') };
    throw new PathSyntaxError(`'${whole}': unsupported filter operand '${t}'`);
  };
  const parseTerm = (s) => {
    let t = s.trim();
    if (t.startsWith('(') && t.endsWith(')')) return parseFilter(t.slice(1, -1), whole);
    let negate = false;
    if (t.startsWith('!')) {
      negate = true;
      t = t.slice(1).trim();
    }
    for (const op of ['==', '!=', '<=', '>=', '<', '>']) {
      const parts = splitTop(t, op);
      if (parts.length === 2) return { kind: 'cmp', op, left: parseOperand(parts[0]), right: parseOperand(parts[1]), negate };
    }
    return { kind: 'exists', operand: parseOperand(t), negate };
  };
  const ors = splitTop(expr, '||');
  if (ors.length > 1) return { kind: 'or', items: ors.map((p) => parseFilter(p, whole)) };
  const ands = splitTop(expr, '&&');
  if (ands.length > 1) return { kind: 'and', items: ands.map((p) => parseFilter(p, whole)) };
  return parseTerm(expr);
}

function normalizedPath(segs) {
  return `$${segs
    .map((s) => (s.type === 'prop' ? `['${s.name}']` : s.type === 'index' ? `[${s.index}]` : `[${s.type}]`))
    .join('')}`;
}

/** Indefinite evaluation: every match, as a list. */
function evalMany(segs, value, rootValue) {
  let nodes = [value];
  for (const seg of segs) {
    const next = [];
    for (const node of nodes) applySeg(seg, node, next, rootValue);
    nodes = next;
  }
  return nodes;
}

function applySeg(seg, node, out, rootValue) {
  switch (seg.type) {
    case 'prop':
      if (isObject(node) && Object.hasOwn(node, seg.name)) out.push(node[seg.name]);
      break;
    case 'index':
      if (Array.isArray(node)) {
        const k = seg.index < 0 ? node.length + seg.index : seg.index;
        if (k >= 0 && k < node.length) out.push(node[k]);
      }
      break;
    case 'wild':
      if (Array.isArray(node)) out.push(...node);
      else if (isObject(node)) out.push(...Object.values(node));
      break;
    case 'union':
      for (const key of seg.keys) applySeg(typeof key === 'number' ? { type: 'index', index: key } : { type: 'prop', name: key }, node, out, rootValue);
      break;
    case 'slice':
      if (Array.isArray(node)) {
        const len = node.length;
        const norm = (v, d) => (v === undefined ? d : v < 0 ? Math.max(0, len + v) : Math.min(len, v));
        const step = seg.step || 1;
        if (step > 0) for (let k = norm(seg.start, 0); k < norm(seg.end, len); k += step) out.push(node[k]);
        else for (let k = seg.start === undefined ? len - 1 : norm(seg.start, len - 1); k > (seg.end === undefined ? -1 : norm(seg.end, -1)); k += step) if (k < len) out.push(node[k]);
      }
      break;
    case 'filter': {
      const candidates = Array.isArray(node) ? node : isObject(node) ? Object.values(node) : [];
      for (const c of candidates) if (evalFilter(seg.expr, c, rootValue)) out.push(c);
      break;
    }
    case 'deep': {
      const walk = (v) => {
        applySeg(seg.inner, v, out, rootValue);
        if (Array.isArray(v)) v.forEach(walk);
        else if (isObject(v)) Object.values(v).forEach(walk);
      };
      walk(node);
      break;
    }
    default:
      break;
  }
}

function evalFilter(f, current, rootValue) {
  const operand = (o) => {
    if (o.kind === 'lit') return { found: true, value: o.value };
    const base = o.path.root === '@' ? current : rootValue;
    const r = evalMany(o.path.segs, base, rootValue);
    return r.length === 0 ? { found: false } : { found: true, value: r[0] };
  };
  let result;
  switch (f.kind) {
    case 'or':
      return f.items.some((x) => evalFilter(x, current, rootValue));
    case 'and':
      return f.items.every((x) => evalFilter(x, current, rootValue));
    case 'exists':
      result = operand(f.operand).found;
      break;
    case 'cmp': {
      const l = operand(f.left);
      const r = operand(f.right);
      if (!l.found || !r.found) result = false;
      else if (f.op === '==') result = jsonEqual(l.value, r.value);
      else if (f.op === '!=') result = !jsonEqual(l.value, r.value);
      else if (typeof l.value !== typeof r.value || (typeof l.value !== 'number' && typeof l.value !== 'string')) result = false;
      else if (f.op === '<') result = l.value < r.value;
      else if (f.op === '<=') result = l.value <= r.value;
      else if (f.op === '>') result = l.value > r.value;
      else result = l.value >= r.value;
      break;
    }
    default:
      result = false;
  }
  return f.negate ? !result : result;
}

/**
 * Applies a path. -> {found: true, value} or {found: false, message} with the
 * Jayway wording AWS shows. Indefinite paths always "find" (a list).
 * An index past the end of an array resolves to null: floci-io/floci#3167
 * reports this leniency as measured on AWS. [recorded, third-party]
 */
function lookup(pathText, data, contextObject) {
  let p;
  try {
    p = parsePath(pathText);
  } catch (e) {
    throw new StatesError('States.Runtime', `Invalid path '${pathText}': ${e.message}`);
  }
  const base = p.root === '$$' ? contextObject : data;
  if (!p.definite) return { found: true, value: evalMany(p.segs, base, base) };
  let node = base;
  for (let k = 0; k < p.segs.length; k += 1) {
    const seg = p.segs[k];
    const last = k === p.segs.length - 1;
    if (seg.type === 'prop') {
      if (!isObject(node)) {
        return {
          found: false,
          message: `Expected to find an object with property ['${seg.name}'] in path ${normalizedPath(p.segs.slice(0, k))} but found '${node === null ? 'null' : Array.isArray(node) ? 'array' : typeof node}'. This is not a json object.`,
        };
      }
      if (!Object.hasOwn(node, seg.name)) {
        return last
          ? { found: false, message: `No results for path: ${normalizedPath(p.segs)}` }
          : { found: false, message: `Missing property in path ${normalizedPath(p.segs.slice(0, k + 1))}` };
      }
      node = node[seg.name];
    } else {
      if (!Array.isArray(node)) {
        return { found: false, message: `Filter: [${seg.index}] can only be applied to arrays. Current context is: ${jsonText(node)}` };
      }
      const idx = seg.index < 0 ? node.length + seg.index : seg.index;
      if (idx < 0 || idx >= node.length) {
        node = null;
        if (!last) return { found: false, message: `Missing property in path ${normalizedPath(p.segs.slice(0, k + 1))}` };
      } else node = node[idx];
    }
  }
  return { found: true, value: node };
}

function isReferencePath(text) {
  try {
    const p = parsePath(text);
    return p.definite;
  } catch {
    return false;
  }
}

/** ResultPath: the raw input with `value` placed at `pathText` (a reference path). */
function placeResult(rawInput, pathText, value) {
  const p = parsePath(pathText);
  if (p.segs.length === 0) return value;
  const fail = () =>
    new StatesError('States.ResultPathMatchFailure', `Unable to apply ReferencePath ${pathText} to input ${jsonText(rawInput)}`, { terminal: false });
  if (!isObject(rawInput) && !Array.isArray(rawInput)) throw fail();
  const out = clone(rawInput);
  let node = out;
  for (let k = 0; k < p.segs.length; k += 1) {
    const seg = p.segs[k];
    const last = k === p.segs.length - 1;
    if (seg.type === 'prop') {
      if (!isObject(node)) throw fail();
      if (last) node[seg.name] = value;
      else {
        if (!Object.hasOwn(node, seg.name) || node[seg.name] === null) node[seg.name] = {};
        else if (typeof node[seg.name] !== 'object') throw fail();
        node = node[seg.name];
      }
    } else {
      if (!Array.isArray(node)) throw fail();
      const idx = seg.index < 0 ? node.length + seg.index : seg.index;
      if (idx < 0 || idx >= node.length) throw fail();
      if (last) node[idx] = value;
      else node = node[idx];
    }
  }
  return out;
}

// ===========================================================================
// Intrinsic functions
// ===========================================================================

const INTRINSIC_ARITY = {
  'States.Format': [1, Infinity],
  'States.StringToJson': [1, 1],
  'States.JsonToString': [1, 1],
  'States.Array': [0, Infinity],
  'States.ArrayPartition': [2, 2],
  'States.ArrayContains': [2, 2],
  'States.ArrayRange': [3, 3],
  'States.ArrayGetItem': [2, 2],
  'States.ArrayLength': [1, 1],
  'States.ArrayUnique': [1, 1],
  'States.Base64Encode': [1, 1],
  'States.Base64Decode': [1, 1],
  'States.Hash': [2, 2],
  'States.JsonMerge': [3, 3],
  'States.MathRandom': [2, 3],
  'States.MathAdd': [2, 2],
  'States.StringSplit': [2, 2],
  'States.UUID': [0, 0],
};
const MAX_INTRINSIC_NESTING = 10; // [doc] "You can nest up to 10 intrinsic functions within a field"

class IntrinsicSyntaxError extends Error {}
const intrinsicCache = new Map();

function parseIntrinsic(text) {
  if (intrinsicCache.has(text)) return intrinsicCache.get(text);
  const s = text;
  let i = 0;
  let maxDepth = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i += 1;
  };
  const err = (msg) => new IntrinsicSyntaxError(`'${text}': ${msg} at position ${i}`);
  const parseCall = (depth) => {
    maxDepth = Math.max(maxDepth, depth);
    const m = /^[A-Za-z0-9_.]+/.exec(s.slice(i));
    if (!m) throw err('expected a function name');
    const name = m[0];
    i += name.length;
    if (!Object.hasOwn(INTRINSIC_ARITY, name)) throw err(`unknown intrinsic function ${name}`);
    ws();
    if (s[i] !== '(') throw err(`expected ( after ${name}`);
    i += 1;
    const args = [];
    ws();
    if (s[i] === ')') i += 1;
    else {
      for (;;) {
        args.push(parseArg(depth));
        ws();
        if (s[i] === ',') {
          i += 1;
          continue;
        }
        if (s[i] === ')') {
          i += 1;
          break;
        }
        throw err('expected , or )');
      }
    }
    const [lo, hi] = INTRINSIC_ARITY[name];
    if (args.length < lo || args.length > hi) {
      throw err(`${name} takes ${lo === hi ? lo : hi === Infinity ? `at least ${lo}` : `${lo} to ${hi}`} argument(s), got ${args.length}`);
    }
    return { kind: 'call', name, args };
  };
  const parseArg = (depth) => {
    ws();
    const c = s[i];
    if (c === "'") {
      i += 1;
      let value = '';
      let raw = '';
      for (;;) {
        if (i >= s.length) throw err('unterminated string literal');
        const ch = s[i];
        if (ch === '\\') {
          const nx = s[i + 1];
          // [doc] reserved characters ' { } \ are escaped with a backslash;
          // "If an open escape backslash \ is found ... runtime error".
          if (nx !== "'" && nx !== '{' && nx !== '}' && nx !== '\\') throw err('open escape backslash in string literal');
          value += nx;
          raw += ch + nx;
          i += 2;
          continue;
        }
        if (ch === "'") {
          i += 1;
          break;
        }
        value += ch;
        raw += ch;
        i += 1;
      }
      return { kind: 'lit', value, raw, isString: true };
    }
    if (c === '$') {
      const start = i;
      let depthB = 0;
      let quote = null;
      for (; i < s.length; i += 1) {
        const ch = s[i];
        if (quote) {
          if (ch === '\\') i += 1;
          else if (ch === quote) quote = null;
        } else if (ch === "'" || ch === '"') quote = ch;
        else if (ch === '[' || ch === '(') depthB += 1;
        else if (ch === ']' || (ch === ')' && depthB > 0)) depthB -= 1;
        else if (depthB === 0 && (ch === ',' || ch === ')')) break;
      }
      const pathText = s.slice(start, i).trim();
      try {
        parsePath(pathText);
      } catch (e) {
        throw err(`invalid path argument: ${e.message}`);
      }
      return { kind: 'path', path: pathText };
    }
    const num = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i));
    if (num) {
      i += num[0].length;
      return { kind: 'lit', value: Number(num[0]) };
    }
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (s.startsWith(word, i) && !/[A-Za-z0-9_.]/.test(s[i + word.length] ?? '')) {
        i += word.length;
        return { kind: 'lit', value };
      }
    }
    if (/^States\./.test(s.slice(i))) return parseCall(depth + 1);
    throw err('expected an argument (a quoted string, number, true/false/null, a path, or an intrinsic function)');
  };
  ws();
  const call = parseCall(1);
  ws();
  if (i !== s.length) throw err('unexpected text after the function call');
  if (maxDepth > MAX_INTRINSIC_NESTING) throw new IntrinsicSyntaxError(`'${text}': more than ${MAX_INTRINSIC_NESTING} nested intrinsic functions`);
  intrinsicCache.set(text, call);
  return call;
}

const intrinsicFailure = (msg) => new StatesError('States.IntrinsicFailure', msg, { terminal: false });

/** Java's String.valueOf for a JSON value, which is what States.Format prints for objects/arrays. [recorded] test_generic: {"Arg1":1,"Arg2":[]} -> "{Arg1=1, Arg2=[]}" */
function javaString(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(javaString).join(', ')}]`;
  if (isObject(v)) return `{${Object.entries(v).map(([k, x]) => `${k}=${javaString(x)}`).join(', ')}}`;
  return String(v);
}

function evalIntrinsic(call, data, contextObject, fieldName) {
  const args = call.args.map((a) => {
    if (a.kind === 'call') return evalIntrinsic(a, data, contextObject, fieldName);
    if (a.kind === 'path') {
      const r = lookup(a.path, data, contextObject);
      if (!r.found) {
        throw new StatesError('States.Runtime', `The JSONPath '${a.path}' specified for the field '${fieldName}' could not be found in the input '${jsonText(data)}'`);
      }
      return r.value;
    }
    return a.value;
  });
  const name = call.name;
  const needArray = (v, k) => {
    if (!Array.isArray(v)) throw intrinsicFailure(`${name}: argument ${k + 1} must be an array, got ${jsonText(v)}`);
    return v;
  };
  const needNumber = (v, k) => {
    if (typeof v !== 'number') throw intrinsicFailure(`${name}: argument ${k + 1} must be a number, got ${jsonText(v)}`);
    return v;
  };
  const needString = (v, k, max) => {
    if (typeof v !== 'string') throw intrinsicFailure(`${name}: argument ${k + 1} must be a string, got ${jsonText(v)}`);
    if (max !== undefined && v.length > max) throw intrinsicFailure(`${name}: the input string must be at most ${max} characters, got ${v.length}`);
    return v;
  };
  // [doc] "If you specify a non-integer value ... Step Functions will round it off to the nearest integer."
  // [recorded] test_math_operations: 2.5 -> 3, -2.5 -> -2, -1.5 -> -1: Java Math.round, which is JS Math.round.
  const rounded = (v, k) => Math.round(needNumber(v, k)) + 0;
  switch (name) {
    case 'States.Format': {
      const tpl = args[0];
      if (typeof tpl !== 'string') throw intrinsicFailure(`States.Format: the template must be a string, got ${jsonText(tpl)}`);
      const lit = call.args[0].kind === 'lit' ? call.args[0].raw : null;
      const parts = [];
      let cur = '';
      const src = lit ?? tpl;
      for (let k = 0; k < src.length; k += 1) {
        const ch = src[k];
        if (lit !== null && ch === '\\') {
          cur += src[k + 1];
          k += 1;
        } else if (ch === '{' && src[k + 1] === '}') {
          parts.push(cur);
          cur = '';
          k += 1;
        } else cur += ch;
      }
      parts.push(cur);
      const values = args.slice(1);
      if (values.length !== parts.length - 1) {
        throw intrinsicFailure(`States.Format: the template has ${parts.length - 1} placeholder(s) {} but ${values.length} argument(s) were given`);
      }
      let out = parts[0];
      values.forEach((v, k) => {
        out += javaString(v) + parts[k + 1];
      });
      return out;
    }
    case 'States.StringToJson': {
      const s = needString(args[0], 0);
      // [recorded] test_json_manipulation: "" and " " -> null
      if (s.trim() === '') return null;
      try {
        return JSON.parse(s);
      } catch (e) {
        throw intrinsicFailure(`States.StringToJson: not a JSON text: ${e.message}`);
      }
    }
    case 'States.JsonToString':
      // Compact JSON, backslashes and quotes escaped exactly once: the text parses back to the value.
      return jsonText(args[0]);
    case 'States.Array':
      return args;
    case 'States.ArrayPartition': {
      const arr = needArray(args[0], 0);
      const size = rounded(args[1], 1);
      if (size <= 0) throw intrinsicFailure('States.ArrayPartition: the chunk size must be a positive integer');
      const out = [];
      for (let k = 0; k < arr.length; k += size) out.push(arr.slice(k, k + size));
      return out;
    }
    case 'States.ArrayContains':
      return needArray(args[0], 0).some((x) => jsonEqual(x, args[1]));
    case 'States.ArrayRange': {
      const [a, b, step] = [rounded(args[0], 0), rounded(args[1], 1), rounded(args[2], 2)];
      if (step === 0) throw intrinsicFailure('States.ArrayRange: the step must not be 0');
      const out = [];
      for (let v = a; step > 0 ? v <= b : v >= b; v += step) {
        out.push(v);
        if (out.length > 1000) throw intrinsicFailure('States.ArrayRange: the array would have more than 1000 items');
      }
      return out;
    }
    case 'States.ArrayGetItem': {
      const arr = needArray(args[0], 0);
      const idx = needNumber(args[1], 1);
      if (!Number.isInteger(idx) || idx < 0 || idx >= arr.length) {
        throw intrinsicFailure(`States.ArrayGetItem: index ${idx} is out of bounds for an array of ${arr.length} item(s)`);
      }
      return arr[idx];
    }
    case 'States.ArrayLength':
      return needArray(args[0], 0).length;
    case 'States.ArrayUnique': {
      const out = [];
      for (const x of needArray(args[0], 0)) if (!out.some((y) => jsonEqual(x, y))) out.push(x);
      return out;
    }
    case 'States.Base64Encode':
      return Buffer.from(needString(args[0], 0, 10000), 'utf8').toString('base64');
    case 'States.Base64Decode': {
      const s = needString(args[0], 0, 10000);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw intrinsicFailure('States.Base64Decode: the input is not valid Base64');
      return Buffer.from(s, 'base64').toString('utf8');
    }
    case 'States.Hash': {
      const data2 = needString(args[0], 0, 10000);
      const algo = { MD5: 'md5', 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' }[args[1]];
      if (!algo) throw intrinsicFailure(`States.Hash: unsupported algorithm ${jsonText(args[1])} (MD5, SHA-1, SHA-256, SHA-384 or SHA-512)`);
      return createHash(algo).update(data2, 'utf8').digest('hex');
    }
    case 'States.JsonMerge': {
      if (!isObject(args[0]) || !isObject(args[1])) throw intrinsicFailure('States.JsonMerge: the first two arguments must be JSON objects');
      // [doc] "Currently, Step Functions only supports the shallow merging mode;
      // therefore, you must specify the boolean value as false."
      if (args[2] !== false) throw intrinsicFailure(`States.JsonMerge: the third argument must be false (only shallow merging is supported), got ${jsonText(args[2])}`);
      return { ...args[0], ...args[1] };
    }
    case 'States.MathRandom': {
      const lo = rounded(args[0], 0);
      const hi = rounded(args[1], 1);
      if (hi <= lo) throw intrinsicFailure('States.MathRandom: the end must be greater than the start');
      // With a seed AWS returns a reproducible number; the sequence here is
      // not AWS's (Java's Random) [guess]: same seed, same number, that's all.
      let r = Math.random();
      if (args.length === 3) {
        let x = (rounded(args[2], 2) ^ 0x5deece66d) >>> 0;
        x = (Math.imul(x ^ (x >>> 16), 0x45d9f3b) ^ (x >>> 13)) >>> 0;
        r = x / 2 ** 32;
      }
      return lo + Math.floor(r * (hi - lo));
    }
    case 'States.MathAdd': {
      const a = rounded(args[0], 0);
      const b = rounded(args[1], 1);
      const INT_MIN = -2147483648;
      const INT_MAX = 2147483647;
      if (a < INT_MIN || a > INT_MAX || b < INT_MIN || b > INT_MAX) throw intrinsicFailure('States.MathAdd: arguments must be within -2147483648..2147483647');
      return a + b;
    }
    case 'States.StringSplit': {
      const s = needString(args[0], 0);
      const delims = needString(args[1], 1);
      // [recorded] test_string_operations: every character of the second
      // argument is a delimiter and empty tokens are dropped (",,,," -> []).
      const out = [];
      let cur = '';
      for (const ch of s) {
        if (delims.includes(ch)) {
          if (cur !== '') out.push(cur);
          cur = '';
        } else cur += ch;
      }
      if (cur !== '') out.push(cur);
      return out;
    }
    case 'States.UUID':
      return randomUUID();
    default:
      throw intrinsicFailure(`unknown intrinsic function ${name}`);
  }
}

// ===========================================================================
// Payload templates (Parameters, ResultSelector, ItemSelector, BatchInput, ...)
// ===========================================================================

/**
 * `.$` fields: "$$..." -> the context object, "$..." -> a path on the input,
 * anything else an intrinsic function. Objects inside arrays are processed too.
 * A path that matches nothing fails States.Runtime with AWS's wording
 * ([recorded] test_invalid_jsonpath).
 */
function applyTemplate(tpl, data, contextObject) {
  if (Array.isArray(tpl)) return tpl.map((x) => applyTemplate(x, data, contextObject));
  if (!isObject(tpl)) return tpl;
  const out = {};
  for (const [key, value] of Object.entries(tpl)) {
    if (key.endsWith('.$')) {
      const name = key.slice(0, -2);
      out[name] = evalDollarValue(value, data, contextObject, key);
    } else out[key] = applyTemplate(value, data, contextObject);
  }
  return out;
}

function evalDollarValue(value, data, contextObject, fieldName) {
  if (typeof value !== 'string') throw new StatesError('States.Runtime', `The value for the field '${fieldName}' must be a string`);
  if (value.startsWith('$')) {
    const r = lookup(value, data, contextObject);
    if (!r.found) {
      throw new StatesError('States.Runtime', `The JSONPath '${value}' specified for the field '${fieldName}' could not be found in the input '${jsonText(data)}'`);
    }
    return r.value;
  }
  let call;
  try {
    call = parseIntrinsic(value);
  } catch (e) {
    throw new StatesError('States.Runtime', `The value for the field '${fieldName}' must be a valid JSONPath or a valid intrinsic function call: ${e.message}`);
  }
  return evalIntrinsic(call, data, contextObject, fieldName);
}

// ===========================================================================
// validateDefinition
// ===========================================================================

const COMMON = ['Type', 'Comment'];
const FLOW = ['Next', 'End'];
const IO = ['InputPath', 'OutputPath'];
const ALLOWED_FIELDS = {
  Pass: [...COMMON, ...FLOW, ...IO, 'Parameters', 'Result', 'ResultPath'],
  Task: [...COMMON, ...FLOW, ...IO, 'Resource', 'Parameters', 'ResultSelector', 'ResultPath', 'Retry', 'Catch', 'TimeoutSeconds', 'TimeoutSecondsPath', 'HeartbeatSeconds', 'HeartbeatSecondsPath'],
  Choice: [...COMMON, ...IO, 'Choices', 'Default'],
  Wait: [...COMMON, ...FLOW, ...IO, 'Seconds', 'SecondsPath', 'Timestamp', 'TimestampPath'],
  Succeed: [...COMMON, ...IO],
  Fail: [...COMMON, 'Error', 'ErrorPath', 'Cause', 'CausePath'],
  Parallel: [...COMMON, ...FLOW, ...IO, 'Parameters', 'ResultSelector', 'ResultPath', 'Retry', 'Catch', 'Branches'],
  Map: [
    ...COMMON, ...FLOW, ...IO, 'ItemsPath', 'ItemSelector', 'Parameters', 'ItemProcessor', 'Iterator', 'MaxConcurrency', 'MaxConcurrencyPath',
    'ResultSelector', 'ResultPath', 'Retry', 'Catch', 'ItemReader', 'ItemBatcher', 'ResultWriter', 'ToleratedFailurePercentage',
    'ToleratedFailurePercentagePath', 'ToleratedFailureCount', 'ToleratedFailureCountPath', 'Label',
  ],
};
const DISTRIBUTED_ONLY = ['ItemReader', 'ItemBatcher', 'ResultWriter', 'ToleratedFailurePercentage', 'ToleratedFailurePercentagePath', 'ToleratedFailureCount', 'ToleratedFailureCountPath', 'Label'];
const CHOICE_OPERATORS = [
  'StringEquals', 'StringLessThan', 'StringGreaterThan', 'StringLessThanEquals', 'StringGreaterThanEquals',
  'NumericEquals', 'NumericLessThan', 'NumericGreaterThan', 'NumericLessThanEquals', 'NumericGreaterThanEquals',
  'BooleanEquals',
  'TimestampEquals', 'TimestampLessThan', 'TimestampGreaterThan', 'TimestampLessThanEquals', 'TimestampGreaterThanEquals',
];
const ALL_CHOICE_OPERATORS = new Set([
  ...CHOICE_OPERATORS,
  ...CHOICE_OPERATORS.map((o) => `${o}Path`),
  'StringMatches', 'IsNull', 'IsPresent', 'IsNumeric', 'IsString', 'IsBoolean', 'IsTimestamp',
]);
const MAP_LABEL_FORBIDDEN = /[\s?*<>{}[\]:;,\\|^~$#%&`"\u0000-\u001f\u007f-\u009f]/;

/** The problems AWS's CreateStateMachine would reject, plus whatever this interpreter does not run. [] when fine. */
export function validateDefinition(definition) {
  const problems = [];
  const names = new Map();
  if (!isObject(definition)) return ['the definition must be a JSON object'];
  for (const key of Object.keys(definition)) {
    if (!['Comment', 'StartAt', 'States', 'Version', 'TimeoutSeconds', 'QueryLanguage'].includes(key)) {
      problems.push(`top level: unsupported field ${key}`);
    }
  }
  if (definition.QueryLanguage !== undefined && definition.QueryLanguage !== 'JSONPath') {
    problems.push(`top level: QueryLanguage ${jsonText(definition.QueryLanguage)} is not supported (JSONPath only)`);
  }
  if (definition.TimeoutSeconds !== undefined && !(Number.isInteger(definition.TimeoutSeconds) && definition.TimeoutSeconds > 0)) {
    problems.push('top level: TimeoutSeconds must be a positive integer');
  }
  validateMachine(definition, 'top level', problems, names);
  return problems;
}

function validateMachine(machine, where, problems, names) {
  if (!isObject(machine)) {
    problems.push(`${where}: must be an object with StartAt and States`);
    return;
  }
  if (!isObject(machine.States) || Object.keys(machine.States).length === 0) {
    problems.push(`${where}: States must be a non-empty object`);
    return;
  }
  if (typeof machine.StartAt !== 'string' || !Object.hasOwn(machine.States, machine.StartAt)) {
    problems.push(`${where}: StartAt ${jsonText(machine.StartAt)} does not name a state in States`);
  }
  const local = new Set(Object.keys(machine.States));
  for (const [name, state] of Object.entries(machine.States)) {
    const at = `state ${name}`;
    if (name.length > 80) problems.push(`${at}: state names may have at most 80 characters`);
    if (names.has(name)) problems.push(`${at}: state names must be unique within the whole state machine (also in ${names.get(name)})`);
    names.set(name, where);
    validateState(name, state, at, local, problems, names);
  }
}

function checkPath(value, field, at, problems, { reference = false, allowNull = false, allowContext = true } = {}) {
  if (value === undefined) return;
  if (value === null) {
    if (!allowNull) problems.push(`${at}: ${field} must not be null`);
    return;
  }
  if (typeof value !== 'string') {
    problems.push(`${at}: ${field} must be a string path`);
    return;
  }
  try {
    const p = parsePath(value);
    if (reference && !p.definite) problems.push(`${at}: ${field} ${jsonText(value)} must be a reference path (a single node: no *, .., [a,b], slices or filters)`);
    if (!allowContext && p.root === '$$') problems.push(`${at}: ${field} must not start with $$`);
  } catch (e) {
    problems.push(`${at}: ${field}: invalid JSONPath ${e.message}`);
  }
}

function checkTemplate(tpl, field, at, problems) {
  if (tpl === undefined) return;
  if (!isObject(tpl)) {
    problems.push(`${at}: ${field} must be a JSON object (a payload template)`);
    return;
  }
  const walk = (node, where) => {
    if (Array.isArray(node)) {
      node.forEach((x, k) => walk(x, `${where}[${k}]`));
      return;
    }
    if (!isObject(node)) return;
    const seen = new Set();
    for (const [key, value] of Object.entries(node)) {
      const outName = key.endsWith('.$') ? key.slice(0, -2) : key;
      if (seen.has(outName)) problems.push(`${at}: ${where} has the field ${outName} twice once .$ is stripped`);
      seen.add(outName);
      if (key.endsWith('.$')) {
        if (typeof value !== 'string') {
          problems.push(`${at}: the value for the field '${key}' must be a valid JSONPath or a valid intrinsic function call`);
          continue;
        }
        checkDollarValue(value, `${where}.${key}`, at, problems);
      } else walk(value, `${where}.${key}`);
    }
  };
  walk(tpl, field);
}

function checkDollarValue(value, field, at, problems) {
  if (value.startsWith('$')) {
    try {
      parsePath(value);
    } catch (e) {
      problems.push(`${at}: the value for the field '${field}' must be a valid JSONPath or a valid intrinsic function call (${e.message})`);
    }
    return;
  }
  try {
    parseIntrinsic(value);
  } catch (e) {
    problems.push(`${at}: the value for the field '${field}' must be a valid JSONPath or a valid intrinsic function call (${e.message})`);
  }
}

const positiveInt = (v) => Number.isInteger(v) && v > 0;
const nonNegativeInt = (v) => Number.isInteger(v) && v >= 0;

function validateState(name, state, at, local, problems, names) {
  if (!isObject(state)) {
    problems.push(`${at}: must be an object`);
    return;
  }
  const type = state.Type;
  if (!Object.hasOwn(ALLOWED_FIELDS, type)) {
    problems.push(`${at}: unknown or unsupported Type ${jsonText(type)}`);
    return;
  }
  for (const key of Object.keys(state)) {
    if (!ALLOWED_FIELDS[type].includes(key)) problems.push(`${at}: field ${key} is not supported in a ${type} state here`);
  }
  const terminalType = type === 'Succeed' || type === 'Fail' || type === 'Choice';
  if (!terminalType) {
    const hasNext = state.Next !== undefined;
    const isEnd = state.End === true;
    if (state.End !== undefined && state.End !== true) problems.push(`${at}: End must be true when present`);
    if (hasNext && isEnd) problems.push(`${at}: has both Next and End`);
    if (!hasNext && !isEnd) problems.push(`${at}: needs Next or "End": true`);
    if (hasNext && (typeof state.Next !== 'string' || !local.has(state.Next))) problems.push(`${at}: Next ${jsonText(state.Next)} is not a state of the same States object`);
  }
  checkPath(state.InputPath, 'InputPath', at, problems, { allowNull: true });
  checkPath(state.OutputPath, 'OutputPath', at, problems, { allowNull: true });
  checkPath(state.ResultPath, 'ResultPath', at, problems, { reference: true, allowNull: true, allowContext: false });
  checkTemplate(state.Parameters, 'Parameters', at, problems);
  checkTemplate(state.ResultSelector, 'ResultSelector', at, problems);
  if (state.Retry !== undefined) validateRetry(state.Retry, at, problems);
  if (state.Catch !== undefined) validateCatch(state.Catch, at, local, problems);
  switch (type) {
    case 'Task':
      validateTask(state, at, problems);
      break;
    case 'Choice':
      if (!Array.isArray(state.Choices) || state.Choices.length === 0) problems.push(`${at}: Choices must be a non-empty array`);
      else state.Choices.forEach((rule, k) => validateChoiceRule(rule, `${at} Choices[${k}]`, true, local, problems));
      if (state.Default !== undefined && !local.has(state.Default)) problems.push(`${at}: Default ${jsonText(state.Default)} is not a state of the same States object`);
      break;
    case 'Wait': {
      const given = ['Seconds', 'SecondsPath', 'Timestamp', 'TimestampPath'].filter((f) => state[f] !== undefined);
      if (given.length !== 1) problems.push(`${at}: needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath`);
      if (state.Seconds !== undefined && !nonNegativeInt(state.Seconds)) problems.push(`${at}: Seconds must be a non-negative integer`);
      if (state.Timestamp !== undefined && parseTimestamp(state.Timestamp) === null) problems.push(`${at}: Timestamp ${jsonText(state.Timestamp)} is not an RFC 3339 timestamp`);
      checkPath(state.SecondsPath, 'SecondsPath', at, problems, { reference: true });
      checkPath(state.TimestampPath, 'TimestampPath', at, problems, { reference: true });
      break;
    }
    case 'Fail':
      if (state.Error !== undefined && state.ErrorPath !== undefined) problems.push(`${at}: has both Error and ErrorPath`);
      if (state.Cause !== undefined && state.CausePath !== undefined) problems.push(`${at}: has both Cause and CausePath`);
      if (state.Error !== undefined && typeof state.Error !== 'string') problems.push(`${at}: Error must be a string`);
      if (state.Cause !== undefined && typeof state.Cause !== 'string') problems.push(`${at}: Cause must be a string`);
      for (const f of ['ErrorPath', 'CausePath']) {
        if (state[f] === undefined) continue;
        if (typeof state[f] !== 'string') problems.push(`${at}: ${f} must be a string`);
        else if (state[f].startsWith('$')) checkPath(state[f], f, at, problems, { reference: true });
        else checkDollarValue(state[f], f, at, problems);
      }
      break;
    case 'Parallel':
      if (!Array.isArray(state.Branches) || state.Branches.length === 0) problems.push(`${at}: Branches must be a non-empty array`);
      else state.Branches.forEach((b, k) => validateMachineNoExtra(b, `${at} Branches[${k}]`, problems, names, ['StartAt', 'States', 'Comment']));
      break;
    case 'Map':
      validateMap(state, at, problems, names);
      break;
    default:
      break;
  }
}

function validateMachineNoExtra(machine, where, problems, names, allowed) {
  if (isObject(machine)) {
    for (const key of Object.keys(machine)) if (!allowed.includes(key)) problems.push(`${where}: unsupported field ${key}`);
  }
  validateMachine(machine, where, problems, names);
}

function validateTask(state, at, problems) {
  const r = state.Resource;
  if (typeof r !== 'string' || r === '') problems.push(`${at}: Resource must be a non-empty string`);
  else if (!LAMBDA_ARN.test(r) && !SERVICE_ARN.test(r)) {
    problems.push(`${at}: Resource ${jsonText(r)} is not supported (a Lambda function ARN or arn:aws:states:::service:api)`);
  } else if (/\.waitForTaskToken$/.test(r)) {
    problems.push(`${at}: Resource ${r}: the .waitForTaskToken pattern is not supported (no task tokens)`);
  }
  if (state.TimeoutSeconds !== undefined && state.TimeoutSecondsPath !== undefined) problems.push(`${at}: has both TimeoutSeconds and TimeoutSecondsPath`);
  if (state.HeartbeatSeconds !== undefined && state.HeartbeatSecondsPath !== undefined) problems.push(`${at}: has both HeartbeatSeconds and HeartbeatSecondsPath`);
  if (state.TimeoutSeconds !== undefined && !positiveInt(state.TimeoutSeconds)) problems.push(`${at}: TimeoutSeconds must be a positive integer`);
  if (state.HeartbeatSeconds !== undefined && !positiveInt(state.HeartbeatSeconds)) problems.push(`${at}: HeartbeatSeconds must be a positive integer`);
  if (positiveInt(state.TimeoutSeconds) && positiveInt(state.HeartbeatSeconds) && state.HeartbeatSeconds >= state.TimeoutSeconds) {
    problems.push(`${at}: HeartbeatSeconds must be smaller than TimeoutSeconds`);
  }
  checkPath(state.TimeoutSecondsPath, 'TimeoutSecondsPath', at, problems, { reference: true });
  checkPath(state.HeartbeatSecondsPath, 'HeartbeatSecondsPath', at, problems, { reference: true });
}

function validateErrorEquals(list, at, problems, isLast) {
  if (!Array.isArray(list) || list.length === 0 || !list.every((e) => typeof e === 'string')) {
    problems.push(`${at}: ErrorEquals must be a non-empty array of strings`);
    return;
  }
  if (list.includes('States.ALL')) {
    if (list.length !== 1) problems.push(`${at}: States.ALL must appear alone in ErrorEquals`);
    if (!isLast) problems.push(`${at}: States.ALL must be in the last retrier/catcher`);
  }
}

function validateRetry(retry, at, problems) {
  if (!Array.isArray(retry)) {
    problems.push(`${at}: Retry must be an array`);
    return;
  }
  retry.forEach((r, k) => {
    const where = `${at} Retry[${k}]`;
    if (!isObject(r)) {
      problems.push(`${where}: must be an object`);
      return;
    }
    for (const key of Object.keys(r)) {
      if (!['ErrorEquals', 'IntervalSeconds', 'MaxAttempts', 'BackoffRate', 'MaxDelaySeconds', 'JitterStrategy', 'Comment'].includes(key)) problems.push(`${where}: unsupported field ${key}`);
    }
    validateErrorEquals(r.ErrorEquals, where, problems, k === retry.length - 1);
    if (r.IntervalSeconds !== undefined && !(positiveInt(r.IntervalSeconds) && r.IntervalSeconds <= 99999999)) problems.push(`${where}: IntervalSeconds must be an integer 1..99999999`);
    if (r.MaxAttempts !== undefined && !(nonNegativeInt(r.MaxAttempts) && r.MaxAttempts <= 99999999)) problems.push(`${where}: MaxAttempts must be an integer 0..99999999`);
    if (r.BackoffRate !== undefined && !(typeof r.BackoffRate === 'number' && r.BackoffRate >= 1)) problems.push(`${where}: BackoffRate must be a number >= 1.0`);
    if (r.MaxDelaySeconds !== undefined && !(positiveInt(r.MaxDelaySeconds) && r.MaxDelaySeconds < 31622401)) problems.push(`${where}: MaxDelaySeconds must be an integer 1..31622400`);
    if (r.JitterStrategy !== undefined && r.JitterStrategy !== 'FULL' && r.JitterStrategy !== 'NONE') problems.push(`${where}: JitterStrategy must be FULL or NONE`);
  });
}

function validateCatch(catchers, at, local, problems) {
  if (!Array.isArray(catchers)) {
    problems.push(`${at}: Catch must be an array`);
    return;
  }
  catchers.forEach((c, k) => {
    const where = `${at} Catch[${k}]`;
    if (!isObject(c)) {
      problems.push(`${where}: must be an object`);
      return;
    }
    for (const key of Object.keys(c)) if (!['ErrorEquals', 'Next', 'ResultPath', 'Comment'].includes(key)) problems.push(`${where}: unsupported field ${key}`);
    validateErrorEquals(c.ErrorEquals, where, problems, k === catchers.length - 1);
    if (typeof c.Next !== 'string' || !local.has(c.Next)) problems.push(`${where}: Next ${jsonText(c.Next)} is not a state of the same States object`);
    checkPath(c.ResultPath, 'ResultPath', where, problems, { reference: true, allowNull: true, allowContext: false });
  });
}

function validateStringMatches(pattern) {
  for (let k = 0; k < pattern.length; k += 1) {
    if (pattern[k] === '\\') {
      if (pattern[k + 1] !== '*' && pattern[k + 1] !== '\\') return false;
      k += 1;
    }
  }
  return true;
}

function validateChoiceRule(rule, at, topLevel, local, problems) {
  if (!isObject(rule)) {
    problems.push(`${at}: must be an object`);
    return;
  }
  if (topLevel) {
    if (typeof rule.Next !== 'string' || !local.has(rule.Next)) problems.push(`${at}: Next ${jsonText(rule.Next)} is not a state of the same States object`);
  } else if (rule.Next !== undefined) problems.push(`${at}: a nested choice rule must not have Next`);
  const boolOps = ['And', 'Or', 'Not'].filter((k) => rule[k] !== undefined);
  const dataOps = Object.keys(rule).filter((k) => ALL_CHOICE_OPERATORS.has(k));
  for (const key of Object.keys(rule)) {
    if (!['Next', 'Comment', 'Variable', 'And', 'Or', 'Not'].includes(key) && !ALL_CHOICE_OPERATORS.has(key)) problems.push(`${at}: unsupported field ${key}`);
  }
  if (boolOps.length + dataOps.length !== 1) {
    problems.push(`${at}: needs exactly one of And, Or, Not or one comparison operator`);
    return;
  }
  if (boolOps.length === 1) {
    const op = boolOps[0];
    if (rule.Variable !== undefined) problems.push(`${at}: ${op} must not have Variable`);
    if (op === 'Not') validateChoiceRule(rule.Not, `${at}.Not`, false, local, problems);
    else if (!Array.isArray(rule[op]) || rule[op].length === 0) problems.push(`${at}: ${op} must be a non-empty array`);
    else rule[op].forEach((r, k) => validateChoiceRule(r, `${at}.${op}[${k}]`, false, local, problems));
    return;
  }
  const op = dataOps[0];
  if (typeof rule.Variable !== 'string') problems.push(`${at}: Variable must be a path`);
  else checkPath(rule.Variable, 'Variable', at, problems);
  const v = rule[op];
  if (op.endsWith('Path')) checkPath(v, op, at, problems);
  else if (op.startsWith('Is')) {
    if (typeof v !== 'boolean') problems.push(`${at}: ${op} must be true or false`);
  } else if (op.startsWith('String')) {
    if (typeof v !== 'string') problems.push(`${at}: ${op} must be a string`);
    else if (op === 'StringMatches' && !validateStringMatches(v)) problems.push(`${at}: StringMatches ${jsonText(v)} has an open escape backslash`);
  } else if (op.startsWith('Numeric')) {
    if (typeof v !== 'number') problems.push(`${at}: ${op} must be a number`);
  } else if (op === 'BooleanEquals') {
    if (typeof v !== 'boolean') problems.push(`${at}: ${op} must be true or false`);
  } else if (op.startsWith('Timestamp')) {
    if (typeof v !== 'string') problems.push(`${at}: ${op} must be a timestamp string`);
  }
}

function validateMap(state, at, problems, names) {
  if (state.ItemProcessor !== undefined && state.Iterator !== undefined) problems.push(`${at}: has both ItemProcessor and Iterator`);
  if (state.ItemSelector !== undefined && state.Parameters !== undefined) problems.push(`${at}: has both ItemSelector and Parameters`);
  checkTemplate(state.ItemSelector, 'ItemSelector', at, problems);
  checkPath(state.ItemsPath, 'ItemsPath', at, problems, { reference: true });
  if (state.MaxConcurrency !== undefined && state.MaxConcurrencyPath !== undefined) problems.push(`${at}: has both MaxConcurrency and MaxConcurrencyPath`);
  if (state.MaxConcurrency !== undefined && !nonNegativeInt(state.MaxConcurrency)) problems.push(`${at}: MaxConcurrency must be a non-negative integer`);
  checkPath(state.MaxConcurrencyPath, 'MaxConcurrencyPath', at, problems, { reference: true });
  const processor = state.ItemProcessor ?? state.Iterator;
  if (processor === undefined) {
    problems.push(`${at}: needs ItemProcessor`);
    return;
  }
  const config = isObject(processor) ? processor.ProcessorConfig : undefined;
  if (config !== undefined && !isObject(config)) problems.push(`${at}: ProcessorConfig must be an object`);
  const mode = config?.Mode ?? 'INLINE';
  if (mode !== 'INLINE' && mode !== 'DISTRIBUTED') problems.push(`${at}: ProcessorConfig.Mode must be INLINE or DISTRIBUTED`);
  if (isObject(config)) {
    for (const key of Object.keys(config)) if (!['Mode', 'ExecutionType'].includes(key)) problems.push(`${at}: ProcessorConfig.${key} is not supported`);
    if (mode === 'DISTRIBUTED' && config.ExecutionType !== 'STANDARD' && config.ExecutionType !== 'EXPRESS') {
      problems.push(`${at}: ProcessorConfig.ExecutionType must be STANDARD or EXPRESS in DISTRIBUTED mode`);
    }
    if (mode === 'INLINE' && config.ExecutionType !== undefined) problems.push(`${at}: ProcessorConfig.ExecutionType is only for DISTRIBUTED mode`);
  }
  validateMachineNoExtra(processor, `${at} ItemProcessor`, problems, names, ['StartAt', 'States', 'Comment', 'ProcessorConfig']);
  if (mode !== 'DISTRIBUTED') {
    for (const f of DISTRIBUTED_ONLY) if (state[f] !== undefined) problems.push(`${at}: ${f} needs ProcessorConfig.Mode DISTRIBUTED`);
    return;
  }
  for (const [a, b] of [['ToleratedFailurePercentage', 'ToleratedFailurePercentagePath'], ['ToleratedFailureCount', 'ToleratedFailureCountPath']]) {
    if (state[a] !== undefined && state[b] !== undefined) problems.push(`${at}: has both ${a} and ${b}`);
    checkPath(state[b], b, at, problems, { reference: true });
  }
  if (state.ToleratedFailurePercentage !== undefined && !(typeof state.ToleratedFailurePercentage === 'number' && state.ToleratedFailurePercentage >= 0 && state.ToleratedFailurePercentage <= 100)) {
    problems.push(`${at}: ToleratedFailurePercentage must be a number 0..100`);
  }
  if (state.ToleratedFailureCount !== undefined && !nonNegativeInt(state.ToleratedFailureCount)) problems.push(`${at}: ToleratedFailureCount must be a non-negative integer`);
  if (state.Label !== undefined) {
    // [recorded] test_sfn_api_map_run: label rules enforced at CreateStateMachine
    if (typeof state.Label !== 'string' || state.Label === '') problems.push(`${at}: Label cannot be empty`);
    else if (state.Label.length > 40) problems.push(`${at}: Label cannot exceed 40 characters`);
    else if (MAP_LABEL_FORBIDDEN.test(state.Label)) problems.push(`${at}: Label contains an invalid character`);
  }
  const reader = state.ItemReader;
  if (reader !== undefined) {
    if (!isObject(reader)) problems.push(`${at}: ItemReader must be an object`);
    else {
      for (const key of Object.keys(reader)) if (!['Resource', 'Parameters', 'ReaderConfig'].includes(key)) problems.push(`${at}: ItemReader.${key} is not supported`);
      if (reader.Resource !== 'arn:aws:states:::s3:getObject') problems.push(`${at}: ItemReader.Resource ${jsonText(reader.Resource)} is not supported (arn:aws:states:::s3:getObject only)`);
      checkTemplate(reader.Parameters, 'ItemReader.Parameters', at, problems);
      const rc = reader.ReaderConfig;
      if (rc === undefined || !isObject(rc)) problems.push(`${at}: ItemReader.ReaderConfig with InputType JSON is required`);
      else {
        for (const key of Object.keys(rc)) if (!['InputType', 'MaxItems', 'MaxItemsPath'].includes(key)) problems.push(`${at}: ItemReader.ReaderConfig.${key} is not supported`);
        if (rc.InputType !== 'JSON') problems.push(`${at}: ItemReader.ReaderConfig.InputType ${jsonText(rc.InputType)} is not supported (JSON only)`);
        if (rc.MaxItems !== undefined && rc.MaxItemsPath !== undefined) problems.push(`${at}: ReaderConfig has both MaxItems and MaxItemsPath`);
        if (rc.MaxItems !== undefined && !(positiveInt(rc.MaxItems) && rc.MaxItems <= 100000000)) problems.push(`${at}: ReaderConfig.MaxItems must be an integer 1..100000000`);
        checkPath(rc.MaxItemsPath, 'ReaderConfig.MaxItemsPath', at, problems, { reference: true });
      }
    }
  }
  const batcher = state.ItemBatcher;
  if (batcher !== undefined) {
    if (!isObject(batcher)) problems.push(`${at}: ItemBatcher must be an object`);
    else {
      const known = ['MaxItemsPerBatch', 'MaxItemsPerBatchPath', 'MaxInputBytesPerBatch', 'MaxInputBytesPerBatchPath', 'BatchInput'];
      for (const key of Object.keys(batcher)) if (!known.includes(key)) problems.push(`${at}: ItemBatcher.${key} is not supported`);
      if (!known.slice(0, 4).some((k) => batcher[k] !== undefined)) problems.push(`${at}: ItemBatcher needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)`);
      for (const [a, b] of [['MaxItemsPerBatch', 'MaxItemsPerBatchPath'], ['MaxInputBytesPerBatch', 'MaxInputBytesPerBatchPath']]) {
        if (batcher[a] !== undefined && batcher[b] !== undefined) problems.push(`${at}: ItemBatcher has both ${a} and ${b}`);
        if (batcher[a] !== undefined && !positiveInt(batcher[a])) problems.push(`${at}: ItemBatcher.${a} must be a positive integer`);
        checkPath(batcher[b], `ItemBatcher.${b}`, at, problems, { reference: true });
      }
      checkTemplate(batcher.BatchInput, 'ItemBatcher.BatchInput', at, problems);
    }
  }
  const writer = state.ResultWriter;
  if (writer !== undefined) {
    if (!isObject(writer)) problems.push(`${at}: ResultWriter must be an object`);
    else {
      for (const key of Object.keys(writer)) if (!['Resource', 'Parameters'].includes(key)) problems.push(`${at}: ResultWriter.${key} is not supported`);
      if (writer.Resource !== 'arn:aws:states:::s3:putObject') problems.push(`${at}: ResultWriter.Resource must be arn:aws:states:::s3:putObject`);
      checkTemplate(writer.Parameters, 'ResultWriter.Parameters', at, problems);
    }
  }
}

// ===========================================================================
// The interpreter
// ===========================================================================

const CLOSING = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionAborted', 'ExecutionTimedOut']);

/** The detail key GetExecutionHistory uses for an event type (botocore sfn model 2016-11-23). */
function detailsKey(type) {
  if (type.endsWith('StateEntered')) return 'stateEnteredEventDetails';
  if (type.endsWith('StateExited')) return 'stateExitedEventDetails';
  if (/^MapIteration/.test(type)) return `mapIteration${type.slice('MapIteration'.length)}EventDetails`;
  return `${type[0].toLowerCase()}${type.slice(1)}EventDetails`;
}

const NO_DETAILS = new Set([
  'LambdaFunctionStarted', 'MapRunSucceeded', 'MapStateSucceeded', 'MapStateFailed', 'MapStateAborted',
  'ParallelStateStarted', 'ParallelStateSucceeded', 'ParallelStateFailed', 'ParallelStateAborted',
  'TaskStateAborted', 'WaitStateAborted',
]);

function retrierMatches(errorEquals, err) {
  return errorEquals.some((name) => {
    if (name === err.error) return true;
    if (name === 'States.ALL') return true;
    if (name === 'States.TaskFailed') return err.error !== 'States.Timeout';
    return false;
  });
}

function errorOutput(err) {
  const out = { Error: err.error };
  if (err.cause !== undefined) out.Cause = err.cause;
  return out;
}

/**
 * TaskScheduled's resourceType/resource: "arn:aws:states:::sns:publish" -> sns / publish,
 * "...:::lambda:invoke" -> lambda / invoke ([recorded]), "...:::aws-sdk:s3:getObject" ->
 * aws-sdk:s3 / getObject, "...:::states:startExecution.sync:2" -> states / startExecution.sync:2 [guess].
 */
function resourceInfo(resource) {
  if (LAMBDA_ARN.test(resource)) return { lambda: true };
  const m = SERVICE_ARN.exec(resource);
  if (!m) return { lambda: false, resourceType: 'unknown', resource };
  if (m[1] === 'aws-sdk') {
    const k = m[2].indexOf(':');
    return { lambda: false, resourceType: `aws-sdk:${m[2].slice(0, k)}`, resource: m[2].slice(k + 1) };
  }
  return { lambda: false, resourceType: m[1], resource: m[2] };
}

/** An AbortController whose signal many concurrent waits (Map iterations, children) may listen to. */
function controller() {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}

class Runner {
  constructor(execution, { definition, input, context, handlers, options }) {
    this.ex = execution;
    this.definition = definition;
    this.input = input === undefined ? {} : input;
    this.handlers = handlers ?? {};
    const opts = options ?? {};
    this.limit = opts.payloadLimitBytes ?? PAYLOAD_LIMIT_BYTES;
    this.historyLimit = opts.historyLimitEvents ?? HISTORY_LIMIT_EVENTS;
    this.retryDelayMs = opts.retryDelayMs;
    this.waitScale = opts.waitScale ?? 1;
    this.timers = new Set();
    this.abort = controller();
    this.closed = false;
    this.listeners = new Set();
    const ctx = context ?? {};
    this.stateMachineArn = ctx.stateMachineArn ?? 'arn:aws:states:us-east-1:123456789012:stateMachine:local';
    const arnParts = this.stateMachineArn.split(':');
    this.region = arnParts[3] || 'us-east-1';
    this.account = arnParts[4] || '123456789012';
    this.stateMachineName = ctx.stateMachineName ?? arnParts[6] ?? 'local';
    const name = ctx.executionName ?? randomUUID();
    this.executionArn = ctx.executionArn ?? `arn:aws:states:${this.region}:${this.account}:execution:${this.stateMachineName}:${name}`;
    this.roleArn = ctx.roleArn ?? `arn:aws:iam::${this.account}:role/local`;
    this.startTime = ctx.startTime ?? new Date().toISOString();
    this.executionName = name;
    this.contextBase = {
      Execution: { Id: this.executionArn, Input: this.input, StartTime: this.startTime, Name: name, RoleArn: this.roleArn, RedriveCount: 0 },
      StateMachine: { Id: this.stateMachineArn, Name: this.stateMachineName },
    };
    this.mapRunCounter = 0;
  }

  // ---------------------------------------------------------------- events

  emit(flow, type, details, { advance = true, prev } = {}) {
    if (this.closed) throw new Interrupt('closed');
    const events = this.ex.events;
    if (!CLOSING.has(type) && events.length >= this.historyLimit - 1) {
      this.finish('FAILED', {
        error: 'States.Runtime',
        cause: `The execution reached the maximum number of history events (${this.historyLimit}).`,
        prev: events.length,
      });
      throw new Interrupt('closed');
    }
    const event = {
      timestamp: new Date(),
      type,
      id: events.length + 1,
      previousEventId: prev ?? (flow ? flow.last : events.length),
    };
    if (!NO_DETAILS.has(type) && details !== undefined) event[detailsKey(type)] = details;
    events.push(event);
    if (advance && flow) flow.last = event.id;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a listener's failure is not the execution's
      }
    }
    return event.id;
  }

  /** Closes the execution with its final event. Idempotent. */
  finish(status, { error, cause, output, prev } = {}) {
    if (this.closed) return;
    const ex = this.ex;
    const events = ex.events;
    const push = (type, details) => {
      const event = { timestamp: new Date(), type, id: events.length + 1, previousEventId: prev ?? events.length };
      if (details !== undefined) event[detailsKey(type)] = details;
      events.push(event);
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch {
          // ignored
        }
      }
    };
    const errDetails = () => {
      const d = {};
      if (error !== undefined) d.error = error;
      if (cause !== undefined) d.cause = cause;
      return d;
    };
    if (status === 'SUCCEEDED') {
      push('ExecutionSucceeded', { output: jsonText(output), outputDetails: { truncated: false } });
      ex.output = output;
    } else if (status === 'FAILED') {
      push('ExecutionFailed', errDetails());
      ex.error = error;
      ex.cause = cause;
    } else if (status === 'ABORTED') {
      push('ExecutionAborted', errDetails());
      ex.error = error;
      ex.cause = cause;
    } else if (status === 'TIMED_OUT') {
      // [recorded] floci-io/floci#2733/#2782: DescribeExecution of a timed-out
      // execution has no error/cause keys; the ExecutionTimedOut event carries
      // States.Timeout with previousEventId 0.
      push('ExecutionTimedOut', { error: 'States.Timeout' });
    }
    this.closed = true;
    ex.status = status;
    ex.stopDate = new Date();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.abort.abort(new Interrupt('closed'));
    for (const run of ex.mapRuns) {
      if (run.status === 'RUNNING') {
        run.status = 'ABORTED';
        run.stopDate = new Date();
      }
    }
    this.resolveDone(ex);
  }

  // ---------------------------------------------------------------- timers

  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        this.timers.delete(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      this.timers.add(timer);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Rejects with the signal's reason as soon as it fires. */
  race(promise, signal) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      Promise.resolve(promise).then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  // ---------------------------------------------------------------- run

  async run() {
    // [recorded] ExecutionStarted and the first state's Entered event both have previousEventId 0.
    const root = { last: 0 };
    this.emit(null, 'ExecutionStarted', {
      input: jsonText(this.input),
      inputDetails: { truncated: false },
      roleArn: this.roleArn,
    });
    const inputText = jsonText(this.input);
    if (byteLength(inputText) > this.limit) {
      // AWS's StartExecution refuses such input before any execution exists
      // (API model: input max length 262144); states-api.mjs should answer
      // that itself. Here the execution fails at once.
      this.finish('FAILED', {
        error: 'States.DataLimitExceeded',
        cause: `The execution input has a size exceeding the maximum number of bytes service limit. (the input is ${byteLength(inputText)} bytes; the limit is ${this.limit} bytes)`,
      });
      return;
    }
    // Let the caller of startExecution attach listeners before any state runs.
    await Promise.resolve();
    if (this.closed) return;
    if (Number.isInteger(this.definition.TimeoutSeconds)) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.finish('TIMED_OUT', { prev: 0 });
      }, this.definition.TimeoutSeconds * 1000);
      this.timers.add(timer);
    }
    try {
      const scope = { flow: root, signal: this.abort.signal };
      const output = await this.runMachine(this.definition, clone(this.input), scope);
      const text = jsonText(output);
      if (byteLength(text) > this.limit) {
        this.finish('FAILED', {
          error: 'States.DataLimitExceeded',
          cause: `The execution output has a size exceeding the maximum number of bytes service limit. (the output is ${byteLength(text)} bytes; the limit is ${this.limit} bytes)`,
          prev: root.last,
        });
        return;
      }
      this.finish('SUCCEEDED', { output, prev: root.last });
    } catch (e) {
      if (e instanceof Interrupt) return;
      if (e instanceof StatesError) {
        this.finish('FAILED', { error: e.error, cause: e.cause, prev: e.prevId });
        return;
      }
      this.finish('FAILED', { error: 'States.Runtime', cause: `asl.mjs internal error: ${e?.stack ?? e}` });
    }
  }

  checkSignal(signal) {
    if (signal.aborted) throw signal.reason;
  }

  async runMachine(machine, input, scope) {
    let name = machine.StartAt;
    let data = input;
    for (;;) {
      this.checkSignal(scope.signal);
      const state = machine.States[name];
      const { output, next } = await this.runState(name, state, data, scope);
      if (next === undefined) return output;
      name = next;
      data = output;
    }
  }

  contextFor(stateName, enteredTime, extra) {
    return { ...this.contextBase, State: { Name: stateName, EnteredTime: enteredTime, ...extra } };
  }

  /** "An error occurred while executing the state 'X' (entered at the event id #N). ..." [recorded] */
  runtimeError(st, message, error = 'States.Runtime') {
    return new StatesError(error, `An error occurred while executing the state '${st.name}' (entered at the event id #${st.enteredId}). ${message}`);
  }

  dataLimit(what, st, size, terminal = true, subject = st.name) {
    const verb = what === 'parameters' ? 'provided parameters' : what === 'input' ? 'has an input' : 'returned a result';
    const detail = { parameters: 'the effective input', input: "the state's input", result: 'the task result', output: "the state's output", item: 'the Map item', childInput: 'the child execution input' }[what];
    return new StatesError(
      'States.DataLimitExceeded',
      `The state/task '${subject}' ${verb} with a size exceeding the maximum number of bytes service limit. (state '${st.name}': ${detail} is ${size} bytes; the limit is ${this.limit} bytes)`,
      { terminal },
    );
  }

  checkSize(value, what, st, { terminal = true, subject } = {}) {
    const text = jsonText(value);
    const size = byteLength(text);
    if (size > this.limit) throw this.dataLimit(what, st, size, terminal, subject);
    return text;
  }

  applyPath(st, field, pathText, data, contextObject) {
    if (pathText === undefined) return data;
    if (pathText === null) return {};
    const r = lookup(pathText, data, contextObject);
    if (!r.found) throw this.runtimeError(st, `Invalid path '${pathText}' : ${r.message}`);
    return r.value;
  }

  template(st, tpl, data, contextObject) {
    try {
      return applyTemplate(tpl, data, contextObject);
    } catch (e) {
      if (e instanceof StatesError && e.error === 'States.Runtime' && !e.cause.startsWith('An error occurred')) throw this.runtimeError(st, e.cause);
      throw e;
    }
  }

  /** A reference path that must resolve to an integer (TimeoutSecondsPath, MaxConcurrencyPath, ...). [recorded] wording */
  integerAt(st, field, pathText, data, { min = 0, float = false } = {}) {
    const r = lookup(pathText, data, this.contextBase);
    if (!r.found) throw this.runtimeError(st, `Invalid path '${pathText}' : ${r.message}`);
    const v = r.value;
    const ok = typeof v === 'number' && (float || Number.isInteger(v));
    if (!ok) throw this.runtimeError(st, `The ${field} field refers to value ${JSON.stringify(jsonText(v).replace(/^"|"$/g, ''))} which is not a valid ${float ? 'float' : 'integer'}: ${pathText}`);
    if (v < min) throw this.runtimeError(st, `${field.replace(/Path$/, '')} cannot be ${min === 0 ? 'negative' : `less than ${min}`}.`);
    return v;
  }

  async runState(name, state, input, scope) {
    const type = state.Type;
    this.ex.counts.stateTransitions += 1;
    const enteredTime = new Date().toISOString();
    const st = { name, state, type, enteredId: 0, enteredTime };
    const inputText = jsonText(input);
    if (byteLength(inputText) > this.limit) {
      const err = this.dataLimit('input', st, byteLength(inputText));
      err.prevId = scope.flow.last;
      throw err;
    }
    st.enteredId = this.emit(scope.flow, `${type}StateEntered`, { name, input: inputText, inputDetails: { truncated: false } });
    try {
      switch (type) {
        case 'Pass':
          return this.exitState(st, scope, this.runPass(st, input));
        case 'Succeed': {
          const ctx = this.contextFor(name, enteredTime);
          const out = this.applyPath(st, 'OutputPath', state.OutputPath, this.applyPath(st, 'InputPath', state.InputPath, input, ctx), ctx);
          return this.exitState(st, scope, { output: out, next: undefined });
        }
        case 'Choice':
          return this.exitState(st, scope, this.runChoice(st, input));
        case 'Wait':
          return this.exitState(st, scope, await this.runWait(st, input, scope));
        case 'Fail':
          throw this.failStateError(st, input);
        case 'Task':
        case 'Parallel':
        case 'Map':
          return await this.runWithRetry(st, input, scope);
        default:
          throw this.runtimeError(st, `unsupported state type ${type}`);
      }
    } catch (e) {
      if (e instanceof Interrupt) {
        if (e.kind === 'aborted' && !this.closed && (type === 'Task' || type === 'Wait' || type === 'Map' || type === 'Parallel')) {
          // [recorded] test_service_lambda_map_timeout: TaskStateAborted chains from the failure
          this.emit(scope.flow, `${type}StateAborted`, undefined, { advance: false, prev: e.prevId });
        }
        throw e;
      }
      if (e instanceof StatesError && e.prevId === undefined) e.prevId = scope.flow.last;
      throw e;
    }
  }

  exitState(st, scope, { output, next }) {
    const text = this.checkSize(output, 'output', st);
    this.emit(scope.flow, `${st.type}StateExited`, { name: st.name, output: text, outputDetails: { truncated: false } });
    return { output, next: st.state.End === true ? undefined : next };
  }

  // ---------------------------------------------------------------- Pass

  runPass(st, input) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime);
    let effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    if (s.Parameters !== undefined) effective = this.template(st, s.Parameters, effective, ctx);
    const result = s.Result !== undefined ? clone(s.Result) : effective;
    const placed = this.placeResultPath(st, input, result, s.ResultPath);
    return { output: this.applyPath(st, 'OutputPath', s.OutputPath, placed, ctx), next: s.Next };
  }

  placeResultPath(st, rawInput, result, resultPath) {
    if (resultPath === null) return rawInput;
    if (resultPath === undefined) return result;
    return placeResult(rawInput, resultPath, result);
  }

  // ---------------------------------------------------------------- Fail

  failStateError(st, input) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime);
    const resolve = (field) => {
      const v = s[field];
      if (v.startsWith('$')) {
        const r = lookup(v, input, ctx);
        if (!r.found) throw this.runtimeError(st, `The JSONPath '${v}' specified for the field '${field}' could not be found in the input '${jsonText(input)}'`);
        return r.value;
      }
      return evalIntrinsic(parseIntrinsic(v), input, ctx, field);
    };
    const error = s.ErrorPath !== undefined ? resolve('ErrorPath') : s.Error;
    const cause = s.CausePath !== undefined ? resolve('CausePath') : s.Cause;
    if (error !== undefined && typeof error !== 'string') throw this.runtimeError(st, `The ErrorPath value ${jsonText(error)} is not a string`);
    if (cause !== undefined && typeof cause !== 'string') throw this.runtimeError(st, `The CausePath value ${jsonText(cause)} is not a string`);
    const err = new StatesError(error, cause, { terminal: false });
    return err;
  }

  // ---------------------------------------------------------------- Choice

  runChoice(st, input) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime);
    const effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    let next;
    for (const rule of s.Choices) {
      if (this.evalRule(st, rule, effective, ctx)) {
        next = rule.Next;
        break;
      }
    }
    if (next === undefined) next = s.Default;
    if (next === undefined) {
      // [doc] States.NoChoiceMatched. floci-io/floci#3167 claims AWS answers
      // States.Runtime instead; no recording of that was found. [doc kept]
      throw new StatesError('States.NoChoiceMatched', `No Choice Rule matched and no Default was specified in the Choice state '${st.name}'`, { terminal: false });
    }
    const output = this.applyPath(st, 'OutputPath', s.OutputPath, effective, ctx);
    return { output, next };
  }

  evalRule(st, rule, data, ctx) {
    if (rule.And) return rule.And.every((r) => this.evalRule(st, r, data, ctx));
    if (rule.Or) return rule.Or.some((r) => this.evalRule(st, r, data, ctx));
    if (rule.Not) return !this.evalRule(st, rule.Not, data, ctx);
    const op = Object.keys(rule).find((k) => ALL_CHOICE_OPERATORS.has(k));
    const r = lookup(rule.Variable, data, ctx);
    if (op === 'IsPresent') return r.found === rule.IsPresent;
    // [guess, from AWS error texts seen in the wild] a Variable that matches
    // nothing fails the state with States.Runtime.
    if (!r.found) throw this.runtimeError(st, `Invalid path '${rule.Variable}': The choice state's condition path references an invalid value.`);
    const v = r.value;
    switch (op) {
      case 'IsNull':
        return (v === null) === rule.IsNull;
      case 'IsNumeric':
        return (typeof v === 'number') === rule.IsNumeric;
      case 'IsString':
        return (typeof v === 'string') === rule.IsString;
      case 'IsBoolean':
        return (typeof v === 'boolean') === rule.IsBoolean;
      case 'IsTimestamp':
        return (parseTimestamp(v) !== null) === rule.IsTimestamp;
      case 'StringMatches':
        return typeof v === 'string' && stringMatches(v, rule.StringMatches);
      default:
        break;
    }
    let expected = rule[op];
    let base = op;
    if (op.endsWith('Path')) {
      base = op.slice(0, -4);
      const e = lookup(expected, data, ctx);
      if (!e.found) throw this.runtimeError(st, `Invalid path '${expected}': The choice state's condition path references an invalid value.`);
      expected = e.value;
    }
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    let c;
    if (base.startsWith('String')) {
      if (typeof v !== 'string' || typeof expected !== 'string') return false;
      c = cmp(v, expected);
    } else if (base.startsWith('Numeric')) {
      if (typeof v !== 'number' || typeof expected !== 'number') return false;
      c = cmp(v, expected);
    } else if (base === 'BooleanEquals') {
      return typeof v === 'boolean' && typeof expected === 'boolean' && v === expected;
    } else if (base.startsWith('Timestamp')) {
      const a = parseTimestamp(v);
      const b = parseTimestamp(expected);
      if (a === null || b === null) return false;
      c = cmp(a, b);
    } else return false;
    const suffix = base.replace(/^(String|Numeric|Timestamp)/, '');
    return { Equals: c === 0, LessThan: c < 0, GreaterThan: c > 0, LessThanEquals: c <= 0, GreaterThanEquals: c >= 0 }[suffix];
  }

  // ---------------------------------------------------------------- Wait

  async runWait(st, input, scope) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime);
    const effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    let ms;
    if (s.Seconds !== undefined) ms = s.Seconds * 1000;
    else if (s.SecondsPath !== undefined) ms = this.integerAt(st, 'SecondsPath', s.SecondsPath, effective) * 1000;
    else {
      let ts = s.Timestamp;
      if (s.TimestampPath !== undefined) {
        const r = lookup(s.TimestampPath, effective, ctx);
        if (!r.found) throw this.runtimeError(st, `Invalid path '${s.TimestampPath}' : ${r.message}`);
        ts = r.value;
      }
      const at = parseTimestamp(ts);
      if (at === null) throw this.runtimeError(st, `The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: ${s.TimestampPath}`);
      ms = Math.max(0, at - Date.now());
    }
    await this.sleep(ms * this.waitScale, scope.signal);
    return { output: this.applyPath(st, 'OutputPath', s.OutputPath, effective, ctx), next: s.Next };
  }

  // ---------------------------------------------------------------- Retry / Catch

  async runWithRetry(st, input, scope) {
    const s = st.state;
    const retriers = s.Retry ?? [];
    const counts = retriers.map(() => 0);
    let retryCount = 0;
    for (;;) {
      try {
        const result = await this.runBody(st, input, scope, retryCount);
        return this.exitState(st, scope, result);
      } catch (e) {
        if (!(e instanceof StatesError) || e.terminal) throw e;
        const k = retriers.findIndex((r) => retrierMatches(r.ErrorEquals, e));
        if (k >= 0 && counts[k] < (retriers[k].MaxAttempts ?? 3)) {
          const r = retriers[k];
          counts[k] += 1;
          let delay = (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** (counts[k] - 1);
          if (r.MaxDelaySeconds !== undefined) delay = Math.min(delay, r.MaxDelaySeconds);
          if (r.JitterStrategy === 'FULL') delay = Math.random() * delay;
          await this.sleep(this.retryDelayMs ?? delay * 1000, scope.signal);
          retryCount += 1;
          // [doc] "Retries are treated as state transitions."
          this.ex.counts.stateTransitions += 1;
          continue;
        }
        const c = (s.Catch ?? []).find((x) => retrierMatches(x.ErrorEquals, e));
        if (!c) throw e;
        const output = this.placeResultPath(st, input, errorOutput(e), c.ResultPath === undefined ? '$' : c.ResultPath);
        // [recorded] a caught error still closes the state with its Exited event
        const text = this.checkSize(output, 'output', st);
        this.emit(scope.flow, `${st.type}StateExited`, { name: st.name, output: text, outputDetails: { truncated: false } });
        return { output, next: c.Next };
      }
    }
  }

  runBody(st, input, scope, retryCount) {
    if (st.type === 'Task') return this.runTask(st, input, scope, retryCount);
    if (st.type === 'Parallel') return this.runParallel(st, input, scope);
    return this.runMap(st, input, scope);
  }

  /** ResultSelector, ResultPath, OutputPath over a state's result. */
  finishResult(st, input, result, ctx) {
    const s = st.state;
    let effective = result;
    if (s.ResultSelector !== undefined) effective = this.template(st, s.ResultSelector, result, ctx);
    const placed = this.placeResultPath(st, input, effective, s.ResultPath);
    return { output: this.applyPath(st, 'OutputPath', s.OutputPath, placed, ctx), next: s.Next };
  }

  // ---------------------------------------------------------------- Task

  async runTask(st, input, scope, retryCount) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime, { RetryCount: retryCount });
    let effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    if (s.Parameters !== undefined) effective = this.template(st, s.Parameters, effective, ctx);
    const paramsText = this.checkSize(effective, 'parameters', st);
    let timeoutSeconds = s.TimeoutSeconds;
    if (s.TimeoutSecondsPath !== undefined) timeoutSeconds = this.integerAt(st, 'TimeoutSecondsPath', s.TimeoutSecondsPath, input, { min: 1 });
    // HeartbeatSeconds is accepted and shown in TaskScheduled, but not
    // enforced: handlers have no way to send heartbeats.
    let heartbeatSeconds = s.HeartbeatSeconds;
    if (s.HeartbeatSecondsPath !== undefined) heartbeatSeconds = this.integerAt(st, 'HeartbeatSecondsPath', s.HeartbeatSecondsPath, input, { min: 1 });
    const resource = s.Resource;
    const info = resourceInfo(resource);
    const flow = scope.flow;
    if (info.lambda) {
      const d = { resource, input: paramsText, inputDetails: { truncated: false } };
      if (timeoutSeconds !== undefined) d.timeoutInSeconds = timeoutSeconds;
      this.emit(flow, 'LambdaFunctionScheduled', d);
      this.emit(flow, 'LambdaFunctionStarted');
    } else {
      const d = { resourceType: info.resourceType, resource: info.resource, region: this.region, parameters: paramsText };
      if (timeoutSeconds !== undefined) d.timeoutInSeconds = timeoutSeconds;
      if (heartbeatSeconds !== undefined) d.heartbeatInSeconds = heartbeatSeconds;
      this.emit(flow, 'TaskScheduled', d);
      this.emit(flow, 'TaskStarted', { resourceType: info.resourceType, resource: info.resource });
    }
    this.ex.counts.taskInvocations += 1;
    if (info.lambda || resource.startsWith('arn:aws:states:::lambda:invoke')) this.ex.counts.lambdaInvocations += 1;
    const taskAbort = controller();
    const signal = AbortSignal.any([scope.signal, taskAbort.signal]);
    setMaxListeners(0, signal);
    const TIMEOUT = Symbol('timeout');
    let timer;
    const timeout =
      timeoutSeconds === undefined
        ? new Promise(() => {})
        : new Promise((resolve) => {
            timer = setTimeout(() => {
              this.timers.delete(timer);
              taskAbort.abort(new Interrupt('timeout'));
              resolve(TIMEOUT);
            }, timeoutSeconds * 1000);
            this.timers.add(timer);
          });
    const failed = (error, cause) => {
      if (info.lambda) this.emit(flow, 'LambdaFunctionFailed', cause === undefined ? { error } : { error, cause });
      else this.emit(flow, 'TaskFailed', { resourceType: info.resourceType, resource: info.resource, error, ...(cause === undefined ? {} : { cause }) });
      return new StatesError(error, cause, { terminal: false });
    };
    let result;
    try {
      if (typeof this.handlers.task !== 'function') throw new TaskFailure('States.Runtime', 'no task handler');
      const call = Promise.resolve().then(() =>
        this.handlers.task({ stateName: st.name, resource, input: JSON.parse(paramsText), timeoutSeconds, heartbeatSeconds, signal, execution: this.ex }),
      );
      result = await this.race(Promise.race([call, timeout]), scope.signal);
    } catch (e) {
      if (e instanceof Interrupt) throw e;
      if (e instanceof TaskFailure) throw failed(e.error, e.cause);
      // A handler that throws anything but TaskFailure is a harness bug: make it visible, uncatchable.
      const err = new StatesError('Local.HandlerError', `the task handler for state '${st.name}' threw ${e?.stack ?? e}`, { terminal: true });
      throw err;
    } finally {
      if (timer !== undefined) {
        clearTimeout(timer);
        this.timers.delete(timer);
      }
    }
    if (result === TIMEOUT) {
      if (info.lambda) this.emit(flow, 'LambdaFunctionTimedOut', { error: 'States.Timeout' });
      else this.emit(flow, 'TaskTimedOut', { resourceType: info.resourceType, resource: info.resource, error: 'States.Timeout' });
      throw new StatesError('States.Timeout', undefined, { terminal: false });
    }
    if (result === undefined) result = null;
    const resultText = jsonText(result);
    const size = byteLength(resultText);
    if (size > this.limit) {
      // [recorded] test_states_errors: a task failure Retry/Catch see, named after the resource
      const err = this.dataLimit('result', st, size, false, info.lambda ? resource : info.resourceType);
      throw failed(err.error, err.cause);
    }
    if (info.lambda) this.emit(flow, 'LambdaFunctionSucceeded', { output: resultText, outputDetails: { truncated: false } });
    else this.emit(flow, 'TaskSucceeded', { resourceType: info.resourceType, resource: info.resource, output: resultText, outputDetails: { truncated: false } });
    return this.finishResult(st, input, JSON.parse(resultText), ctx);
  }

  // ---------------------------------------------------------------- Parallel

  async runParallel(st, input, scope) {
    const s = st.state;
    const ctx = this.contextFor(st.name, st.enteredTime);
    let effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    if (s.Parameters !== undefined) effective = this.template(st, s.Parameters, effective, ctx);
    this.checkSize(effective, 'parameters', st);
    const startedId = this.emit(scope.flow, 'ParallelStateStarted');
    const group = controller();
    const onParent = () => group.abort(scope.signal.reason);
    scope.signal.addEventListener('abort', onParent, { once: true });
    let failure = null;
    let lastId = startedId;
    try {
      const results = await Promise.all(
        s.Branches.map(async (branch) => {
          const flow = { last: startedId };
          try {
            const out = await this.runMachine(branch, clone(effective), { flow, signal: group.signal });
            lastId = Math.max(lastId, flow.last);
            return out;
          } catch (e) {
            if (e instanceof StatesError && !failure) {
              failure = e;
              group.abort(new Interrupt('aborted', e.prevId ?? flow.last));
            }
            throw e;
          }
        }).map((p) => p.catch((e) => ({ __failed: e }))),
      );
      if (this.closed) throw new Interrupt('closed');
      if (scope.signal.aborted) throw scope.signal.reason;
      if (failure) {
        const at = failure.prevId ?? lastId;
        const id = this.emit(scope.flow, 'ParallelStateFailed', undefined, { prev: at });
        failure.prevId = id;
        throw failure;
      }
      const other = results.find((r) => r && r.__failed);
      if (other) throw other.__failed;
      this.emit(scope.flow, 'ParallelStateSucceeded', undefined, { advance: false, prev: lastId });
      scope.flow.last = lastId;
      return this.finishResult(st, input, results, ctx);
    } finally {
      scope.signal.removeEventListener('abort', onParent);
    }
  }

  // ---------------------------------------------------------------- Map

  mapItems(st, effective) {
    const s = st.state;
    const itemsPath = s.ItemsPath ?? '$';
    const r = lookup(itemsPath, effective, this.contextBase);
    if (!r.found) throw this.runtimeError(st, `Invalid path '${itemsPath}' : ${r.message}`);
    if (!Array.isArray(r.value)) {
      // [guess] wording modelled on the recorded *Path messages
      throw this.runtimeError(st, `The ItemsPath field refers to value ${JSON.stringify(jsonText(r.value))} which is not a valid Array: ${itemsPath}`);
    }
    return r.value;
  }

  maxConcurrency(st, effective) {
    const s = st.state;
    if (s.MaxConcurrencyPath !== undefined) return this.integerAt(st, 'MaxConcurrencyPath', s.MaxConcurrencyPath, effective);
    return s.MaxConcurrency ?? 0;
  }

  selectItem(st, selector, effective, item, index) {
    if (selector === undefined) return item;
    const ctx = { ...this.contextFor(st.name, st.enteredTime), Map: { Item: { Index: index, Value: item } } };
    return this.template(st, selector, effective, ctx);
  }

  async runMap(st, input, scope) {
    const s = st.state;
    const processor = s.ItemProcessor ?? s.Iterator;
    if (processor.ProcessorConfig?.Mode === 'DISTRIBUTED') return this.runDistributedMap(st, input, scope);
    const ctx = this.contextFor(st.name, st.enteredTime);
    const effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    const items = this.mapItems(st, effective);
    const maxConc = this.maxConcurrency(st, effective);
    const startedId = this.emit(scope.flow, 'MapStateStarted', { length: items.length });
    // [doc] "In this mode, the Map state supports up to 40 concurrent
    // iterations": 0 (no limit) and anything above run 40 at a time.
    const width = Math.min(maxConc === 0 ? 40 : maxConc, 40);
    const selector = s.ItemSelector ?? s.Parameters;
    const group = controller();
    const onParent = () => group.abort(scope.signal.reason);
    scope.signal.addEventListener('abort', onParent, { once: true });
    const mapFlow = { last: startedId };
    let lastSucceededId = startedId;
    const results = new Array(items.length);
    let failure = null;
    let terminalFailure = null;
    let nextIndex = 0;
    const runIteration = async (index) => {
      const flow = { last: mapFlow.last };
      let iterInput;
      try {
        iterInput = this.selectItem(st, selector, effective, items[index], index);
        this.checkSize(iterInput, 'item', st);
      } catch (e) {
        if (e instanceof StatesError && !failure) {
          failure = e;
          e.prevId = e.prevId ?? mapFlow.last;
          group.abort(new Interrupt('aborted', e.prevId));
        }
        return;
      }
      this.emit(flow, 'MapIterationStarted', { index, name: st.name });
      try {
        const out = await this.runMachine(processor, iterInput, { flow, signal: group.signal });
        results[index] = out;
        const id = this.emit(flow, 'MapIterationSucceeded', { index, name: st.name }, { advance: false });
        mapFlow.last = flow.last;
        lastSucceededId = Math.max(lastSucceededId, id);
      } catch (e) {
        if (e instanceof StatesError) {
          if (!failure) {
            failure = e;
            const at = e.prevId ?? flow.last;
            if (!this.closed) this.emit(flow, 'MapIterationFailed', { index, name: st.name }, { advance: false, prev: at });
            group.abort(new Interrupt('aborted', at));
          } else if (!this.closed) {
            // failed while the Map was already failing: AWS shows it aborted ([recorded] test_service_lambda_map_timeout)
            this.emit(flow, 'MapIterationAborted', { index, name: st.name }, { advance: false, prev: failure.prevId });
          }
          return;
        }
        if (e instanceof Interrupt && e.kind === 'aborted' && !this.closed) {
          this.emit(flow, 'MapIterationAborted', { index, name: st.name }, { advance: false, prev: e.prevId });
          return;
        }
        throw e;
      }
    };
    try {
      await new Promise((resolve, reject) => {
        let running = 0;
        let settled = false;
        const pump = () => {
          if (settled) return;
          while (running < width && nextIndex < items.length && !failure && !group.signal.aborted) {
            const index = nextIndex;
            nextIndex += 1;
            running += 1;
            runIteration(index).then(
              () => {
                running -= 1;
                pump();
              },
              (e) => {
                running -= 1;
                if (e instanceof StatesError && e.terminal && !terminalFailure) terminalFailure = e;
                else if (e instanceof StatesError && !failure) failure = e;
                if (!(e instanceof StatesError) && !(e instanceof Interrupt)) {
                  settled = true;
                  reject(e);
                  return;
                }
                if (!failure && !group.signal.aborted) group.abort(new Interrupt('aborted', mapFlow.last));
                if (e instanceof Interrupt && e.kind === 'closed') {
                  settled = true;
                  reject(e);
                  return;
                }
                pump();
              },
            );
          }
          if (running === 0) {
            settled = true;
            resolve();
          }
        };
        pump();
      });
      if (this.closed) throw new Interrupt('closed');
      if (terminalFailure) throw terminalFailure;
      if (scope.signal.aborted) throw scope.signal.reason;
      if (failure) {
        const id = this.emit(scope.flow, 'MapStateFailed', undefined, { prev: failure.prevId });
        failure.prevId = id;
        throw failure;
      }
      this.emit(scope.flow, 'MapStateSucceeded', undefined, { advance: false, prev: lastSucceededId });
      scope.flow.last = lastSucceededId;
      return this.finishResult(st, input, results, ctx);
    } finally {
      scope.signal.removeEventListener('abort', onParent);
    }
  }

  // ---------------------------------------------------------------- Distributed Map

  async runDistributedMap(st, input, scope) {
    const s = st.state;
    const processor = s.ItemProcessor ?? s.Iterator;
    const ctx = this.contextFor(st.name, st.enteredTime);
    const effective = this.applyPath(st, 'InputPath', s.InputPath, input, ctx);
    let items = s.ItemReader ? null : this.mapItems(st, effective);
    this.emit(scope.flow, 'MapStateStarted', { length: items ? items.length : 0 });
    // Runtime settings, checked before the Map Run starts ([recorded] test_map_state_tolerated_failure_*_path).
    const maxConc = this.maxConcurrency(st, effective);
    let tolPct = s.ToleratedFailurePercentage;
    if (s.ToleratedFailurePercentagePath !== undefined) tolPct = this.integerAt(st, 'ToleratedFailurePercentagePath', s.ToleratedFailurePercentagePath, effective, { float: true, min: -Infinity });
    if (tolPct !== undefined && (tolPct < 0 || tolPct > 100)) throw this.runtimeError(st, 'ToleratedFailurePercentage must be between 0 and 100.');
    let tolCount = s.ToleratedFailureCount;
    if (s.ToleratedFailureCountPath !== undefined) tolCount = this.integerAt(st, 'ToleratedFailureCountPath', s.ToleratedFailureCountPath, effective);
    const label = s.Label ?? (st.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40) || 'Map'); // [guess] AWS generates a label when none is given
    const runId = randomUUID();
    const mapRunArn = `arn:aws:states:${this.region}:${this.account}:mapRun:${this.stateMachineName}/${label}:${runId}`;
    const childStateMachineArn = `${this.stateMachineArn}/${label}`;
    const childArn = (name) => `arn:aws:states:${this.region}:${this.account}:execution:${this.stateMachineName}/${label}:${name}`;
    const zero = () => ({ pending: 0, running: 0, succeeded: 0, failed: 0, timedOut: 0, aborted: 0, total: 0, resultsWritten: 0 });
    const run = {
      mapRunArn,
      executionArn: this.executionArn,
      stateName: st.name,
      status: 'RUNNING',
      itemCounts: zero(),
      executionCounts: zero(),
      startDate: new Date(),
      stopDate: undefined,
      toleratedFailurePercentage: tolPct ?? 0,
      toleratedFailureCount: tolCount ?? 0,
      maxConcurrency: maxConc,
    };
    this.ex.mapRuns.push(run);
    this.emit(scope.flow, 'MapRunStarted', { mapRunArn });
    const runFailed = (error, cause, terminal = false) => {
      run.status = 'FAILED';
      run.stopDate = new Date();
      this.emit(scope.flow, 'MapRunFailed', cause === undefined ? { error } : { error, cause });
      this.emit(scope.flow, 'MapStateFailed');
      return new StatesError(error, cause, { terminal });
    };
    try {
      if (s.ItemReader) {
        const reader = s.ItemReader;
        const parameters = reader.Parameters === undefined ? {} : this.template(st, reader.Parameters, effective, ctx);
        const readerConfig = clone(reader.ReaderConfig ?? {});
        if (readerConfig.MaxItemsPath !== undefined) {
          readerConfig.MaxItems = this.integerAt(st, 'MaxItemsPath', readerConfig.MaxItemsPath, effective);
          delete readerConfig.MaxItemsPath;
        }
        if (readerConfig.MaxItems !== undefined && readerConfig.MaxItems <= 0) throw runFailed('States.ItemReaderFailed', 'field MaxItems must be positive');
        try {
          if (typeof this.handlers.itemReader !== 'function') throw new TaskFailure('States.ItemReaderFailed', 'no itemReader handler');
          items = await this.race(
            this.handlers.itemReader({ stateName: st.name, resource: reader.Resource, parameters, readerConfig, execution: this.ex }),
            scope.signal,
          );
        } catch (e) {
          if (e instanceof Interrupt) throw e;
          throw runFailed('States.ItemReaderFailed', e instanceof TaskFailure ? e.cause ?? e.error : String(e?.message ?? e));
        }
        // [recorded] test_map_item_reader_json_no_json_list_object
        if (!Array.isArray(items)) throw runFailed('States.ItemReaderFailed', 'Attempting to map over non-iterable node.');
        if (readerConfig.MaxItems !== undefined) items = items.slice(0, readerConfig.MaxItems);
      }
      const selector = s.ItemSelector ?? s.Parameters;
      const selected = items.map((item, index) => {
        const v = this.selectItem(st, selector, effective, item, index);
        this.checkSize(v, 'item', st);
        return v;
      });
      // ItemBatcher: {"Items": [...]} (+ "BatchInput") per child. [doc] input-output-itembatcher
      let batches;
      if (s.ItemBatcher) {
        const b = s.ItemBatcher;
        const maxItems = b.MaxItemsPerBatchPath !== undefined ? this.integerAt(st, 'MaxItemsPerBatchPath', b.MaxItemsPerBatchPath, effective, { min: 1 }) : b.MaxItemsPerBatch;
        const maxBytes = b.MaxInputBytesPerBatchPath !== undefined ? this.integerAt(st, 'MaxInputBytesPerBatchPath', b.MaxInputBytesPerBatchPath, effective, { min: 1 }) : b.MaxInputBytesPerBatch ?? this.limit;
        const batchInput = b.BatchInput === undefined ? undefined : this.template(st, b.BatchInput, effective, ctx);
        batches = [];
        let cur = [];
        const wrap = (list) => (batchInput === undefined ? { Items: list } : { BatchInput: batchInput, Items: list });
        let curIdx = [];
        for (let k = 0; k < selected.length; k += 1) {
          const candidate = [...cur, selected[k]];
          const tooMany = maxItems !== undefined && candidate.length > maxItems;
          const tooBig = byteLength(jsonText(wrap(candidate))) > Math.min(maxBytes, this.limit);
          if (cur.length > 0 && (tooMany || tooBig)) {
            batches.push({ input: wrap(cur), indices: curIdx });
            cur = [selected[k]];
            curIdx = [k];
          } else {
            cur = candidate;
            curIdx = [...curIdx, k];
          }
        }
        if (cur.length > 0) batches.push({ input: wrap(cur), indices: curIdx });
      } else {
        batches = selected.map((v, k) => ({ input: v, indices: [k] }));
      }
      for (const batch of batches) this.checkSize(batch.input, 'childInput', st);
      run.itemCounts.total = selected.length;
      run.itemCounts.pending = selected.length;
      run.executionCounts.total = batches.length;
      run.executionCounts.pending = batches.length;
      const outcomes = new Array(batches.length);
      const thresholdSet = tolPct !== undefined || tolCount !== undefined;
      let failedItems = 0;
      let exceeded = false;
      const group = controller();
      const onParent = () => group.abort(scope.signal.reason);
      scope.signal.addEventListener('abort', onParent, { once: true });
      const exceeds = () => {
        // [doc] "the total number of failed or timed out items divided by the total number of items"
        if (!thresholdSet) return failedItems > 0;
        if (tolCount !== undefined && failedItems > tolCount) return true;
        if (tolPct !== undefined && (failedItems / Math.max(1, selected.length)) * 100 > tolPct) return true;
        return false;
      };
      const width = maxConc === 0 ? 10000 : maxConc; // [doc] "runs 10,000 parallel child workflow executions"
      let handlerFailure = null;
      const definitionForChild = { StartAt: processor.StartAt, States: processor.States };
      if (processor.Comment !== undefined) definitionForChild.Comment = processor.Comment;
      const runChild = async (index) => {
        const batch = batches[index];
        const name = randomUUID();
        const n = batch.indices.length;
        run.itemCounts.pending -= n;
        run.itemCounts.running += n;
        run.executionCounts.pending -= 1;
        run.executionCounts.running += 1;
        const startDate = new Date();
        let outcome;
        try {
          if (typeof this.handlers.childExecution !== 'function') throw new TaskFailure('States.Runtime', 'no childExecution handler');
          outcome = await this.race(
            this.handlers.childExecution({
              stateName: st.name,
              mapRunArn,
              index,
              name,
              definition: clone(definitionForChild),
              input: clone(batch.input),
              executionType: processor.ProcessorConfig.ExecutionType,
              execution: this.ex,
              stateMachineArn: childStateMachineArn,
              childExecutionArn: childArn(name),
              signal: group.signal,
            }),
            group.signal,
          );
        } catch (e) {
          run.itemCounts.running -= n;
          run.executionCounts.running -= 1;
          if (e instanceof Interrupt) {
            run.itemCounts.aborted += n;
            run.executionCounts.aborted += 1;
            outcomes[index] = { status: 'ABORTED', name, startDate, stopDate: new Date() };
            return;
          }
          // The child could not be started at all: the Map Run fails with that error.
          if (!handlerFailure) handlerFailure = e instanceof TaskFailure ? new StatesError(e.error, e.cause) : new StatesError('States.Runtime', String(e?.stack ?? e));
          group.abort(new Interrupt('aborted'));
          return;
        }
        run.itemCounts.running -= n;
        run.executionCounts.running -= 1;
        const status = outcome?.status ?? 'FAILED';
        const key = { SUCCEEDED: 'succeeded', FAILED: 'failed', TIMED_OUT: 'timedOut', ABORTED: 'aborted' }[status] ?? 'failed';
        run.itemCounts[key] += n;
        run.executionCounts[key] += 1;
        outcomes[index] = { ...outcome, status, name, startDate: outcome?.startDate ?? startDate, stopDate: outcome?.stopDate ?? new Date() };
        if (status === 'FAILED' || status === 'TIMED_OUT') {
          failedItems += n;
          if (!exceeded && exceeds()) {
            exceeded = true;
            group.abort(new Interrupt('aborted'));
          }
        }
      };
      try {
        await new Promise((resolve, reject) => {
          let next = 0;
          let running = 0;
          const pump = () => {
            while (running < width && next < batches.length && !group.signal.aborted) {
              const index = next;
              next += 1;
              running += 1;
              runChild(index).then(
                () => {
                  running -= 1;
                  pump();
                },
                (e) => reject(e),
              );
            }
            if (running === 0) resolve();
          };
          pump();
        });
      } finally {
        scope.signal.removeEventListener('abort', onParent);
      }
      if (this.closed) throw new Interrupt('closed');
      if (scope.signal.aborted) throw scope.signal.reason;
      if (handlerFailure) throw runFailed(handlerFailure.error, handlerFailure.cause, handlerFailure.terminal);
      // [recorded] test_state_configuration: "The specified tolerated failure threshold was exceeded"
      if (exceeded) throw runFailed('States.ExceedToleratedFailureThreshold', 'The specified tolerated failure threshold was exceeded');
      const records = batches.map((batch, index) => {
        const o = outcomes[index] ?? { status: 'PENDING', name: randomUUID() };
        const rec = {
          ExecutionArn: o.executionArn ?? childArn(o.name),
          Input: jsonText(batch.input),
          InputDetails: { Included: true },
          Name: o.name,
          Output: o.status === 'SUCCEEDED' ? jsonText(o.output) : undefined,
          OutputDetails: { Included: true },
          RedriveCount: 0,
          StartDate: o.startDate,
          StateMachineArn: childStateMachineArn,
          Status: o.status,
          StopDate: o.stopDate,
        };
        if (o.status !== 'SUCCEEDED') {
          delete rec.Output;
          if (o.error !== undefined) rec.Error = o.error;
          if (o.cause !== undefined) rec.Cause = o.cause;
        }
        return rec;
      });
      let result;
      if (s.ResultWriter) {
        const parameters = s.ResultWriter.Parameters === undefined ? {} : this.template(st, s.ResultWriter.Parameters, effective, ctx);
        let where;
        try {
          if (typeof this.handlers.resultWriter !== 'function') throw new TaskFailure('States.ResultWriterFailed', 'no resultWriter handler');
          where = await this.race(
            this.handlers.resultWriter({ stateName: st.name, resource: s.ResultWriter.Resource, parameters, mapRunArn, results: records, execution: this.ex }),
            scope.signal,
          );
        } catch (e) {
          if (e instanceof Interrupt) throw e;
          throw runFailed('States.ResultWriterFailed', e instanceof TaskFailure ? e.cause ?? e.error : String(e?.message ?? e));
        }
        run.itemCounts.resultsWritten = selected.length;
        run.executionCounts.resultsWritten = batches.length;
        result = { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket: where?.Bucket, Key: where?.Key } };
      } else {
        // Without ResultWriter: the children's outputs in item order. A
        // tolerated failed child contributes its record (Transformation NONE
        // for failures, [doc] input-output-resultwriter). [guess for the no-ResultWriter case]
        result = batches.map((batch, index) => {
          const o = outcomes[index];
          if (o.status === 'SUCCEEDED') return o.output === undefined ? null : clone(o.output);
          return clone({ ...records[index], StartDate: records[index].StartDate?.toISOString?.(), StopDate: records[index].StopDate?.toISOString?.() });
        });
      }
      run.status = 'SUCCEEDED';
      run.stopDate = new Date();
      this.emit(scope.flow, 'MapRunSucceeded');
      this.emit(scope.flow, 'MapStateSucceeded', undefined, { advance: false });
      return this.finishResult(st, input, result, ctx);
    } catch (e) {
      if (run.status === 'RUNNING') {
        run.status = e instanceof Interrupt ? 'ABORTED' : 'FAILED';
        run.stopDate = new Date();
      }
      throw e;
    }
  }
}

// ===========================================================================
// startExecution
// ===========================================================================

class Execution {
  #runner;

  constructor(args) {
    this.arn = undefined;
    this.name = undefined;
    this.stateMachineArn = undefined;
    this.input = args.input === undefined ? {} : args.input;
    this.status = 'RUNNING';
    this.output = undefined;
    this.error = undefined;
    this.cause = undefined;
    this.startDate = undefined;
    this.stopDate = undefined;
    this.events = [];
    this.counts = { stateTransitions: 0, lambdaInvocations: 0, taskInvocations: 0 };
    this.mapRuns = [];
    let resolveDone;
    this.done = new Promise((resolve) => {
      resolveDone = resolve;
    });
    const runner = new Runner(this, args);
    runner.resolveDone = resolveDone;
    this.#runner = runner;
    this.arn = runner.executionArn;
    this.name = runner.executionName;
    this.stateMachineArn = runner.stateMachineArn;
    this.startDate = new Date(runner.startTime);
  }

  /** StopExecution: ABORTED; running handlers' signals fire; no timer is left behind. */
  stop({ error, cause } = {}) {
    const runner = this.#runner;
    if (runner.closed) return false;
    runner.finish('ABORTED', { error: error === undefined ? undefined : String(error), cause: cause === undefined ? undefined : String(cause) });
    return true;
  }

  /** Called with each new event; returns the unsubscribe function. */
  on(listener) {
    const set = this.#runner.listeners;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** @internal starts the run loop */
  _start() {
    const runner = this.#runner;
    runner.run().catch((e) => {
      runner.finish('FAILED', { error: 'States.Runtime', cause: `asl.mjs internal error: ${e?.stack ?? e}` });
    });
  }
}

/**
 * Starts an execution of `definition` (call validateDefinition first: an
 * invalid definition is not checked again here). Returns at once with
 * ExecutionStarted already in `events`; the run continues asynchronously.
 */
export function startExecution({ definition, input, context, handlers, options } = {}) {
  const execution = new Execution({ definition, input, context, handlers, options });
  execution._start();
  return execution;
}
