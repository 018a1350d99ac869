import type { IncomingMessage } from 'node:http';
import { type Refusal, refuse } from '../errors.js';
import type { CompiledRoute } from './router.js';

export const ALLOW = 'GET, POST, DELETE, OPTIONS';

/** Query parameters that carry credentials; refused so they never land in access logs (OAuth 2.1 §5.1.1). */
const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set([
  'access_token',
  'token',
  'id_token',
  'api_key',
  'apikey',
  'api-key',
  'x-api-key',
  'key',
  'auth',
  'authorization',
  'bearer',
  'jwt',
  'client_secret',
  'password',
  'secret',
]);

export type GuardResult =
  | { readonly kind: 'pass'; readonly method: 'POST' | 'GET' | 'DELETE'; readonly origin?: string }
  | { readonly kind: 'preflight'; readonly origin: string }
  | Refusal;

/**
 * DESIGN.md step 3: cheap checks on the request line and headers, before any credential is
 * looked at or any body byte read.
 */
export function guardRequest(req: IncomingMessage, route: CompiledRoute): GuardResult {
  const origin = req.headers.origin;
  if (origin !== undefined && !route.allowedOrigins.has(origin)) return refuse('origin_not_allowed');
  const method = req.method;
  if (method === 'OPTIONS') {
    return origin === undefined
      ? refuse('method_not_allowed', { headers: { allow: ALLOW } })
      : { kind: 'preflight', origin };
  }
  if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
    return refuse('method_not_allowed', { headers: { allow: ALLOW } });
  }
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q !== -1 && hasCredentialParam(url.slice(q + 1))) return refuse('credential_in_query');
  const headers = req.headers;
  if (headers['content-length'] !== undefined && headers['transfer-encoding'] !== undefined)
    return refuse('bad_framing');
  if (headers['content-encoding'] !== undefined) return refuse('encoded_body');
  if (method === 'POST' && !isJson(headers['content-type'])) return refuse('unsupported_media_type');
  return origin === undefined ? { kind: 'pass', method } : { kind: 'pass', method, origin };
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'application/json';
}

function hasCredentialParam(query: string): boolean {
  for (const name of new URLSearchParams(query).keys()) {
    if (CREDENTIAL_PARAMS.has(name.toLowerCase())) return true;
  }
  return false;
}
