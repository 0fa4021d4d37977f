// What a request is in IAM terms, and whether the caller may make it.
//
// parseAuth  -> who signed (access key, region, service of the credential scope)
// classify   -> (service, operation, [ { action, resource, context } ]) per request
// authorize  -> @cloud-copilot/iam-simulate over the identity policies of the
//               caller's role and the resource policy (bucket policy)
// accessDenied -> the answer AWS gives, in the service's own error shape
//
// Requests are those of path-style S3, DynamoDB (awsJson1_0), Secrets Manager
// (awsJson1_1) and SNS (awsQuery). Virtual-hosted-style S3 is not understood
// (the functions use force_path_style against the emulator).
//
// Action names and condition keys: "Actions, resources, and condition keys for
// Amazon S3 / Amazon DynamoDB / AWS Secrets Manager / Amazon SNS" (Service
// Authorization Reference) and "Required permissions for Amazon S3 API
// operations" (S3 User Guide).

import { anonymousPrincipal, getDenialReasons, runSimulation } from '@cloud-copilot/iam-simulate';
import { createHash } from 'node:crypto';
import { classifyKvs } from './kvs.mjs';
import { errorResponse } from './limits.mjs';

export const DEFAULT_ACCOUNT = '123456789012';
export const DEFAULT_REGION = 'us-east-1';

// ---------------------------------------------------------------------------
// parseAuth
// ---------------------------------------------------------------------------

function header(headers, name) {
  const v = headers?.[name] ?? headers?.[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function parseCredential(credential) {
  // AKID/yyyymmdd/region/service/aws4_request
  const parts = String(credential).split('/');
  // SigV4A (CloudFront KeyValueStore): AKID/yyyymmdd/service/aws4_request, the
  // regions in X-Amz-Region-Set instead.
  if (parts.length === 4 && parts[3] === 'aws4_request' && parts[2] === 'cloudfront-keyvaluestore') {
    return { accessKeyId: parts[0], date: parts[1], region: undefined, service: parts[2] };
  }
  if (parts.length < 5 || parts[parts.length - 1] !== 'aws4_request') return null;
  const n = parts.length;
  return { accessKeyId: parts.slice(0, n - 4).join('/'), date: parts[n - 4], region: parts[n - 3], service: parts[n - 2] };
}

/**
 * Who signed a request: `{ accessKeyId, region, service, authType }` from a
 * SigV4 `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, …`
 * header or a presigned URL's `X-Amz-Credential`; `{ anonymous: true }` when
 * neither is present. SIGNATURES ARE NOT VERIFIED: localaws trusts the access
 * key named in the credential scope (it hands each function its own key; a test
 * process could impersonate any function by naming its key, and moto verifies
 * nothing either). A SigV2 `AWS AKID:signature` header yields the key with no
 * region or service. An Authorization header that is neither gives
 * `{ malformed: true }`.
 */
export function parseAuth(req) {
  const headers = req.headers ?? {};
  const auth = header(headers, 'authorization');
  if (auth) {
    const m = /^(AWS4-HMAC-SHA256|AWS4-ECDSA-P256-SHA256)\s+(.*)$/s.exec(auth.trim());
    if (m) {
      const cred = /Credential=([^,\s]+)/.exec(m[2]);
      const parsed = cred && parseCredential(cred[1]);
      if (!parsed) return { malformed: true };
      return { ...parsed, authType: 'REST-HEADER', signatureVersion: m[1] };
    }
    const v2 = /^AWS\s+([^:]+):/.exec(auth.trim());
    if (v2) return { accessKeyId: v2[1], region: undefined, service: undefined, authType: 'REST-HEADER', signatureVersion: 'AWS' };
    return { malformed: true };
  }
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q >= 0) {
    const query = new URLSearchParams(url.slice(q + 1));
    const cred = query.get('X-Amz-Credential');
    if (cred) {
      const parsed = parseCredential(cred);
      if (!parsed) return { malformed: true };
      return { ...parsed, authType: 'REST-QUERY-STRING', signatureVersion: 'AWS4-HMAC-SHA256' };
    }
    const v2key = query.get('AWSAccessKeyId');
    if (v2key) return { accessKeyId: v2key, region: undefined, service: undefined, authType: 'REST-QUERY-STRING', signatureVersion: 'AWS' };
  }
  return { anonymous: true };
}

// ---------------------------------------------------------------------------
// Which service
// ---------------------------------------------------------------------------

/** The service of a request: from X-Amz-Target, the credential scope, else S3. */
export function serviceOf({ headers = {}, query } = {}) {
  const target = header(headers, 'x-amz-target');
  if (target) {
    if (target.startsWith('DynamoDB_20120810.')) return 'dynamodb';
    if (target.startsWith('secretsmanager.')) return 'secretsmanager';
    if (target.startsWith('AmazonSNS.') || target.startsWith('AmazonSimpleNotificationService.')) return 'sns';
    return 'unknown';
  }
  let scope;
  const auth = header(headers, 'authorization');
  if (auth) {
    const cred = /Credential=([^,\s]+)/.exec(auth);
    scope = cred && parseCredential(cred[1])?.service;
  } else if (query?.get?.('X-Amz-Credential')) {
    scope = parseCredential(query.get('X-Amz-Credential'))?.service;
  }
  if (scope) return ['s3', 'dynamodb', 'secretsmanager', 'sns', 'cloudfront-keyvaluestore'].includes(scope) ? scope : 'unknown';
  // Unsigned requests: only S3 takes those (public objects, the CloudFront stand-in).
  return 's3';
}

/**
 * Whether classify needs the request body: the JSON bodies of DynamoDB and
 * Secrets Manager, SNS's form body, and S3 `POST ?delete` (DeleteObjects names
 * its keys in the body). Never an S3 object upload: those can be GiBs and must
 * stream through.
 */
export function needsBody(method, path, query, headers) {
  const service = serviceOf({ headers, query });
  if (service === 'dynamodb' || service === 'secretsmanager' || service === 'sns') return true;
  if (service === 's3') return String(method).toUpperCase() === 'POST' && query.has('delete');
  if (service === 'cloudfront-keyvaluestore') return ['POST', 'PUT'].includes(String(method).toUpperCase());
  return false;
}

// ---------------------------------------------------------------------------
// classify
// ---------------------------------------------------------------------------

/** classify could not make sense of the request: the caller treats it as an unknown operation. */
export class ClassifyError extends Error {}

/** Percent-decoding of a path segment as S3 (and moto) do it: `+` stays `+`. */
function decodePath(raw) {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ClassifyError(`malformed percent-encoding in ${JSON.stringify(raw)}`);
  }
}

// Query parameters that carry no operation of their own.
const S3_BENIGN_PARAMS = new Set([
  'x-id',
  'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders',
  'X-Amz-Signature', 'X-Amz-Security-Token', 'X-Amz-Content-Sha256', 'X-Amz-Checksum-Mode', 'x-amz-checksum-mode',
  'AWSAccessKeyId', 'Signature', 'Expires',
  'response-content-type', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding',
]);
const S3_LIST_PARAMS = ['prefix', 'delimiter', 'max-keys', 'marker', 'encoding-type', 'continuation-token',
  'start-after', 'fetch-owner', 'list-type', 'optional-object-attributes', 'expected-bucket-owner'];

// bucket-level subresources: [GET action, PUT action, DELETE action, operation base name]
const S3_BUCKET_SUBRESOURCES = {
  location: { GET: ['GetBucketLocation', 's3:GetBucketLocation'] },
  policy: {
    GET: ['GetBucketPolicy', 's3:GetBucketPolicy'],
    PUT: ['PutBucketPolicy', 's3:PutBucketPolicy'],
    DELETE: ['DeleteBucketPolicy', 's3:DeleteBucketPolicy'],
  },
  policyStatus: { GET: ['GetBucketPolicyStatus', 's3:GetBucketPolicyStatus'] },
  notification: {
    GET: ['GetBucketNotificationConfiguration', 's3:GetBucketNotification'],
    PUT: ['PutBucketNotificationConfiguration', 's3:PutBucketNotification'],
  },
  versioning: {
    GET: ['GetBucketVersioning', 's3:GetBucketVersioning'],
    PUT: ['PutBucketVersioning', 's3:PutBucketVersioning'],
  },
  tagging: {
    GET: ['GetBucketTagging', 's3:GetBucketTagging'],
    PUT: ['PutBucketTagging', 's3:PutBucketTagging'],
    DELETE: ['DeleteBucketTagging', 's3:PutBucketTagging'],
  },
  acl: { GET: ['GetBucketAcl', 's3:GetBucketAcl'], PUT: ['PutBucketAcl', 's3:PutBucketAcl'] },
  cors: {
    GET: ['GetBucketCors', 's3:GetBucketCORS'],
    PUT: ['PutBucketCors', 's3:PutBucketCORS'],
    DELETE: ['DeleteBucketCors', 's3:PutBucketCORS'],
  },
  lifecycle: {
    GET: ['GetBucketLifecycleConfiguration', 's3:GetLifecycleConfiguration'],
    PUT: ['PutBucketLifecycleConfiguration', 's3:PutLifecycleConfiguration'],
    DELETE: ['DeleteBucketLifecycle', 's3:PutLifecycleConfiguration'],
  },
  encryption: {
    GET: ['GetBucketEncryption', 's3:GetEncryptionConfiguration'],
    PUT: ['PutBucketEncryption', 's3:PutEncryptionConfiguration'],
    DELETE: ['DeleteBucketEncryption', 's3:PutEncryptionConfiguration'],
  },
  publicAccessBlock: {
    GET: ['GetPublicAccessBlock', 's3:GetBucketPublicAccessBlock'],
    PUT: ['PutPublicAccessBlock', 's3:PutBucketPublicAccessBlock'],
    DELETE: ['DeletePublicAccessBlock', 's3:PutBucketPublicAccessBlock'],
  },
  ownershipControls: {
    GET: ['GetBucketOwnershipControls', 's3:GetBucketOwnershipControls'],
    PUT: ['PutBucketOwnershipControls', 's3:PutBucketOwnershipControls'],
    DELETE: ['DeleteBucketOwnershipControls', 's3:PutBucketOwnershipControls'],
  },
  website: {
    GET: ['GetBucketWebsite', 's3:GetBucketWebsite'],
    PUT: ['PutBucketWebsite', 's3:PutBucketWebsite'],
    DELETE: ['DeleteBucketWebsite', 's3:DeleteBucketWebsite'],
  },
  logging: { GET: ['GetBucketLogging', 's3:GetBucketLogging'], PUT: ['PutBucketLogging', 's3:PutBucketLogging'] },
  'object-lock': {
    GET: ['GetObjectLockConfiguration', 's3:GetBucketObjectLockConfiguration'],
    PUT: ['PutObjectLockConfiguration', 's3:PutBucketObjectLockConfiguration'],
  },
};

const s3Arn = (bucket, key) => (key == null ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`);

function s3Context(headers, auth) {
  // s3:TlsVersion: on AWS every caller of this stack reaches S3 over TLS 1.2 or
  // later (the Rust SDK's rustls negotiates 1.3, CloudFront's origin fetches use
  // at least 1.2), so a `NumericLessThan s3:TlsVersion 1.2` deny (CDK's
  // minimumTLSVersion) must not fire for the plain-HTTP loopback hop either;
  // 1.3 is assumed (unconfirmed for CloudFront's origin requests).
  const ctx = { 's3:TlsVersion': '1.3' };
  if (auth && !auth.anonymous && !auth.malformed) {
    ctx['s3:authType'] = auth.authType ?? 'REST-HEADER';
    ctx['s3:signatureversion'] = auth.signatureVersion ?? 'AWS4-HMAC-SHA256';
  }
  const sha = header(headers, 'x-amz-content-sha256');
  if (sha) ctx['s3:x-amz-content-sha256'] = sha;
  return ctx;
}

function objectWriteContext(headers) {
  const ctx = {};
  const map = {
    'x-amz-server-side-encryption': 's3:x-amz-server-side-encryption',
    'x-amz-server-side-encryption-aws-kms-key-id': 's3:x-amz-server-side-encryption-aws-kms-key-id',
    'x-amz-storage-class': 's3:x-amz-storage-class',
    'x-amz-acl': 's3:x-amz-acl',
    'x-amz-object-lock-mode': 's3:object-lock-mode',
    'if-none-match': 's3:if-none-match',
    'if-match': 's3:if-match',
  };
  for (const [h, k] of Object.entries(map)) {
    const v = header(headers, h);
    if (v !== undefined) ctx[k] = v;
  }
  return ctx;
}

/**
 * The source of CopyObject / UploadPartCopy: `x-amz-copy-source` is
 * `[/]bucket/key[?versionId=…]`, URL-encoded. The query is split off before
 * decoding (a `?` inside a key arrives as %3F), as S3 and moto do.
 */
export function parseCopySource(value) {
  if (!value) throw new ClassifyError('x-amz-copy-source is empty');
  const raw = String(value);
  if (raw.startsWith('arn:')) throw new ClassifyError('copy from an access point or Outposts ARN is not modelled');
  const q = raw.indexOf('?');
  const pathPart = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  const decoded = decodePath(pathPart).replace(/^\//, '');
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new ClassifyError(`x-amz-copy-source ${JSON.stringify(raw)} names no key`);
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), versionId: query.get('versionId') ?? undefined };
}

function xmlDecode(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
  });
}

/** The objects a DeleteObjects body names: [{ key, versionId }]. */
export function parseDeleteObjects(body) {
  const xml = Buffer.isBuffer(body) ? body.toString('utf8') : String(body ?? '');
  const out = [];
  const objRe = /<Object>([\s\S]*?)<\/Object>/g;
  let m;
  while ((m = objRe.exec(xml))) {
    const key = /<Key>([\s\S]*?)<\/Key>/.exec(m[1]);
    if (!key) throw new ClassifyError('DeleteObjects: an <Object> without <Key>');
    const version = /<VersionId>([\s\S]*?)<\/VersionId>/.exec(m[1]);
    out.push({ key: xmlDecode(key[1]), versionId: version ? xmlDecode(version[1]) : undefined });
  }
  return out;
}

function unknown(service, why) {
  return { service, operation: 'Unknown', unknown: why, authorizations: [] };
}

function classifyS3(req, opts) {
  const method = req.method.toUpperCase();
  const { query, headers } = req;
  const path = req.path || '/';
  if (!path.startsWith('/')) throw new ClassifyError(`path ${path} does not start with /`);
  const rest = path.slice(1);
  const slash = rest.indexOf('/');
  const bucket = decodePath(slash < 0 ? rest : rest.slice(0, slash));
  const keyRaw = slash < 0 ? '' : rest.slice(slash + 1);
  const key = keyRaw === '' ? null : decodePath(keyRaw);
  const base = s3Context(headers, opts.auth);
  const unk = (why) => ({ ...unknown('s3', why), bucket: bucket || null, key });
  const keys = [...new Set(query.keys())];
  const result = (operation, authorizations, extra = {}) => ({
    service: 's3',
    operation,
    authorizations: authorizations.map((a) => ({ ...a, context: { ...base, ...a.context } })),
    bucket,
    key,
    ...extra,
  });
  const onlyParams = (allowed) => {
    const bad = keys.filter((k) => !S3_BENIGN_PARAMS.has(k) && !allowed.includes(k));
    return bad.length ? bad : null;
  };

  if (bucket === '') {
    if (method === 'GET' && !onlyParams(['max-buckets', 'continuation-token', 'prefix', 'bucket-region'])) {
      return { ...result('ListBuckets', [{ action: 's3:ListAllMyBuckets', resource: '*' }]), bucket: null };
    }
    return unk( `${method} / with ${keys.join(',') || 'no parameters'}`);
  }

  if (key === null) {
    const sub = keys.filter((k) => k in S3_BUCKET_SUBRESOURCES);
    if (sub.length > 1) return unk( `several bucket subresources ${sub.join(',')}`);
    if (sub.length === 1) {
      const entry = S3_BUCKET_SUBRESOURCES[sub[0]][method];
      const bad = onlyParams([sub[0]]);
      if (!entry || bad) return unk( `${method} /${bucket}?${sub[0]}${bad ? ` with ${bad.join(',')}` : ''}`);
      return result(entry[0], [{ action: entry[1], resource: s3Arn(bucket) }]);
    }
    if (method === 'GET' && query.has('uploads')) {
      const bad = onlyParams(['uploads', 'prefix', 'delimiter', 'max-uploads', 'key-marker', 'upload-id-marker', 'encoding-type']);
      if (bad) return unk( `GET ?uploads with ${bad.join(',')}`);
      return result('ListMultipartUploads', [{ action: 's3:ListBucketMultipartUploads', resource: s3Arn(bucket) }]);
    }
    const listContext = () => {
      const ctx = {};
      if (query.has('prefix')) ctx['s3:prefix'] = query.get('prefix');
      if (query.has('delimiter')) ctx['s3:delimiter'] = query.get('delimiter');
      if (query.has('max-keys')) ctx['s3:max-keys'] = query.get('max-keys');
      return ctx;
    };
    if (method === 'GET' && query.has('versions')) {
      const bad = onlyParams(['versions', ...S3_LIST_PARAMS, 'key-marker', 'version-id-marker']);
      if (bad) return unk( `GET ?versions with ${bad.join(',')}`);
      return result('ListObjectVersions', [{ action: 's3:ListBucketVersions', resource: s3Arn(bucket), context: listContext() }]);
    }
    if (method === 'GET') {
      const bad = onlyParams(S3_LIST_PARAMS);
      if (bad) return unk( `GET /${bucket} with ${bad.join(',')}`);
      const v2 = query.get('list-type') === '2';
      return result(v2 ? 'ListObjectsV2' : 'ListObjects', [
        { action: 's3:ListBucket', resource: s3Arn(bucket), context: listContext() },
      ]);
    }
    if (method === 'HEAD' && !onlyParams([])) {
      return result('HeadBucket', [{ action: 's3:ListBucket', resource: s3Arn(bucket) }]);
    }
    if (method === 'PUT' && !onlyParams([])) {
      return result('CreateBucket', [{ action: 's3:CreateBucket', resource: s3Arn(bucket) }]);
    }
    if (method === 'DELETE' && !onlyParams([])) {
      return result('DeleteBucket', [{ action: 's3:DeleteBucket', resource: s3Arn(bucket) }]);
    }
    if (method === 'POST' && query.has('delete') && !onlyParams(['delete'])) {
      // One authorization per key. AWS deletes the keys the caller may delete and
      // answers <Error><Code>AccessDenied</Code> for the others, in a 200
      // DeleteResult: the gateway does the same (gateway.mjs, deleteObjectsPartly).
      const objects = parseDeleteObjects(req.body);
      if (!objects.length) throw new ClassifyError('DeleteObjects names no objects');
      return result(
        'DeleteObjects',
        objects.map((o) => ({
          action: o.versionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject',
          resource: s3Arn(bucket, o.key),
        })),
        { objects },
      );
    }
    return unk( `${method} /${bucket}${keys.length ? `?${keys.join('&')}` : ''}`);
  }

  // Object-level operations.
  const versionId = query.get('versionId') ?? undefined;
  const arn = s3Arn(bucket, key);
  const getAction = versionId ? 's3:GetObjectVersion' : 's3:GetObject';
  const copySourceAuth = () => {
    const src = parseCopySource(header(headers, 'x-amz-copy-source'));
    return {
      source: src,
      auth: { action: src.versionId ? 's3:GetObjectVersion' : 's3:GetObject', resource: s3Arn(src.bucket, src.key) },
    };
  };
  const objectRead = ['versionId', 'partNumber'];

  if (method === 'GET' || method === 'HEAD') {
    if (method === 'GET' && query.has('uploadId')) {
      const bad = onlyParams(['uploadId', 'max-parts', 'part-number-marker', 'encoding-type']);
      if (bad) return unk( `GET ?uploadId with ${bad.join(',')}`);
      return result('ListParts', [{ action: 's3:ListMultipartUploadParts', resource: arn }], { uploadId: query.get('uploadId') });
    }
    const subs = {
      tagging: ['GetObjectTagging', versionId ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging'],
      acl: ['GetObjectAcl', versionId ? 's3:GetObjectVersionAcl' : 's3:GetObjectAcl'],
      attributes: ['GetObjectAttributes', versionId ? 's3:GetObjectVersionAttributes' : 's3:GetObjectAttributes'],
      retention: ['GetObjectRetention', 's3:GetObjectRetention'],
      'legal-hold': ['GetObjectLegalHold', 's3:GetObjectLegalHold'],
    };
    const sub = keys.find((k) => k in subs);
    if (method === 'GET' && sub) {
      const bad = onlyParams([sub, 'versionId']);
      if (bad) return unk( `GET ?${sub} with ${bad.join(',')}`);
      return result(subs[sub][0], [{ action: subs[sub][1], resource: arn }]);
    }
    const bad = onlyParams(objectRead);
    if (bad) return unk( `${method} object with ${bad.join(',')}`);
    // HeadObject is authorized as s3:GetObject ("HeadObject: s3:GetObject").
    return result(method === 'HEAD' ? 'HeadObject' : 'GetObject', [{ action: getAction, resource: arn }], { versionId });
  }

  if (method === 'PUT') {
    const copySource = header(headers, 'x-amz-copy-source');
    if (query.has('uploadId') || query.has('partNumber')) {
      const bad = onlyParams(['uploadId', 'partNumber']);
      if (bad || !query.has('uploadId') || !query.has('partNumber')) return unk( `PUT part with ${keys.join(',')}`);
      if (copySource) {
        const { source, auth } = copySourceAuth();
        return result('UploadPartCopy', [{ action: 's3:PutObject', resource: arn }, auth], {
          copySource: source,
          uploadId: query.get('uploadId'),
        });
      }
      return result('UploadPart', [{ action: 's3:PutObject', resource: arn }], { uploadId: query.get('uploadId') });
    }
    const subs = {
      tagging: ['PutObjectTagging', versionId ? 's3:PutObjectVersionTagging' : 's3:PutObjectTagging'],
      acl: ['PutObjectAcl', versionId ? 's3:PutObjectVersionAcl' : 's3:PutObjectAcl'],
      retention: ['PutObjectRetention', 's3:PutObjectRetention'],
      'legal-hold': ['PutObjectLegalHold', 's3:PutObjectLegalHold'],
    };
    const sub = keys.find((k) => k in subs);
    if (sub) {
      const bad = onlyParams([sub, 'versionId']);
      if (bad) return unk( `PUT ?${sub} with ${bad.join(',')}`);
      return result(subs[sub][0], [{ action: subs[sub][1], resource: arn }]);
    }
    const bad = onlyParams([]);
    if (bad) return unk( `PUT object with ${bad.join(',')}`);
    if (copySource) {
      const { source, auth } = copySourceAuth();
      const ctx = { ...objectWriteContext(headers), 's3:x-amz-copy-source': copySource };
      const directive = header(headers, 'x-amz-metadata-directive');
      if (directive) ctx['s3:x-amz-metadata-directive'] = directive;
      return result('CopyObject', [{ action: 's3:PutObject', resource: arn, context: ctx }, auth], { copySource: source });
    }
    return result('PutObject', [{ action: 's3:PutObject', resource: arn, context: objectWriteContext(headers) }]);
  }

  if (method === 'POST') {
    if (query.has('uploads') && !onlyParams(['uploads'])) {
      return result('CreateMultipartUpload', [{ action: 's3:PutObject', resource: arn, context: objectWriteContext(headers) }]);
    }
    if (query.has('uploadId') && !onlyParams(['uploadId'])) {
      return result('CompleteMultipartUpload', [{ action: 's3:PutObject', resource: arn }], { uploadId: query.get('uploadId') });
    }
    if (query.has('restore') && !onlyParams(['restore', 'versionId'])) {
      return result('RestoreObject', [{ action: 's3:RestoreObject', resource: arn }]);
    }
    return unk( `POST object with ${keys.join(',') || 'no parameters'}`);
  }

  if (method === 'DELETE') {
    if (query.has('uploadId')) {
      if (onlyParams(['uploadId'])) return unk( `DELETE ?uploadId with ${keys.join(',')}`);
      return result('AbortMultipartUpload', [{ action: 's3:AbortMultipartUpload', resource: arn }], { uploadId: query.get('uploadId') });
    }
    if (query.has('tagging')) {
      if (onlyParams(['tagging', 'versionId'])) return unk( `DELETE ?tagging with ${keys.join(',')}`);
      return result('DeleteObjectTagging', [
        { action: versionId ? 's3:DeleteObjectVersionTagging' : 's3:DeleteObjectTagging', resource: arn },
      ]);
    }
    const bad = onlyParams(['versionId']);
    if (bad) return unk( `DELETE object with ${bad.join(',')}`);
    return result('DeleteObject', [{ action: versionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject', resource: arn }], { versionId });
  }
  return unk( `${method} object`);
}

function parseJsonBody(body) {
  try {
    const text = Buffer.isBuffer(body) ? body.toString('utf8') : String(body ?? '');
    return text.trim() === '' ? {} : JSON.parse(text);
  } catch (e) {
    throw new ClassifyError(`request body is not JSON: ${e.message}`);
  }
}

function tableArn(name, region, account) {
  if (typeof name !== 'string' || !name) throw new ClassifyError('TableName missing');
  return name.startsWith('arn:') ? name : `arn:aws:dynamodb:${region}:${account}:table/${name}`;
}

// DynamoDB operations on one table named by TableName: action = dynamodb:<Op>.
const DYNAMO_TABLE_OPS = new Set([
  'GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'DescribeTable', 'CreateTable',
  'DeleteTable', 'UpdateTable', 'DescribeTimeToLive', 'UpdateTimeToLive', 'DescribeContinuousBackups',
  'UpdateContinuousBackups', 'DescribeKinesisStreamingDestination', 'DescribeContributorInsights',
]);
const DYNAMO_RESOURCE_ARN_OPS = { TagResource: 'ResourceArn', UntagResource: 'ResourceArn', ListTagsOfResource: 'ResourceArn' };
const DYNAMO_WILDCARD_OPS = new Set(['ListTables', 'DescribeLimits', 'DescribeEndpoints', 'ListBackups', 'ListGlobalTables']);

function dynamoContext(body, extra = {}) {
  const ctx = { ...extra };
  if (typeof body.ReturnValues === 'string') ctx['dynamodb:ReturnValues'] = body.ReturnValues;
  if (typeof body.ReturnConsumedCapacity === 'string') ctx['dynamodb:ReturnConsumedCapacity'] = body.ReturnConsumedCapacity;
  if (typeof body.Select === 'string') ctx['dynamodb:Select'] = body.Select;
  return ctx;
}

function classifyDynamo(req, opts) {
  const target = header(req.headers, 'x-amz-target') ?? '';
  const op = target.slice('DynamoDB_20120810.'.length);
  const { region, accountId } = opts;
  if (!target.startsWith('DynamoDB_20120810.') || !op) return unknown('dynamodb', `X-Amz-Target ${target}`);
  const body = parseJsonBody(req.body);
  const result = (authorizations, extra = {}) => ({ service: 'dynamodb', operation: op, authorizations, body, ...extra });

  if (DYNAMO_TABLE_OPS.has(op)) {
    let resource = tableArn(body.TableName, region, accountId);
    if ((op === 'Query' || op === 'Scan') && body.IndexName) resource = `${resource}/index/${body.IndexName}`;
    return result([{ action: `dynamodb:${op}`, resource, context: dynamoContext(body) }], {
      tables: [body.TableName],
    });
  }
  if (op in DYNAMO_RESOURCE_ARN_OPS) {
    const arn = body[DYNAMO_RESOURCE_ARN_OPS[op]];
    if (typeof arn !== 'string') throw new ClassifyError(`${op} without ${DYNAMO_RESOURCE_ARN_OPS[op]}`);
    return result([{ action: `dynamodb:${op}`, resource: arn, context: {} }]);
  }
  if (DYNAMO_WILDCARD_OPS.has(op)) return result([{ action: `dynamodb:${op}`, resource: '*', context: {} }]);
  if (op === 'BatchGetItem' || op === 'BatchWriteItem') {
    const tables = Object.keys(body.RequestItems ?? {});
    if (!tables.length) throw new ClassifyError(`${op} without RequestItems`);
    return result(
      tables.map((t) => ({ action: `dynamodb:${op}`, resource: tableArn(t, region, accountId), context: dynamoContext(body) })),
      { tables },
    );
  }
  if (op === 'TransactWriteItems' || op === 'TransactGetItems') {
    const items = body.TransactItems ?? [];
    if (!items.length) throw new ClassifyError(`${op} without TransactItems`);
    const actions = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', ConditionCheck: 'ConditionCheckItem', Get: 'GetItem' };
    const auths = items.map((entry) => {
      const [kind] = Object.keys(entry);
      if (!(kind in actions)) throw new ClassifyError(`${op}: unknown entry ${kind}`);
      return {
        action: `dynamodb:${actions[kind]}`,
        resource: tableArn(entry[kind].TableName, region, accountId),
        context: dynamoContext(entry[kind], { 'dynamodb:EnclosingOperation': op }),
      };
    });
    return result(auths, { tables: [...new Set(items.map((e) => Object.values(e)[0].TableName))] });
  }
  return unknown('dynamodb', `DynamoDB operation ${op}`);
}

const SECRET_ID_OPS = new Set([
  'GetSecretValue', 'PutSecretValue', 'DescribeSecret', 'UpdateSecret', 'DeleteSecret', 'RestoreSecret',
  'GetResourcePolicy', 'PutResourcePolicy', 'DeleteResourcePolicy', 'ListSecretVersionIds', 'RotateSecret',
  'CancelRotateSecret', 'UpdateSecretVersionStage', 'TagResource', 'UntagResource', 'ValidateResourcePolicy',
]);

function classifySecrets(req, opts) {
  const target = header(req.headers, 'x-amz-target') ?? '';
  const op = target.slice('secretsmanager.'.length);
  const { region, accountId, resolveSecretArn } = opts;
  const body = parseJsonBody(req.body);
  const arnFor = (id) => {
    if (typeof id !== 'string' || !id) throw new ClassifyError(`${op} without a secret id`);
    const resolved = resolveSecretArn?.(id);
    if (resolved) return resolved;
    // Unknown to the registry: a full ARN is used as given; a name becomes the
    // ARN without the random suffix (how AWS names a secret it cannot find in an
    // authorization check is not documented).
    return id.startsWith('arn:') ? id : `arn:aws:secretsmanager:${region}:${accountId}:secret:${id}`;
  };
  const result = (authorizations, extra = {}) => ({ service: 'secretsmanager', operation: op, authorizations, body, ...extra });
  if (SECRET_ID_OPS.has(op)) {
    const ctx = { 'secretsmanager:SecretId': body.SecretId };
    if (op === 'GetSecretValue') {
      if (body.VersionId) ctx['secretsmanager:VersionId'] = body.VersionId;
      if (body.VersionStage) ctx['secretsmanager:VersionStage'] = body.VersionStage;
    }
    return result([{ action: `secretsmanager:${op}`, resource: arnFor(body.SecretId), context: ctx }], { secretId: body.SecretId });
  }
  if (op === 'CreateSecret') {
    if (typeof body.Name !== 'string') throw new ClassifyError('CreateSecret without Name');
    // The resource of CreateSecret is the ARN the new secret gets; its random
    // suffix is not known before creation (unconfirmed how AWS evaluates it).
    return result([{ action: 'secretsmanager:CreateSecret', resource: arnFor(body.Name), context: { 'secretsmanager:Name': body.Name } }], {
      secretId: body.Name,
    });
  }
  if (op === 'ListSecrets' || op === 'GetRandomPassword' || op === 'BatchGetSecretValue') {
    return result([{ action: `secretsmanager:${op}`, resource: '*', context: {} }]);
  }
  return unknown('secretsmanager', `Secrets Manager operation ${op || target}`);
}

const SNS_TOPIC_OPS = new Set([
  'Publish', 'PublishBatch', 'Subscribe', 'GetTopicAttributes', 'SetTopicAttributes', 'DeleteTopic',
  'ListSubscriptionsByTopic', 'AddPermission', 'RemovePermission', 'GetDataProtectionPolicy', 'PutDataProtectionPolicy',
]);

function classifySns(req, opts) {
  const { region, accountId } = opts;
  const text = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : String(req.body ?? '');
  const form = new URLSearchParams(text);
  const op = form.get('Action');
  const result = (authorizations, extra = {}) => ({ service: 'sns', operation: op, authorizations, form, ...extra });
  if (!op) return unknown('sns', 'SNS request without Action (only the Query protocol is modelled)');
  if (SNS_TOPIC_OPS.has(op)) {
    const arn = form.get('TopicArn') ?? (op === 'Publish' ? form.get('TargetArn') : null);
    if (!arn) {
      if (op === 'Publish' && form.get('PhoneNumber')) return result([{ action: 'sns:Publish', resource: '*', context: {} }]);
      throw new ClassifyError(`${op} without TopicArn`);
    }
    const ctx = {};
    if (op === 'Subscribe') {
      if (form.get('Protocol')) ctx['sns:Protocol'] = form.get('Protocol');
      if (form.get('Endpoint')) ctx['sns:Endpoint'] = form.get('Endpoint');
    }
    return result([{ action: op === 'PublishBatch' ? 'sns:Publish' : `sns:${op}`, resource: arn, context: ctx }], { topicArn: arn });
  }
  if (op === 'CreateTopic') {
    const name = form.get('Name');
    if (!name) throw new ClassifyError('CreateTopic without Name');
    const arn = `arn:aws:sns:${region}:${accountId}:${name}`;
    return result([{ action: 'sns:CreateTopic', resource: arn, context: {} }], { topicArn: arn });
  }
  if (op === 'Unsubscribe' || op === 'GetSubscriptionAttributes' || op === 'SetSubscriptionAttributes') {
    const sub = form.get('SubscriptionArn');
    if (!sub) throw new ClassifyError(`${op} without SubscriptionArn`);
    const topic = sub.slice(0, sub.lastIndexOf(':'));
    return result([{ action: `sns:${op}`, resource: topic, context: {} }], { topicArn: topic });
  }
  if (op === 'TagResource' || op === 'UntagResource' || op === 'ListTagsForResource') {
    const arn = form.get('ResourceArn');
    if (!arn) throw new ClassifyError(`${op} without ResourceArn`);
    return result([{ action: `sns:${op}`, resource: arn, context: {} }], { topicArn: arn });
  }
  if (op === 'ListTopics' || op === 'ListSubscriptions') return result([{ action: `sns:${op}`, resource: '*', context: {} }]);
  return unknown('sns', `SNS operation ${op}`);
}

/**
 * What a request is in IAM terms.
 *
 * `request`: `{ method, path (raw, still percent-encoded), query: URLSearchParams,
 * headers (lower-case names), body: Buffer|null }`; `opts`: `{ region, accountId,
 * auth (parseAuth's result), resolveSecretArn(secretId) -> arn|undefined }`.
 *
 * Returns `{ service, operation, authorizations: [{ action, resource, context }],
 * needsBody, … }` plus what the gateway uses (S3: bucket, key, copySource,
 * uploadId, objects; DynamoDB: body, tables; Secrets Manager: secretId; SNS:
 * topicArn). An operation classify does not know comes back as
 * `{ operation: 'Unknown', unknown: '<why>', authorizations: [] }`: the gateway
 * denies it to everyone but the admin, never allows it silently.
 * Every authorization's context carries aws:RequestedRegion; the principal's
 * keys are added by authorize.
 */
export function classify(request, opts = {}) {
  const region = opts.region ?? opts.auth?.region ?? DEFAULT_REGION;
  const accountId = opts.accountId ?? DEFAULT_ACCOUNT;
  const o = { ...opts, region, accountId };
  const query = request.query instanceof URLSearchParams ? request.query : new URLSearchParams(request.query ?? '');
  const headers = request.headers ?? {};
  const req = { ...request, query, headers, method: String(request.method ?? 'GET') };
  const service = serviceOf({ headers, query });
  const nb = needsBody(req.method, req.path, query, headers);
  let out;
  try {
    if (service === 's3') out = classifyS3(req, o);
    else if (service === 'dynamodb') out = classifyDynamo(req, o);
    else if (service === 'secretsmanager') out = classifySecrets(req, o);
    else if (service === 'sns') out = classifySns(req, o);
    else if (service === 'cloudfront-keyvaluestore') {
      const k = classifyKvs(req.method.toUpperCase(), req.path);
      if (!k) throw new ClassifyError(`CloudFront KeyValueStore request ${req.method} ${req.path}`);
      out = {
        service,
        operation: k.operation,
        authorizations: [{ action: `cloudfront-keyvaluestore:${k.operation}`, resource: k.arn, context: {} }],
        kvs: k,
      };
    }
    else out = unknown(service, `service not modelled (X-Amz-Target ${header(headers, 'x-amz-target') ?? '-'})`);
  } catch (e) {
    if (!(e instanceof ClassifyError)) throw e;
    out = unknown(service, e.message);
  }
  for (const a of out.authorizations) a.context = { 'aws:RequestedRegion': region, ...(a.context ?? {}) };
  return { ...out, region, needsBody: nb };
}

// ---------------------------------------------------------------------------
// authorize
// ---------------------------------------------------------------------------

/**
 * A role's unique id as aws:userid shows it (`AROA…:session`). The real id is
 * random per role; this one is derived from the role ARN (stable, fake).
 */
export function roleUniqueId(roleArn) {
  const h = createHash('sha256').update(String(roleArn)).digest('hex').toUpperCase();
  return `AROA${h.replace(/[^A-Z0-9]/g, '').slice(0, 17)}`;
}

/** The ARN shown as "User: …" in a denial. */
export function principalArnOf(principal) {
  principal = normalizePrincipal(principal);
  if (principal.kind === 'anonymous') return 'anonymous';
  if (principal.kind === 'service') return principal.service;
  if (principal.kind === 'admin') return 'admin';
  return principal.sessionArn ?? principal.roleArn;
}

/**
 * The global condition keys of a request by `principal` (see "AWS global
 * condition context keys"). aws:SecureTransport is "true": on AWS the
 * functions, the state machine and CloudFront reach S3, DynamoDB, Secrets
 * Manager and SNS over HTTPS only (the SDKs' endpoints are https://); the plain
 * HTTP hop to 127.0.0.1 exists only because this is a test, so it must not
 * make a `Bool aws:SecureTransport false` deny fire. aws:SourceIp is the
 * loopback address the request really came from.
 */
export function globalContext(principal, { accountId = DEFAULT_ACCOUNT, region, now = new Date(), sourceIp = '127.0.0.1' } = {}) {
  principal = normalizePrincipal(principal);
  const ctx = {
    'aws:SecureTransport': 'true',
    'aws:SourceIp': sourceIp,
    'aws:CurrentTime': now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    'aws:EpochTime': String(Math.floor(now.getTime() / 1000)),
  };
  if (region) ctx['aws:RequestedRegion'] = region;
  if (principal?.kind === 'role') {
    const session = (principal.sessionArn ?? '').split('/').slice(2).join('/') || principal.name || 'session';
    ctx['aws:PrincipalArn'] = principal.roleArn;
    ctx['aws:PrincipalAccount'] = accountId;
    ctx['aws:PrincipalType'] = 'AssumedRole';
    ctx['aws:userid'] = `${roleUniqueId(principal.roleArn)}:${session}`;
    ctx['aws:PrincipalIsAWSService'] = 'false';
  } else if (principal?.kind === 'service') {
    ctx['aws:PrincipalIsAWSService'] = 'true';
    ctx['aws:PrincipalServiceName'] = principal.service;
    if (principal.sourceArn) ctx['aws:SourceArn'] = principal.sourceArn;
    if (principal.sourceAccount ?? accountId) ctx['aws:SourceAccount'] = principal.sourceAccount ?? accountId;
    // Any further keys the caller's service principal carries (e.g. aws:SourceOrgID).
    for (const [k, v] of Object.entries(principal.context ?? {})) if (!(k in ctx)) ctx[k] = v;
  }
  return ctx;
}

function accountOfArn(arn, fallback) {
  const parts = String(arn).split(':');
  return parts.length >= 5 && /^\d{12}$/.test(parts[4]) ? parts[4] : fallback;
}

const POLICY_TYPE_WORDS = {
  identity: 'an identity-based policy',
  resource: 'a resource-based policy',
  scp: 'a service control policy',
  rcp: 'a resource control policy',
  pb: 'a permissions boundary',
  vpce: 'a VPC endpoint policy',
  session: 'a session policy',
};

/**
 * A principal in the shapes callers hand it: `{ kind: 'role', roleArn,
 * sessionArn }`, `{ kind: 'service', service | principal, sourceArn?,
 * sourceAccount?, context? }`, `{ kind: 'anonymous' }`, or a string: an
 * assumed-role session ARN, a role ARN, or a service principal name
 * (`cloudfront.amazonaws.com`).
 */
export function normalizePrincipal(principal) {
  if (principal == null) return { kind: 'anonymous' };
  if (typeof principal === 'string') {
    const session = /^arn:aws:sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(principal);
    if (session) return { kind: 'role', roleArn: `arn:aws:iam::${session[1]}:role/${session[2]}`, sessionArn: principal, name: session[3] };
    if (/^arn:aws:iam::\d{12}:role\//.test(principal)) return { kind: 'role', roleArn: principal, sessionArn: undefined };
    if (/\.amazonaws\.com$/.test(principal)) return { kind: 'service', service: principal };
    throw new TypeError(`principal ${principal} is neither a role session, a role nor a service principal`);
  }
  if (principal.kind === 'service') {
    const service = principal.service ?? principal.principal;
    const context = principal.context ?? {};
    return {
      ...principal,
      service,
      sourceArn: principal.sourceArn ?? context['aws:SourceArn'],
      sourceAccount: principal.sourceAccount ?? context['aws:SourceAccount'],
    };
  }
  return principal;
}

/**
 * Evaluates each authorization of a request; all must be allowed.
 *
 * `principal`: `{ kind: 'role', roleArn, sessionArn, name? }` (identity
 * policies + resource policy), `{ kind: 'service', service:
 * 'cloudfront.amazonaws.com', sourceArn, sourceAccount? }` (resource policy
 * only) or `{ kind: 'anonymous' }` (resource policy only).
 * `identityPolicies`: [{ name, policy }]; `resourcePolicyFor(resourceArn)` ->
 * policy document or undefined.
 *
 * Returns `{ allowed: true }` or `{ allowed: false, action, resource, reason,
 * explicit, policyType?, statementId?, policyName? }` for the first denied
 * authorization. `reason` reads as AWS words it: "no identity-based policy
 * allows the s3:GetObject action", "explicit deny in a resource-based policy".
 * A validation error of iam-simulate (an action or resource type it does not
 * know, a malformed policy) is a denial carrying that error, never an allow.
 */
export async function authorize(authorizations, {
  principal,
  identityPolicies = [],
  resourcePolicyFor = () => undefined,
  accountId = DEFAULT_ACCOUNT,
  region,
  now = new Date(),
  sourceIp = '127.0.0.1',
} = {}) {
  principal = normalizePrincipal(principal);
  if (!authorizations?.length) {
    return { allowed: false, action: '-', resource: '-', reason: 'the request needs no authorization localaws knows of (unknown operation)', explicit: false };
  }
  const kind = principal?.kind ?? 'anonymous';
  const simPrincipal =
    kind === 'role' ? principal.sessionArn ?? principal.roleArn : kind === 'service' ? principal.service : anonymousPrincipal;
  const identity = kind === 'role' ? identityPolicies : [];
  for (const a of authorizations) {
    const context = { ...globalContext(principal, { accountId, region, now, sourceIp }), ...(a.context ?? {}) };
    for (const [k, v] of Object.entries(context)) {
      if (v === undefined || v === null) delete context[k];
      else if (!Array.isArray(v)) context[k] = String(v);
    }
    const resourcePolicy = a.resource === '*' ? undefined : resourcePolicyFor(a.resource);
    const simulation = {
      request: {
        principal: simPrincipal,
        action: a.action,
        resource: { resource: a.resource, accountId: accountOfArn(a.resource, accountId) },
        contextVariables: context,
      },
      identityPolicies: identity,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    };
    let result;
    try {
      result = await runSimulation(simulation, {});
    } catch (e) {
      return { allowed: false, action: a.action, resource: a.resource, explicit: false, reason: `iam-simulate failed: ${e.message}` };
    }
    if (result.resultType === 'error') {
      return {
        allowed: false,
        action: a.action,
        resource: a.resource,
        explicit: false,
        reason: `iam-simulate could not evaluate the request (${result.errors.message}${
          result.errors.identityPolicyErrors || result.errors.resourcePolicyErrors ? `: ${JSON.stringify(result.errors)}` : ''
        }); denied`,
        validationError: result.errors,
      };
    }
    if (result.overallResult === 'Allowed') continue;
    // A wildcard-typed resource (an S3 key containing `*`) is judged as the
    // pattern; a denial of the exact pattern shows in the first result.
    const analysis = result.resultType === 'single' ? result.result.analysis : result.results[0]?.analysis;
    const reasons = analysis ? getDenialReasons(analysis) : [];
    const explicitReason = reasons.find((r) => r.denialType === 'Explicit');
    if (result.overallResult === 'ExplicitlyDenied' && explicitReason) {
      return {
        allowed: false,
        action: a.action,
        resource: a.resource,
        explicit: true,
        policyType: explicitReason.policyType,
        statementId: explicitReason.statementId,
        policyName: explicitReason.policyIdentifier,
        reason: `explicit deny in ${POLICY_TYPE_WORDS[explicitReason.policyType] ?? explicitReason.policyType}`,
      };
    }
    const type = kind === 'role' ? 'identity-based' : 'resource-based';
    return {
      allowed: false,
      action: a.action,
      resource: a.resource,
      explicit: false,
      policyType: kind === 'role' ? 'identity' : 'resource',
      reason: `no ${type} policy allows the ${a.action} action`,
      evaluated: {
        identityPolicies: identity.map((p) => p.name),
        resourcePolicy: resourcePolicy ? true : false,
      },
    };
  }
  return { allowed: true };
}

// ---------------------------------------------------------------------------
// accessDenied
// ---------------------------------------------------------------------------

/** The words AWS puts after the resource: "with an explicit deny in …" or "because …". */
function because(reason, explicit) {
  return explicit ? `with an ${reason}` : `because ${reason}`;
}

/**
 * The answer AWS gives to a denied request, in the service's shape:
 * - S3: 403 application/xml `<Error><Code>AccessDenied</Code><Message>User: <arn> is
 *   not authorized to perform: <action> on resource: "<arn>" because no
 *   identity-based policy allows the <action> action</Message>…` ("with an explicit
 *   deny in a resource-based policy" for explicit denies), as documented in
 *   "Troubleshoot access denied (403 Forbidden) errors in Amazon S3"; plain
 *   "Access Denied" for anonymous callers (S3 gives the detailed message only to
 *   callers of the same account or organization); HEAD: 403 without a body.
 * - DynamoDB: 400 `{"__type": "com.amazon.coral.service#AccessDeniedException",
 *   "Message": "User: … is not authorized to perform: dynamodb:GetItem on resource:
 *   arn:… because …"}` (no quotes around the resource).
 * - Secrets Manager: 400 `{"__type": "AccessDeniedException", "Message": "User: … on
 *   resource: <SecretId as the caller gave it> because …"}`.
 * - SNS: 403 `<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code>
 *   <Message>User: … is not authorized to perform: SNS:Publish on resource: arn:…
 *   because …</Message></Error>…` (SNS writes the action with upper-case "SNS:").
 * `reason` may be iam.authorize's reason or any sentence (e.g. for an unknown operation).
 */
export function accessDenied({ service, operation, method = 'GET', principalArn, action, resource, reason, explicit = false, messageResource }) {
  const tail = reason ? ` ${because(reason, explicit)}` : '';
  const who = `User: ${principalArn}`;
  if (service === 's3') {
    const anonymous = !principalArn || principalArn === 'anonymous';
    const message = anonymous ? 'Access Denied' : `${who} is not authorized to perform: ${action} on resource: "${resource}"${tail}`;
    return errorResponse('s3', { status: 403, code: 'AccessDenied', message, method });
  }
  if (service === 'dynamodb') {
    return errorResponse('dynamodb', {
      status: 400,
      code: 'AccessDeniedException',
      messageKey: 'Message',
      message: `${who} is not authorized to perform: ${action} on resource: ${resource}${tail}`,
    });
  }
  if (service === 'secretsmanager') {
    return errorResponse('secretsmanager', {
      status: 400,
      code: 'AccessDeniedException',
      message: `${who} is not authorized to perform: ${action} on resource: ${messageResource ?? resource}${tail}`,
    });
  }
  if (service === 'sns') {
    const snsAction = String(action).replace(/^sns:/, 'SNS:');
    return errorResponse('sns', {
      status: 403,
      code: 'AuthorizationError',
      message: `${who} is not authorized to perform: ${snsAction} on resource: ${resource}${tail.replaceAll(action, snsAction)}`,
    });
  }
  return errorResponse('dynamodb', { status: 400, code: 'AccessDeniedException', message: `${who} is not authorized to perform: ${action}${tail}` });
}

/** The answer to an access key the harness does not know, per service. */
export function unknownAccessKey(service, accessKeyId, method = 'GET') {
  if (service === 's3') {
    return errorResponse('s3', {
      status: 403,
      code: 'InvalidAccessKeyId',
      message: 'The AWS Access Key Id you provided does not exist in our records.',
      method,
      extra: { AWSAccessKeyId: accessKeyId },
    });
  }
  if (service === 'sns') {
    // Query-protocol services answer InvalidClientTokenId.
    return errorResponse('sns', { status: 403, code: 'InvalidClientTokenId', message: 'The security token included in the request is invalid.' });
  }
  return errorResponse(service === 'secretsmanager' ? 'secretsmanager' : 'dynamodb', {
    status: 400,
    code: 'UnrecognizedClientException',
    message: 'The security token included in the request is invalid.',
  });
}

/** The answer to an unsigned request to a service that needs a signature. */
export function missingAuthentication(service) {
  if (service === 'sns') {
    return errorResponse('sns', { status: 403, code: 'MissingAuthenticationToken', message: 'Request is missing Authentication Token' });
  }
  return errorResponse(service === 'secretsmanager' ? 'secretsmanager' : 'dynamodb', {
    status: 400,
    code: 'MissingAuthenticationTokenException',
    message: 'Request is missing Authentication Token',
  });
}
