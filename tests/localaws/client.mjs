// Small AWS-shaped HTTP calls the harness itself makes (to moto, or through
// the gateway as a given principal). Requests carry a SigV4-shaped
// Authorization header so that moto picks the service and region from its
// credential scope and the gateway the caller from its access key; neither
// verifies signatures (tests/localaws/README.md).

import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function authorization(accessKeyId, service, region = 'us-east-1') {
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
  return `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${day}/${region}/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=localaws`;
}

/** One request; resolves with {status, headers, body (Buffer)} or, with `stream: true`, {status, headers, body (IncomingMessage)}. */
export function request(baseUrl, { accessKeyId, service, method = 'GET', path = '/', headers = {}, body, stream = false }) {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (accessKeyId) h.authorization = authorization(accessKeyId, service);
    h['x-amz-date'] = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    if (body !== undefined && h['content-length'] === undefined) h['content-length'] = Buffer.byteLength(body);
    const req = http.request(url, { method, headers: h, agent }, (res) => {
      if (stream) {
        resolve({ status: res.statusCode, headers: res.headers, body: res });
        return;
      }
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** A JSON-protocol call (DynamoDB, Secrets Manager, ...). Throws on an error answer. */
export async function jsonCall(baseUrl, { accessKeyId, service, target, version = '1.0', body }) {
  const res = await request(baseUrl, {
    accessKeyId,
    service,
    method: 'POST',
    path: '/',
    headers: { 'content-type': `application/x-amz-json-${version}`, 'x-amz-target': target },
    body: JSON.stringify(body),
  });
  const text = res.body.toString('utf8');
  if (res.status >= 300) {
    const e = new Error(`${target}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    e.status = res.status;
    e.body = text;
    throw e;
  }
  return text ? JSON.parse(text) : {};
}

/** A query-protocol call (SNS): form-encoded; resolves with the XML text. */
export async function queryCall(baseUrl, { accessKeyId, service, params }) {
  const res = await request(baseUrl, {
    accessKeyId,
    service,
    method: 'POST',
    path: '/',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: new URLSearchParams(params).toString(),
  });
  const text = res.body.toString('utf8');
  if (res.status >= 300) {
    const e = new Error(`${params.Action}: HTTP ${res.status}: ${text.slice(0, 500)}`);
    e.status = res.status;
    e.body = text;
    throw e;
  }
  return text;
}

export function xmlText(xml, tag) {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (!m) return null;
  return m[1]
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** S3 object path for path-style addressing: each key segment percent-encoded. */
export function objectPath(bucket, key) {
  return `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/** S3 through `baseUrl` as `accessKeyId`: the calls the harness needs. */
export function s3Client(baseUrl, accessKeyId) {
  return {
    async getObject(bucket, key) {
      const res = await request(baseUrl, { accessKeyId, service: 's3', path: objectPath(bucket, key) });
      if (res.status !== 200) {
        const e = new Error(`GetObject s3://${bucket}/${key}: HTTP ${res.status} ${xmlText(res.body.toString('utf8'), 'Code') ?? ''} ${xmlText(res.body.toString('utf8'), 'Message') ?? ''}`.trim());
        e.status = res.status;
        throw e;
      }
      return res.body;
    },
    async putObject(bucket, key, body, headers = {}) {
      const res = await request(baseUrl, { accessKeyId, service: 's3', method: 'PUT', path: objectPath(bucket, key), headers, body });
      if (res.status !== 200) {
        throw new Error(`PutObject s3://${bucket}/${key}: HTTP ${res.status} ${xmlText(res.body.toString('utf8'), 'Code') ?? ''} ${xmlText(res.body.toString('utf8'), 'Message') ?? ''}`.trim());
      }
    },
    object(bucket, key, { method = 'GET', headers = {} } = {}) {
      return request(baseUrl, { accessKeyId, service: 's3', method, path: objectPath(bucket, key), headers, stream: true });
    },
  };
}

export function snsClient(baseUrl, accessKeyId) {
  return {
    async publish(topicArn, message, subject) {
      const params = { Action: 'Publish', Version: '2010-03-31', TopicArn: topicArn, Message: message };
      if (subject !== undefined) params.Subject = subject;
      const xml = await queryCall(baseUrl, { accessKeyId, service: 'sns', params });
      const id = xmlText(xml, 'MessageId');
      if (!id) throw new Error(`Publish: no MessageId in ${xml.slice(0, 300)}`);
      return id;
    },
  };
}
