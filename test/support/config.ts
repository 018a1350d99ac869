/** Reading what the loader says about a policy text, for the configuration unit tests. */
import { ConfigError, parseConfig } from '../../src/config/load.js';

/** The smallest valid policy: one anonymous route `/mcp`; a test appends route lines (4 spaces in). */
export const MINIMAL_POLICY = `identities:
  anonymous: {}
routes:
  - route: /mcp
    resource: http://127.0.0.1:8443/mcp
    upstream: http://127.0.0.1:3000/mcp
    authentication: { methods: [anonymous] }
`;

/**
 * The problems `parseConfig` reports for `text` (as file `portcullis.yaml`), one a line — `[]`
 * when the file is accepted. Anything but a `ConfigError` is rethrown: a loader bug is no finding.
 */
export function configProblems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, { file: 'portcullis.yaml', env });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}
