// Recomputes every vector in vectors.json with Node's crypto, building the
// canonical strings from the components by the rules of SPEC.md part 2
// (an implementation independent of the Go code). Exits 1 on any mismatch,
// or when fewer than one v1 and one legacy vector were checked.
// Usage: node crosscheck.mjs [path/to/vectors.json]
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'vectors.json');
const { vectors } = JSON.parse(readFileSync(file, 'utf8'));

const hasControl = (s) => /[\x00-\x1f\x7f]/.test(s);
const SERVICE = /^[a-z](?:[a-z0-9]|-(?!-))*$/;
const service = (s) => s.length <= 63 && SERVICE.test(s) && !s.endsWith('-');
const checks = {
  timestamp: (s) => /^(0|[1-9][0-9]{0,14})$/.test(s),
  method: (s) => /^[A-Z][A-Z_-]{0,31}$/.test(s),
  path: (s) => s.startsWith('/') && !hasControl(s) && !s.includes('?'),
  query: (s) => !hasControl(s),
};
const v1Checks = {
  environment: (s) => ['development', 'staging', 'production'].includes(s),
  caller: service,
  target: service,
  'key id': (s) => /^[A-Za-z0-9._:-]{1,64}$/.test(s),
  'request id': (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s),
  'content type': (s) => !hasControl(s) && !s.startsWith(' ') && !s.endsWith(' '),
};

function fields(v) {
  return {
    environment: v.environment, caller: v.caller, target: v.target, 'key id': v.key_id,
    'request id': v.request_id, 'content type': v.content_type,
    timestamp: v.timestamp, method: v.method, path: v.path, query: v.query,
  };
}

// Returns [canonical Buffer] or throws {component}.
function canonical(v, body) {
  const f = fields(v);
  const all = v.scheme === 'legacy' ? checks : { ...v1Checks, ...checks };
  for (const [name, ok] of Object.entries(all)) {
    if (!ok(f[name])) throw { component: name };
  }
  if (v.scheme === 'legacy') {
    const requestPath = v.query !== '' ? `${v.path}?${v.query}` : v.path;
    return Buffer.concat([Buffer.from(`${v.method}\n${requestPath}\n${v.timestamp}\n`, 'utf8'), body]);
  }
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return Buffer.from([
    'XSVC-HMAC-SHA256-V1', v.environment, v.caller, v.target, v.key_id, v.timestamp,
    v.request_id, v.method, v.path, v.query, v.content_type, bodyHash,
  ].join('\n'), 'utf8');
}

let failed = 0;
const ok = { v1: 0, legacy: 0, refused: 0 };
for (const v of vectors) {
  const key = v.key_base64 !== undefined ? Buffer.from(v.key_base64, 'base64') : Buffer.from(v.key, 'utf8');
  const body = v.body_base64 !== undefined ? Buffer.from(v.body_base64, 'base64') : Buffer.from(v.body ?? '', 'utf8');
  let canon;
  try {
    canon = canonical(v, body);
  } catch (e) {
    if (v.result === 'invalid_component' && e.component === v.component) { ok.refused++; continue; }
    console.error(`FAIL ${v.name}: refused on ${e.component ?? e}, expected ${v.result}`);
    failed++; continue;
  }
  if (v.result !== 'ok') { console.error(`FAIL ${v.name}: accepted, expected ${v.result}`); failed++; continue; }
  const sig = createHmac('sha256', key).update(canon).digest('hex');
  if (canon.toString('utf8') !== v.canonical) { console.error(`FAIL ${v.name}: canonical string differs`); failed++; continue; }
  if (sig !== v.signature) { console.error(`FAIL ${v.name}: signature ${sig} != ${v.signature}`); failed++; continue; }
  ok[v.scheme === 'legacy' ? 'legacy' : 'v1']++;
}
console.log(`crosscheck (node ${process.version}): v1 ${ok.v1} ok, legacy ${ok.legacy} ok, ${ok.refused} refused as expected, ${failed} failed`);
if (failed > 0 || ok.v1 < 1 || ok.legacy < 1) process.exit(1);
