// A stand-in for CloudFront KeyValueStore, which moto does not have: the
// stores the template declares (AWS::CloudFront::KeyValueStore), their data
// plane API as the functions call it (restJson1 under /key-value-stores/<ARN>,
// signed with SigV4A), and the `cf.kvs()` handle CloudFront Functions read.
//
// What it reproduces (CloudFront Developer Guide, "File format for key-value
// pairs" and the KeyValueStore API reference):
// - keys of at most 512 characters, values of at most 1,024, a store of at
//   most 5 MB (keys and values): an UpdateKeys that would pass them is
//   refused whole (ValidationException / ServiceQuotaExceededException);
// - optimistic concurrency: UpdateKeys/PutKey/DeleteKey carry If-Match, the
//   store's current ETag; another one answers 409 ConflictException;
// - UpdateKeys is all or nothing;
// - `get` in a function throws for a missing key (the guide: "the get()
//   method will return an error" when the key does not exist).
// What it does not: the propagation delay to edge locations (seconds on
// AWS: a name is readable here at once), a per-request batch limit (none is
// documented), GetKey's and ListKeys' pagination tokens beyond one page.

import { randomBytes } from 'node:crypto';

export const KEY_MAX = 512;
export const VALUE_MAX = 1024;
export const STORE_MAX_BYTES = 5 * 1024 * 1024;

export class KvsError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

class Store {
  constructor(arn, name) {
    this.arn = arn;
    this.name = name;
    this.data = new Map();
    this.created = new Date();
    this.modified = this.created;
    this.bump();
  }
  bump() {
    this.etag = `KV${randomBytes(6).toString('hex').toUpperCase()}`;
    this.modified = new Date();
  }
  size() {
    let n = 0;
    for (const [k, v] of this.data) n += Buffer.byteLength(k) + Buffer.byteLength(v);
    return n;
  }
  describe() {
    return {
      KvsARN: this.arn,
      ItemCount: this.data.size,
      TotalSizeInBytes: this.size(),
      Created: this.created.getTime() / 1000,
      LastModified: this.modified.getTime() / 1000,
      Status: 'READY',
    };
  }
}

export class KeyValueStores {
  constructor() {
    this.stores = new Map();
  }

  create(arn, name) {
    const s = new Store(arn, name);
    this.stores.set(arn, s);
    return s;
  }

  remove(arn) {
    this.stores.delete(arn);
  }

  get(arn) {
    const s = this.stores.get(arn);
    if (!s) throw new KvsError('ResourceNotFoundException', `Key value store ${arn} does not exist`, 404);
    return s;
  }

  /** The put/delete lists applied at once, or nothing. */
  update(arn, ifMatch, puts = [], deletes = []) {
    const s = this.get(arn);
    if (!ifMatch) throw new KvsError('ValidationException', 'If-Match is required', 400);
    if (ifMatch !== s.etag) throw new KvsError('ConflictException', `If-Match ${ifMatch} is not the store's current ETag`, 409);
    for (const p of puts) {
      if (typeof p?.Key !== 'string' || typeof p?.Value !== 'string') throw new KvsError('ValidationException', 'each put needs Key and Value', 400);
      if (p.Key.length < 1 || p.Key.length > KEY_MAX) throw new KvsError('ValidationException', `key of ${p.Key.length} characters (at most ${KEY_MAX}): ${p.Key.slice(0, 80)}`, 400);
      if (p.Value.length > VALUE_MAX) throw new KvsError('ValidationException', `value of ${p.Value.length} characters for ${p.Key} (at most ${VALUE_MAX})`, 400);
    }
    const next = new Map(s.data);
    for (const d of deletes) next.delete(d.Key);
    for (const p of puts) next.set(p.Key, p.Value);
    let size = 0;
    for (const [k, v] of next) size += Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > STORE_MAX_BYTES) {
      throw new KvsError('ServiceQuotaExceededException', `the store would hold ${size} bytes (at most ${STORE_MAX_BYTES})`, 402);
    }
    s.data = next;
    s.bump();
    return s;
  }

  /**
   * Serve one data-plane request (already authorized): `{operation, arn, key}`
   * from iam.mjs classify; resolves with `{status, headers, body}`.
   */
  serve(c, { headers, body }) {
    const s = this.get(c.arn);
    const json = (status, doc, etag) => {
      const b = Buffer.from(JSON.stringify(doc));
      return { status, headers: { 'content-type': 'application/json', 'content-length': String(b.length), ...(etag ? { etag } : {}) }, body: b };
    };
    const ifMatch = headers['if-match'];
    switch (c.operation) {
      case 'DescribeKeyValueStore':
        return json(200, s.describe(), s.etag);
      case 'ListKeys':
        return json(200, { Items: [...s.data].sort(([a], [b]) => (a < b ? -1 : 1)).map(([Key, Value]) => ({ Key, Value })) });
      case 'GetKey': {
        if (!s.data.has(c.key)) throw new KvsError('ResourceNotFoundException', `no key ${c.key}`, 404);
        return json(200, { Key: c.key, Value: s.data.get(c.key), ItemCount: s.data.size, TotalSizeInBytes: s.size() });
      }
      case 'UpdateKeys': {
        const doc = JSON.parse(body?.toString('utf8') || '{}');
        const after = this.update(c.arn, ifMatch, doc.Puts ?? [], doc.Deletes ?? []);
        return json(200, { ItemCount: after.data.size, TotalSizeInBytes: after.size() }, after.etag);
      }
      case 'PutKey': {
        const doc = JSON.parse(body?.toString('utf8') || '{}');
        const after = this.update(c.arn, ifMatch, [{ Key: c.key, Value: doc.Value }], []);
        return json(200, { ItemCount: after.data.size, TotalSizeInBytes: after.size() }, after.etag);
      }
      case 'DeleteKey': {
        const after = this.update(c.arn, ifMatch, [], [{ Key: c.key }]);
        return json(200, { ItemCount: after.data.size, TotalSizeInBytes: after.size() }, after.etag);
      }
      default:
        throw new KvsError('ValidationException', `operation ${c.operation}`, 400);
    }
  }

  /** The `cf` module a CloudFront Function imports, over the store at `arn`. */
  cloudfrontModule(arn) {
    const stores = this;
    return {
      kvs() {
        return {
          async get(key, options = {}) {
            const s = stores.get(arn);
            if (!s.data.has(key)) throw new Error(`KVS key not found: ${key}`);
            const v = s.data.get(key);
            if (options.format === 'json') return JSON.parse(v);
            if (options.format === 'bytes') return Buffer.from(v);
            return v;
          },
          async exists(key) {
            return stores.get(arn).data.has(key);
          },
          async meta() {
            const s = stores.get(arn);
            return { creationDateTime: s.created.toISOString(), lastUpdatedDateTime: s.modified.toISOString(), keyCount: s.data.size };
          },
        };
      },
    };
  }
}

/**
 * A KeyValueStore data-plane request in IAM terms: `/key-value-stores/<ARN>`
 * (DescribeKeyValueStore), `…/keys` (GET ListKeys, POST UpdateKeys),
 * `…/keys/<Key>` (GET GetKey, PUT PutKey, DELETE DeleteKey). The ARN and the
 * key are percent-encoded in the path.
 */
export function classifyKvs(method, path) {
  const m = /^\/key-value-stores\/([^/]+)(\/keys(?:\/(.+))?)?$/.exec(path);
  if (!m) return null;
  const arn = decodeURIComponent(m[1]);
  const key = m[3] === undefined ? undefined : decodeURIComponent(m[3]);
  let operation;
  if (!m[2]) operation = method === 'GET' ? 'DescribeKeyValueStore' : null;
  else if (key === undefined) operation = method === 'GET' ? 'ListKeys' : method === 'POST' ? 'UpdateKeys' : null;
  else operation = { GET: 'GetKey', PUT: 'PutKey', DELETE: 'DeleteKey' }[method] ?? null;
  if (!operation) return null;
  return { operation, arn, key };
}
