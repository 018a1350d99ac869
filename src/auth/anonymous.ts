import type { Identity } from './identity.js';

/** The identity of a caller who presented no credential, on a route that lists `anonymous`. */
export function createAnonymousIdentity(scopes: readonly string[]): Identity {
  return Object.freeze({
    key: 'anonymous',
    subject: 'anonymous',
    methods: Object.freeze(['anonymous'] as const),
    scopes: new Set(scopes),
  });
}
