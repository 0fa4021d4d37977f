// AWS's size limits, as AWS answers them, and the AWS-shaped error answers the
// rest of localaws uses (iam.mjs, gateway.mjs). Pure functions: no I/O.
//
// Sources (AWS documentation):
// - DynamoDB item size rules: "DynamoDB item sizes and formats"
//   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
// - DynamoDB 400 KB item maximum, 1 KB = 1024 bytes: "Constraints in Amazon DynamoDB" (Items)
//   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html
// - Read/write units: "DynamoDB read and write operations"
//   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
// - S3 key ≤ 1024 bytes of UTF-8: "Naming Amazon S3 objects"
//   https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
// - S3 user-defined metadata ≤ 2 KB, "the sum of the number of bytes in the UTF-8
//   encoding of each key and value": "Working with object metadata"
//   https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html
// - S3 object ≤ 5 GiB per PutObject, parts 1..10,000, part 5 MiB..5 GiB (last part
//   may be smaller): "Amazon S3 multipart upload limits"
//   https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
// - S3 error codes and messages: "Error responses" (List of error codes)
//   https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html

import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';

// ---------------------------------------------------------------------------
// AWS-shaped error answers
// ---------------------------------------------------------------------------

/** An S3-style request id: 16 upper-case hex characters. */
export function s3RequestId() {
  return randomBytes(8).toString('hex').toUpperCase();
}

/** A DynamoDB / Secrets Manager style request id (52 upper-case alphanumerics for DynamoDB). */
export function jsonRequestId(service) {
  if (service === 'dynamodb') {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    const bytes = randomBytes(52);
    let out = '';
    for (const b of bytes) out += alphabet[b % alphabet.length];
    return out;
  }
  // Secrets Manager and SNS use UUIDs.
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Escapes element text (quotes stay as they are, as in AWS's answers). */
export function xmlEscape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The namespace DynamoDB puts before an error code in `__type`. The Rust SDK
 * strips everything up to `#`, so only the code matters to it; the namespaces
 * are the ones DynamoDB is seen to send (coral.service for authentication and
 * authorization, coral.validate for ValidationException, coral.availability
 * for ThrottlingException, the service's own for the rest).
 */
function dynamoType(code) {
  if (code === 'AccessDeniedException' || code === 'UnrecognizedClientException' ||
      code === 'MissingAuthenticationTokenException' || code === 'SerializationException' ||
      code === 'UnknownOperationException' || code === 'IncompleteSignatureException') {
    return `com.amazon.coral.service#${code}`;
  }
  if (code === 'ValidationException') return 'com.amazon.coral.validate#ValidationException';
  if (code === 'ThrottlingException') return 'com.amazon.coral.availability#ThrottlingException';
  return `com.amazonaws.dynamodb.v20120810#${code}`;
}

/**
 * An error answer in the shape the service uses:
 * - s3: `application/xml` `<Error><Code/><Message/>…<RequestId/><HostId/></Error>`,
 *   no body for HEAD (S3 answers HEAD errors with status and headers only);
 * - dynamodb: `application/x-amz-json-1.0` `{"__type": "<namespace>#Code", "message"|"Message": …}`;
 * - secretsmanager: `application/x-amz-json-1.1` `{"__type": "Code", "Message": …}`;
 * - sns: `text/xml` `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
 * `extra` adds elements (S3, SNS) or members (JSON services), e.g. S3's `<MaxSizeAllowed>`.
 * `messageKey` picks "message" or "Message" for the JSON services: DynamoDB has
 * been seen to send both (AccessDeniedException with "Message", ValidationException
 * with "message"); the Rust SDK reads either.
 */
export function errorResponse(service, { status, code, message, method = 'GET', extra = {}, messageKey } = {}) {
  if (service === 's3') {
    const requestId = s3RequestId();
    const hostId = randomBytes(48).toString('base64');
    const headers = {
      'content-type': 'application/xml',
      'x-amz-request-id': requestId,
      'x-amz-id-2': hostId,
    };
    if (String(method).toUpperCase() === 'HEAD') {
      headers['content-length'] = '0';
      return { status, headers, body: Buffer.alloc(0) };
    }
    let xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>`;
    for (const [k, v] of Object.entries(extra)) xml += `<${k}>${xmlEscape(v)}</${k}>`;
    xml += `<RequestId>${requestId}</RequestId><HostId>${xmlEscape(hostId)}</HostId></Error>`;
    const body = Buffer.from(xml, 'utf8');
    headers['content-length'] = String(body.length);
    return { status, headers, body };
  }
  if (service === 'sns') {
    const requestId = jsonRequestId('sns');
    const type = status >= 500 ? 'Receiver' : 'Sender';
    let xml = `<?xml version="1.0"?>\n<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>${type}</Type><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>`;
    for (const [k, v] of Object.entries(extra)) xml += `<${k}>${xmlEscape(v)}</${k}>`;
    xml += `</Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
    const body = Buffer.from(xml, 'utf8');
    return {
      status,
      headers: { 'content-type': 'text/xml', 'x-amzn-requestid': requestId, 'content-length': String(body.length) },
      body,
    };
  }
  // JSON protocols: dynamodb (awsJson1_0), secretsmanager (awsJson1_1).
  const requestId = jsonRequestId(service);
  const key = messageKey ?? (service === 'dynamodb' ? 'message' : 'Message');
  const doc = { __type: service === 'dynamodb' ? dynamoType(code) : code, [key]: message, ...extra };
  const body = Buffer.from(JSON.stringify(doc), 'utf8');
  const headers = {
    'content-type': service === 'dynamodb' ? 'application/x-amz-json-1.0' : 'application/x-amz-json-1.1',
    'x-amzn-requestid': requestId,
    'content-length': String(body.length),
  };
  if (service === 'dynamodb' && typeof zlib.crc32 === 'function') {
    // DynamoDB sends the CRC32 of the body; some SDKs check it.
    headers['x-amz-crc32'] = String(zlib.crc32(body) >>> 0);
  }
  return { status, headers, body };
}

// ---------------------------------------------------------------------------
// DynamoDB item size
// ---------------------------------------------------------------------------

/** 400 KB, with DynamoDB's binary units (1 KB = 1024 bytes). */
export const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;

const utf8Len = (s) => Buffer.byteLength(String(s), 'utf8');

/**
 * Significant digits of a DynamoDB number string: sign, decimal point and
 * exponent dropped, leading and trailing zeros trimmed ("Leading and trailing
 * zeroes are trimmed").
 */
export function significantDigits(n) {
  let s = String(n).trim();
  const e = s.search(/[eE]/);
  if (e >= 0) s = s.slice(0, e);
  s = s.replace(/^[+-]/, '').replace('.', '');
  s = s.replace(/^0+/, '').replace(/0+$/, '');
  return s.length;
}

/**
 * Size of a number value, the documented approximation: "(1 byte per two
 * significant digits) + (1 byte)". DynamoDB's real encoding stores base-100
 * digit pairs aligned on the decimal point (so 12.3 takes 2 pairs, 1.23 takes
 * 2, 123 takes 2, 1230 takes 2) and negative numbers may carry one more byte;
 * that exact encoding is not documented and is NOT modelled here: the size can
 * be off by a byte per number, in either direction.
 */
export function numberSize(n) {
  return Math.ceil(significantDigits(n) / 2) + 1;
}

function base64Len(b64) {
  return Buffer.from(String(b64), 'base64').length;
}

/**
 * Size of an AttributeValue (wire JSON form: `{S: "…"}`, `{N: "…"}`, `{B: base64}`,
 * `{BOOL}`, `{NULL}`, `{L: […]}`, `{M: {…}}`, `{SS}`, `{NS}`, `{BS}`), without its name.
 * L/M: 3 bytes of overhead plus 1 byte per element ("An attribute of type List
 * or Map requires 3 bytes of overhead … Each List or Map element also requires
 * 1 byte of overhead"); a map element counts its name. Sets: the sum of their
 * members (no overhead is documented for sets).
 */
export function attributeValueSize(av) {
  if (av === null || typeof av !== 'object') throw new TypeError(`not an AttributeValue: ${JSON.stringify(av)}`);
  const [type] = Object.keys(av);
  const v = av[type];
  switch (type) {
    case 'S':
      return utf8Len(v);
    case 'N':
      return numberSize(v);
    case 'B':
      return base64Len(v);
    case 'BOOL':
    case 'NULL':
      return 1;
    case 'SS':
      return v.reduce((a, s) => a + utf8Len(s), 0);
    case 'NS':
      return v.reduce((a, n) => a + numberSize(n), 0);
    case 'BS':
      return v.reduce((a, b) => a + base64Len(b), 0);
    case 'L':
      return 3 + v.reduce((a, e) => a + 1 + attributeValueSize(e), 0);
    case 'M':
      return 3 + Object.entries(v).reduce((a, [k, e]) => a + 1 + utf8Len(k) + attributeValueSize(e), 0);
    default:
      throw new TypeError(`unknown AttributeValue type ${type}`);
  }
}

/** Size of an item: the sum of its attribute names (UTF-8) and values. */
export function itemSize(item) {
  let total = 0;
  for (const [name, av] of Object.entries(item ?? {})) total += utf8Len(name) + attributeValueSize(av);
  return total;
}

export const ITEM_TOO_LARGE = 'Item size has exceeded the maximum allowed size';
export const UPDATE_TOO_LARGE = 'Item size to update has exceeded the maximum allowed size';

/**
 * ValidationException for an over-size item. PutItem and BatchWriteItem say
 * "Item size has exceeded the maximum allowed size" (seen in AWS answers quoted
 * in many bug reports); UpdateItem says "Item size to update has exceeded the
 * maximum allowed size" (the wording moto uses too; not found in AWS's own
 * documentation, so unconfirmed).
 */
export function itemTooLargeError(kind = 'put') {
  return errorResponse('dynamodb', {
    status: 400,
    code: 'ValidationException',
    message: kind === 'update' ? UPDATE_TOO_LARGE : ITEM_TOO_LARGE,
  });
}

/**
 * TransactWriteItems cancels the whole transaction when an item would grow over
 * 400 KB ("An item size becomes too large (larger than 400 KB) … because of
 * changes made by the transaction", TransactionCanceledException in the API
 * reference). The reasons list has one entry per action, "None" for the others.
 * The Code "ValidationError" is documented; the per-reason Message is not, the
 * one used here (the ValidationException wording) is unconfirmed.
 */
export function transactionTooLargeError(reasonIndexes, count) {
  const reasons = [];
  for (let i = 0; i < count; i++) {
    reasons.push(reasonIndexes.includes(i) ? { Code: 'ValidationError', Message: ITEM_TOO_LARGE } : { Code: 'None' });
  }
  return errorResponse('dynamodb', {
    status: 400,
    code: 'TransactionCanceledException',
    messageKey: 'Message',
    message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
    extra: { CancellationReasons: reasons },
  });
}

/**
 * The size checks of one DynamoDB write request whose resulting items are known
 * from the request alone (PutItem, BatchWriteItem PutRequest, TransactWriteItems
 * Put). UpdateItem (and a transaction's Update) need the stored item: see
 * applyUpdate. Returns null or the error answer.
 */
export function checkDynamoWrite(operation, body) {
  if (operation === 'PutItem') {
    return itemSize(body.Item) > DYNAMODB_MAX_ITEM_BYTES ? itemTooLargeError('put') : null;
  }
  if (operation === 'BatchWriteItem') {
    // "Any individual item in a batch exceeds 400 KB" rejects the whole batch.
    for (const requests of Object.values(body.RequestItems ?? {})) {
      for (const r of requests) {
        if (r.PutRequest && itemSize(r.PutRequest.Item) > DYNAMODB_MAX_ITEM_BYTES) return itemTooLargeError('put');
      }
    }
    return null;
  }
  if (operation === 'TransactWriteItems') {
    const items = body.TransactItems ?? [];
    const over = [];
    items.forEach((t, i) => {
      if (t.Put && itemSize(t.Put.Item) > DYNAMODB_MAX_ITEM_BYTES) over.push(i);
    });
    return over.length ? transactionTooLargeError(over, items.length) : null;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Applying an UpdateItem to an item (to check the resulting size BEFORE forwarding)
// ---------------------------------------------------------------------------

/** The expression uses something applyUpdate does not model: check after forwarding instead. */
export class UpdateNotModelled extends Error {}
/** The update is invalid against the item (DynamoDB itself would refuse it). */
export class UpdateInvalid extends Error {}

function tokenize(expr) {
  const tokens = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ('=,()[].+-'.includes(c)) {
      tokens.push({ t: c });
      i++;
      continue;
    }
    if (c === '#' || c === ':') {
      let j = i + 1;
      while (j < expr.length && /[A-Za-z0-9_]/.test(expr[j])) j++;
      if (j === i + 1) throw new UpdateInvalid(`bad token at ${i} in ${expr}`);
      tokens.push({ t: c === '#' ? 'name' : 'value', v: expr.slice(i, j) });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i;
      while (j < expr.length && /[0-9]/.test(expr[j])) j++;
      tokens.push({ t: 'int', v: Number(expr.slice(i, j)) });
      i = j;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < expr.length && /[A-Za-z0-9_]/.test(expr[j])) j++;
      tokens.push({ t: 'ident', v: expr.slice(i, j) });
      i = j;
      continue;
    }
    throw new UpdateNotModelled(`unexpected character ${JSON.stringify(c)} in ${expr}`);
  }
  return tokens;
}

const CLAUSES = new Set(['SET', 'REMOVE', 'ADD', 'DELETE']);

/** Parses an UpdateExpression into { set: [[path, expr]], remove: [path], add: [[path, expr]], del: [[path, expr]] }. */
export function parseUpdateExpression(expr, names = {}) {
  const tokens = tokenize(expr);
  let p = 0;
  const peek = () => tokens[p];
  const next = () => tokens[p++];
  const expect = (t) => {
    const tok = next();
    if (!tok || tok.t !== t) throw new UpdateInvalid(`expected ${t} in ${expr}`);
    return tok;
  };
  const isClause = (tok) => tok && tok.t === 'ident' && CLAUSES.has(tok.v.toUpperCase());

  function pathElement() {
    const tok = next();
    if (!tok) throw new UpdateInvalid(`path expected in ${expr}`);
    if (tok.t === 'name') {
      if (!(tok.v in names)) throw new UpdateInvalid(`undefined attribute name ${tok.v}`);
      return names[tok.v];
    }
    if (tok.t === 'ident') return tok.v;
    throw new UpdateInvalid(`path expected in ${expr}`);
  }
  function path() {
    const parts = [pathElement()];
    for (;;) {
      const tok = peek();
      if (tok && tok.t === '.') {
        next();
        parts.push(pathElement());
      } else if (tok && tok.t === '[') {
        next();
        parts.push(expect('int').v);
        expect(']');
      } else break;
    }
    return parts;
  }
  function operand() {
    const tok = peek();
    if (!tok) throw new UpdateInvalid(`operand expected in ${expr}`);
    if (tok.t === 'value') {
      next();
      return { kind: 'value', ref: tok.v };
    }
    if (tok.t === 'ident' && tokens[p + 1] && tokens[p + 1].t === '(') {
      const fn = tok.v;
      next();
      next();
      if (fn === 'if_not_exists') {
        const a = path();
        expect(',');
        const b = operandExpr();
        expect(')');
        return { kind: 'if_not_exists', path: a, fallback: b };
      }
      if (fn === 'list_append') {
        const a = operandExpr();
        expect(',');
        const b = operandExpr();
        expect(')');
        return { kind: 'list_append', a, b };
      }
      throw new UpdateNotModelled(`function ${fn} in ${expr}`);
    }
    return { kind: 'path', path: path() };
  }
  function operandExpr() {
    const a = operand();
    const tok = peek();
    if (tok && (tok.t === '+' || tok.t === '-')) {
      next();
      const b = operand();
      return { kind: tok.t === '+' ? 'plus' : 'minus', a, b };
    }
    return a;
  }

  const out = { set: [], remove: [], add: [], del: [] };
  if (!tokens.length) throw new UpdateInvalid('empty UpdateExpression');
  while (p < tokens.length) {
    const tok = next();
    if (!isClause(tok)) throw new UpdateInvalid(`clause expected in ${expr}`);
    const clause = tok.v.toUpperCase();
    for (;;) {
      if (clause === 'SET') {
        const target = path();
        expect('=');
        out.set.push([target, operandExpr()]);
      } else if (clause === 'REMOVE') {
        out.remove.push(path());
      } else {
        const target = path();
        const value = operand();
        (clause === 'ADD' ? out.add : out.del).push([target, value]);
      }
      if (peek() && peek().t === ',') {
        next();
        continue;
      }
      break;
    }
  }
  return out;
}

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function getPath(item, parts) {
  let cur = { M: item };
  for (const part of parts) {
    if (typeof part === 'number') {
      if (!cur || !cur.L) return undefined;
      cur = cur.L[part];
    } else {
      if (!cur || !cur.M) return undefined;
      cur = cur.M[part];
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

function setPath(item, parts, value) {
  let cur = { M: item };
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i];
    const nextVal = typeof part === 'number' ? cur.L?.[part] : cur.M?.[part];
    if (nextVal === undefined || (typeof parts[i + 1] === 'number' ? !nextVal.L : !nextVal.M)) {
      throw new UpdateInvalid('The document path provided in the update expression is invalid for update');
    }
    cur = nextVal;
  }
  const last = parts[parts.length - 1];
  if (typeof last === 'number') {
    if (!cur.L) throw new UpdateInvalid('The document path provided in the update expression is invalid for update');
    // Setting past the end appends (DynamoDB adds the element at the end of the list).
    if (last >= cur.L.length) cur.L.push(value);
    else cur.L[last] = value;
  } else {
    if (!cur.M) throw new UpdateInvalid('The document path provided in the update expression is invalid for update');
    cur.M[last] = value;
  }
}

function removePath(item, parts) {
  let cur = { M: item };
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i];
    cur = typeof part === 'number' ? cur?.L?.[part] : cur?.M?.[part];
    if (cur === undefined) return;
  }
  const last = parts[parts.length - 1];
  if (typeof last === 'number') {
    if (cur.L && last < cur.L.length) cur.L.splice(last, 1);
  } else if (cur.M) {
    delete cur.M[last];
  }
}

// Exact decimal arithmetic on DynamoDB number strings (up to 38 digits).
function toScaled(n) {
  let s = String(n).trim();
  let exp = 0;
  const e = s.search(/[eE]/);
  if (e >= 0) {
    exp = Number(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const neg = s.startsWith('-');
  s = s.replace(/^[+-]/, '');
  const dot = s.indexOf('.');
  let digits = s;
  let scale = 0;
  if (dot >= 0) {
    digits = s.slice(0, dot) + s.slice(dot + 1);
    scale = s.length - dot - 1;
  }
  scale -= exp;
  let int = BigInt(digits || '0');
  if (scale < 0) {
    int *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { int: neg ? -int : int, scale };
}
function fromScaled({ int, scale }) {
  const neg = int < 0n;
  let s = (neg ? -int : int).toString();
  if (scale > 0) {
    s = s.padStart(scale + 1, '0');
    s = `${s.slice(0, s.length - scale)}.${s.slice(s.length - scale)}`.replace(/0+$/, '').replace(/\.$/, '');
  }
  return (neg && s !== '0' ? '-' : '') + s;
}
export function decimalAdd(a, b, sign = 1n) {
  const x = toScaled(a);
  const y = toScaled(b);
  const scale = Math.max(x.scale, y.scale);
  const xi = x.int * 10n ** BigInt(scale - x.scale);
  const yi = y.int * 10n ** BigInt(scale - y.scale);
  return fromScaled({ int: xi + sign * yi, scale });
}

/**
 * The item an UpdateItem would leave, from the stored item (or none), the key
 * and the request's UpdateExpression / ExpressionAttributeNames /
 * ExpressionAttributeValues (or the legacy AttributeUpdates). Models SET (with
 * `if_not_exists`, `list_append`, `+`, `-`), REMOVE, ADD (numbers, sets) and
 * DELETE (sets); every right-hand side reads the item as it was before the
 * update, as DynamoDB does. Throws UpdateNotModelled for anything else (the
 * caller then checks the size after forwarding), UpdateInvalid when DynamoDB
 * would refuse the update itself (the caller then forwards and lets moto answer).
 */
export function applyUpdate(oldItem, key, request) {
  const before = clone(oldItem ?? {});
  const item = clone(oldItem ?? key ?? {});
  for (const [k, v] of Object.entries(key ?? {})) item[k] = clone(v);
  const values = request.ExpressionAttributeValues ?? {};

  if (request.AttributeUpdates && !request.UpdateExpression) {
    for (const [name, upd] of Object.entries(request.AttributeUpdates)) {
      const action = (upd.Action ?? 'PUT').toUpperCase();
      if (action === 'PUT') item[name] = clone(upd.Value);
      else if (action === 'DELETE' && !upd.Value) delete item[name];
      else if (action === 'ADD') addTo(item, [name], clone(upd.Value));
      else if (action === 'DELETE') deleteFrom(item, [name], clone(upd.Value));
      else throw new UpdateNotModelled(`AttributeUpdates action ${action}`);
    }
    return item;
  }
  if (!request.UpdateExpression) return item;

  const parsed = parseUpdateExpression(request.UpdateExpression, request.ExpressionAttributeNames ?? {});
  const value = (ref) => {
    if (!(ref in values)) throw new UpdateInvalid(`undefined attribute value ${ref}`);
    return clone(values[ref]);
  };
  const evaluate = (e) => {
    switch (e.kind) {
      case 'value':
        return value(e.ref);
      case 'path': {
        const v = getPath(before, e.path);
        if (v === undefined) throw new UpdateInvalid('The provided expression refers to an attribute that does not exist in the item');
        return clone(v);
      }
      case 'if_not_exists': {
        const v = getPath(before, e.path);
        return v === undefined ? evaluate(e.fallback) : clone(v);
      }
      case 'list_append': {
        const a = evaluate(e.a);
        const b = evaluate(e.b);
        if (!a.L || !b.L) throw new UpdateInvalid('Incorrect operand type for operator or function; operator or function: list_append');
        return { L: [...a.L, ...b.L] };
      }
      case 'plus':
      case 'minus': {
        const a = evaluate(e.a);
        const b = evaluate(e.b);
        if (a.N === undefined || b.N === undefined) throw new UpdateInvalid('Incorrect operand type for operator or function');
        return { N: decimalAdd(a.N, b.N, e.kind === 'plus' ? 1n : -1n) };
      }
      default:
        throw new UpdateNotModelled(`operand ${e.kind}`);
    }
  };
  const sets = parsed.set.map(([p, e]) => [p, evaluate(e)]);
  const adds = parsed.add.map(([p, e]) => [p, evaluate(e)]);
  const dels = parsed.del.map(([p, e]) => [p, evaluate(e)]);
  for (const [p, v] of sets) setPath(item, p, v);
  // Removals of list elements by index apply from the highest index down.
  const removes = [...parsed.remove].sort((a, b) => {
    const x = a[a.length - 1];
    const y = b[b.length - 1];
    return typeof x === 'number' && typeof y === 'number' ? y - x : 0;
  });
  for (const p of removes) removePath(item, p);
  for (const [p, v] of adds) addTo(item, p, v);
  for (const [p, v] of dels) deleteFrom(item, p, v);
  return item;
}

function addTo(item, p, v) {
  const cur = getPath(item, p);
  if (v.N !== undefined) {
    if (cur === undefined) return setPath(item, p, v);
    if (cur.N === undefined) throw new UpdateInvalid('An operand in the update expression has an incorrect data type');
    return setPath(item, p, { N: decimalAdd(cur.N, v.N) });
  }
  for (const t of ['SS', 'NS', 'BS']) {
    if (v[t]) {
      if (cur === undefined) return setPath(item, p, v);
      if (!cur[t]) throw new UpdateInvalid('An operand in the update expression has an incorrect data type');
      const seen = new Set(cur[t]);
      return setPath(item, p, { [t]: [...cur[t], ...v[t].filter((x) => !seen.has(x))] });
    }
  }
  throw new UpdateInvalid('Incorrect operand type for operator or function; operator: ADD');
}

function deleteFrom(item, p, v) {
  const cur = getPath(item, p);
  if (cur === undefined) return;
  for (const t of ['SS', 'NS', 'BS']) {
    if (v[t]) {
      if (!cur[t]) throw new UpdateInvalid('An operand in the update expression has an incorrect data type');
      const drop = new Set(v[t]);
      const left = cur[t].filter((x) => !drop.has(x));
      return left.length ? setPath(item, p, { [t]: left }) : removePath(item, p);
    }
  }
  throw new UpdateInvalid('Incorrect operand type for operator or function; operator: DELETE');
}

// ---------------------------------------------------------------------------
// DynamoDB capacity units (on-demand billing)
// ---------------------------------------------------------------------------

/**
 * Read request units for reading `bytes` (one item, or the sum of a Query/Scan
 * page): one per 4 KB rounded up, half of that when eventually consistent,
 * twice when transactional. Writes: one per 1 KB rounded up, twice when
 * transactional. Zero bytes still cost the minimum unit (a read of a missing
 * item, or a Query/Scan page with no items, is billed the minimum read unit;
 * every write at least one write unit) — as documented for provisioned
 * capacity; assumed the same for on-demand request units.
 */
export function readUnits(bytes, { consistent = true, transactional = false } = {}) {
  const units = Math.max(1, Math.ceil(bytes / 4096));
  if (transactional) return units * 2;
  return consistent ? units : units / 2;
}
export function writeUnits(bytes, { transactional = false } = {}) {
  const units = Math.max(1, Math.ceil(bytes / 1024));
  return transactional ? units * 2 : units;
}

// ---------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------

export const S3_MAX_KEY_BYTES = 1024;
export const S3_MAX_USER_METADATA_BYTES = 2 * 1024;
export const S3_MAX_PUT_BYTES = 5 * 1024 ** 3;
export const S3_MAX_PART_BYTES = 5 * 1024 ** 3;
export const S3_MIN_PART_BYTES = 5 * 1024 ** 2;
export const S3_MAX_PARTS = 10000;

/**
 * Bytes of user-defined metadata: the `x-amz-meta-*` names (without the prefix)
 * and values, UTF-8. Whether S3 counts the `x-amz-meta-` prefix is not stated
 * in the documentation ("the sum of the number of bytes in the UTF-8 encoding of
 * each key and value"; the SOAP API, where keys carry no prefix, had the same
 * 2 KB); the prefix is not counted here (unconfirmed).
 */
export function userMetadataSize(headers) {
  let total = 0;
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('x-amz-meta-')) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) total += utf8Len(lower.slice('x-amz-meta-'.length)) + utf8Len(v);
  }
  return total;
}

function s3Error(status, code, message, method, extra) {
  return errorResponse('s3', { status, code, message, method, extra });
}

export const keyTooLongError = (size, method) =>
  s3Error(400, 'KeyTooLongError', 'Your key is too long.', method, { Size: size, MaxSizeAllowed: S3_MAX_KEY_BYTES });
export const metadataTooLargeError = (size, method) =>
  s3Error(400, 'MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size.', method, {
    Size: size,
    MaxSizeAllowed: S3_MAX_USER_METADATA_BYTES,
  });
export const entityTooLargeError = (size, max, method) =>
  s3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.', method, {
    ProposedSize: size,
    MaxSizeAllowed: max,
  });
export const entityTooSmallError = (size, partNumber, method) =>
  s3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', method, {
    ProposedSize: size,
    MinSizeAllowed: S3_MIN_PART_BYTES,
    PartNumber: partNumber,
  });
export const invalidPartNumberError = (value, method) =>
  s3Error(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', method, {
    ArgumentName: 'partNumber',
    ArgumentValue: value,
  });
export const missingContentLengthError = (method) =>
  s3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.', method);

/**
 * The size of an upload's payload: `x-amz-decoded-content-length` for
 * aws-chunked bodies (the SDKs' streaming signatures and trailing checksums),
 * else `content-length`; null when neither is present (a chunked upload).
 */
export function uploadSize(headers) {
  const decoded = headers['x-amz-decoded-content-length'];
  if (decoded !== undefined) return Number(decoded);
  const len = headers['content-length'];
  return len === undefined ? null : Number(len);
}

/**
 * The limit checks of one S3 request, before anything is forwarded. `op` is
 * the operation from iam.classify, `key` the object key, `headers` the request
 * headers (lower-case names), `query` a URLSearchParams. Returns null or the
 * error answer.
 *
 * - KeyTooLongError: object writes (PutObject, CopyObject's destination,
 *   CreateMultipartUpload) with a key over 1024 UTF-8 bytes.
 * - MetadataTooLarge: PutObject, CreateMultipartUpload and CopyObject with
 *   `x-amz-metadata-directive: REPLACE` carrying more than 2 KB of user metadata.
 * - EntityTooLarge: PutObject over 5 GiB; UploadPart over 5 GiB.
 * - InvalidArgument: UploadPart / UploadPartCopy part number outside 1..10000
 *   (moto checks only the upper bound).
 * - MissingContentLength (411): PutObject / UploadPart without Content-Length
 *   (nor x-amz-decoded-content-length): S3 does not take chunked uploads.
 *
 * Not here: EntityTooSmall for CompleteMultipartUpload (every part but the last
 * ≥ 5 MiB) is enforced by moto itself (S3_UPLOAD_PART_MIN_SIZE, 5 MiB by
 * default) with AWS's code and status; see checkCompleteParts for the rule.
 */
export function checkS3Request(op, { key, headers = {}, query = new URLSearchParams(), method = 'PUT' } = {}) {
  const writesKey = op === 'PutObject' || op === 'CopyObject' || op === 'CreateMultipartUpload';
  if (writesKey && key != null) {
    const len = utf8Len(key);
    if (len > S3_MAX_KEY_BYTES) return keyTooLongError(len, method);
  }
  const carriesMetadata =
    op === 'PutObject' ||
    op === 'CreateMultipartUpload' ||
    (op === 'CopyObject' && String(headers['x-amz-metadata-directive'] ?? '').toUpperCase() === 'REPLACE');
  if (carriesMetadata) {
    const size = userMetadataSize(headers);
    if (size > S3_MAX_USER_METADATA_BYTES) return metadataTooLargeError(size, method);
  }
  if (op === 'UploadPart' || op === 'UploadPartCopy') {
    const raw = query.get('partNumber');
    const n = Number(raw);
    if (!/^[0-9]+$/.test(raw ?? '') || n < 1 || n > S3_MAX_PARTS) return invalidPartNumberError(raw, method);
  }
  if (op === 'PutObject' || op === 'UploadPart') {
    const size = uploadSize(headers);
    if (size === null || Number.isNaN(size)) return missingContentLengthError(method);
    const max = op === 'PutObject' ? S3_MAX_PUT_BYTES : S3_MAX_PART_BYTES;
    if (size > max) return entityTooLargeError(size, max, method);
  }
  return null;
}

/**
 * CompleteMultipartUpload's rule: every part but the last is at least 5 MiB.
 * `parts` is [{ partNumber, size }] in completion order. Returns null or the
 * EntityTooSmall answer (with the first offending part). moto enforces this
 * already (see checkS3Request); this is the rule, for reference and tests.
 */
export function checkCompleteParts(parts, method = 'POST') {
  for (let i = 0; i < parts.length - 1; i++) {
    if (parts[i].size < S3_MIN_PART_BYTES) return entityTooSmallError(parts[i].size, parts[i].partNumber, method);
  }
  return null;
}
