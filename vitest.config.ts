import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit-integration` runs on every Node version CI tests (22 and 26);
 * `once` holds the slow whole-system checks (conformance suite, the container runtime stage, the
 * Helm chart) that CI runs a single time.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit-integration',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'once',
          include: ['test/conformance/**/*.test.ts', 'test/deploy/**/*.test.ts'],
          testTimeout: 600_000,
        },
      },
    ],
  },
});
