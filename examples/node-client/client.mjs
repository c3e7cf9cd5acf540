// A plain Node.js client for crossservice, written from SPEC.md alone: Node's
// own crypto and https, no npm packages. It signs one request with the v1
// scheme and one with the legacy scheme, sends each to financial-service's
// /echo route over TLS 1.3 with a client certificate, and then sends each
// again with one byte of the body changed after signing, which must be refused.
//
// Environment (the original names, SPEC.md "Keys from the environment"):
//   FINANCIAL_SERVICE_API_URL   base URL of financial-service, e.g. https://127.0.0.1:8443
//   NODE_CLIENT_API_KEY         the v1 key of caller "node-client" (used as its UTF-8 bytes)
//   NODE_CLIENT_API_KEY_ID      its key id (default "env")
//   LEGACY_GATEWAY_API_KEY      the legacy key of caller "legacy-gateway"
//   APP_ENV                     development | staging | production (signed by v1)
//   XSVC_CERT_DIR               ca.pem, <caller>.pem and <caller>-key.pem (mutual TLS)
//
// Exit status 0 when the two signed requests are accepted and the two tampered
// ones refused with 401 signature_invalid; 1 otherwise.

import { createHash, createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

const TARGET = 'financial-service';

function need(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    console.error(`node-client: missing environment variable ${name}`);
    process.exit(1);
  }
  return v;
}

const baseURL = need('FINANCIAL_SERVICE_API_URL');
const environment = need('APP_ENV');
const certDir = need('XSVC_CERT_DIR');

// SPEC.md 3.2: no component may hold a byte below 0x20 or 0x7f.
function checkComponent(name, s) {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new Error(`${name} holds a control character`);
  return s;
}

// SPEC.md 3.3: the v1 canonical string, twelve lines joined by \n, no trailing newline.
function v1Canonical({ env, caller, target, keyId, timestamp, requestId, method, path, query, contentType, body }) {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return [
    'XSVC-HMAC-SHA256-V1', env, caller, target, keyId, timestamp, requestId,
    method, path, query, contentType, bodyHash,
  ].map((c, i) => checkComponent(`component ${i + 1}`, c)).join('\n');
}

// SPEC.md 4: lowercase hex HMAC-SHA256, the key used as the UTF-8 bytes of its string.
function hmacHex(key, data) {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(data).digest('hex');
}

function target(url) {
  const u = new URL(url);
  return { u, path: u.pathname === '' ? '/' : u.pathname, query: u.search.startsWith('?') ? u.search.slice(1) : '' };
}

function signV1(method, url, body, contentType, caller, key, keyId) {
  const { path, query } = target(url);
  const timestamp = String(Date.now());
  const requestId = randomUUID(); // canonical lowercase; SPEC.md accepts any UUID version
  const canonical = v1Canonical({
    env: environment, caller, target: TARGET, keyId, timestamp, requestId,
    method, path, query, contentType, body,
  });
  return {
    'X-Request-ID': requestId,
    'X-Timestamp': timestamp,
    'X-Service-Name': caller,
    'X-Key-ID': keyId,
    'X-Signature': hmacHex(key, canonical),
  };
}

// SPEC.md 5: METHOD \n REQUEST_PATH (with ?query when there is one) \n TIMESTAMP \n BODY.
function signLegacy(method, url, body, caller, key) {
  const { path, query } = target(url);
  const timestamp = String(Date.now());
  const requestPath = query === '' ? path : `${path}?${query}`;
  const canonical = Buffer.concat([Buffer.from(`${method}\n${requestPath}\n${timestamp}\n`, 'utf8'), body]);
  return {
    'X-Request-ID': randomUUID(),
    'X-Timestamp': timestamp,
    'X-Service-Name': caller,
    'X-Signature': hmacHex(key, canonical),
  };
}

function send(method, url, headers, body, caller) {
  const { u } = target(url);
  return new Promise((resolve, reject) => {
    const req = request({
      method, host: u.hostname, port: u.port, path: u.pathname + u.search,
      headers: { ...headers, 'Content-Length': String(body.length) },
      minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
      ca: readFileSync(join(certDir, 'ca.pem')),
      cert: readFileSync(join(certDir, `${caller}.pem`)),
      key: readFileSync(join(certDir, `${caller}-key.pem`)),
      timeout: 10000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function flipOneByte(body) {
  const b = Buffer.from(body);
  b[b.length - 2] ^= 0x01; // a digit inside the JSON: still valid JSON, different bytes
  return b;
}

let failures = 0;
function expect(label, res, status, code) {
  let got = `${res.status}`;
  let ok = res.status === status;
  if (code) {
    try {
      const p = JSON.parse(res.body);
      got += ` ${p.code}`;
      ok = ok && p.code === code;
    } catch {
      ok = false;
    }
  } else {
    try {
      const e = JSON.parse(res.body);
      got += ` caller=${e.caller} scheme=${e.scheme}`;
    } catch {
      ok = false;
    }
  }
  if (!ok) failures++;
  console.log(`  ${label.padEnd(40)} -> ${got.padEnd(44)} ${ok ? 'as expected' : `UNEXPECTED (want ${status}${code ? ' ' + code : ''})`}`);
}

const url = `${baseURL}/echo?source=node`;
const contentType = 'application/json';
const body = Buffer.from(JSON.stringify({ hello: 'from node', n: 1 }), 'utf8');

// v1: caller node-client.
{
  const key = need('NODE_CLIENT_API_KEY');
  const keyId = process.env.NODE_CLIENT_API_KEY_ID || 'env';
  let h = signV1('POST', url, body, contentType, 'node-client', key, keyId);
  expect('v1 request', await send('POST', url, { ...h, 'Content-Type': contentType }, body, 'node-client'), 200);
  h = signV1('POST', url, body, contentType, 'node-client', key, keyId);
  expect('v1 request, one body byte changed', await send('POST', url, { ...h, 'Content-Type': contentType }, flipOneByte(body), 'node-client'), 401, 'signature_invalid');
}

// legacy: caller legacy-gateway, registered for the original algorithm.
{
  const key = need('LEGACY_GATEWAY_API_KEY');
  let h = signLegacy('POST', url, body, 'legacy-gateway', key);
  expect('legacy request', await send('POST', url, { ...h, 'Content-Type': contentType }, body, 'legacy-gateway'), 200);
  h = signLegacy('POST', url, body, 'legacy-gateway', key);
  expect('legacy request, one body byte changed', await send('POST', url, { ...h, 'Content-Type': contentType }, flipOneByte(body), 'legacy-gateway'), 401, 'signature_invalid');
}

if (failures > 0) {
  console.log(`node-client: ${failures} unexpected result(s)`);
  process.exit(1);
}
console.log('node-client: all four results as expected');
