/**
 * Task ids bound to their creator on a single-server route (issue 17; `upstream/task-binding.ts`):
 * a route whose `methods` grant the tasks methods, in front of `server-everything` over stdio (a
 * real task: its research query runs for a few seconds). The creator polls and reads its task
 * under a sealed id; another caller with the same scopes finds no task and nothing is forwarded.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { everythingStdio } from '../fixtures/everything.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { legacyPost, messagesOf, openSession } from '../support/raw-mcp.js';

const creator = newApiKey();
const rival = newApiKey();
let gateway: TestGateway;

beforeAll(async () => {
  gateway = await startTestGateway({
    policy: `identities:
  apiKeys:
    - { id: creator, hash: "${creator.hash}", scopes: [research] }
    - { id: rival, hash: "${rival.hash}", scopes: [research] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${everythingStdio(', processes: shared')}
    authentication: { methods: [apiKey] }
    tools: { "simulate-research-query": research }
    methods: { "tasks/*": research }
`,
  });
});

afterAll(async () => {
  await gateway?.close();
});

it('seals the task id to its creator: polled and read by it, no task for another caller, tasks/list refused', async () => {
  const url = `${gateway.url}/mcp`;
  const session = await openSession(url, creator.key);
  const created = await messagesOf(
    await legacyPost(url, creator.key, session, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'simulate-research-query', arguments: { topic: 'bound tasks' }, task: { ttl: 60_000 } },
    }),
  );
  const task = (created.at(-1)?.result as { task?: { taskId?: string; status?: string } } | undefined)?.task;
  expect(task?.status).toBe('working');
  const taskId = task?.taskId as string;
  expect(taskId).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  const get = (key: string, inSession: string) =>
    legacyPost(url, key, inSession, { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId } });
  const polled = await messagesOf(await get(creator.key, session));
  expect(polled.at(-1)?.result).toMatchObject({ taskId });
  // On a shared process the server holds every caller's tasks: only the seal keeps them apart.
  const rivalSession = await openSession(url, rival.key);
  const stolen = await get(rival.key, rivalSession);
  expect(stolen.status).toBe(400);
  expect(await stolen.json()).toMatchObject({ error: { code: -32602 } });
  const cancel = await legacyPost(url, rival.key, rivalSession, {
    jsonrpc: '2.0',
    id: 3,
    method: 'tasks/cancel',
    params: { taskId },
  });
  expect(cancel.status).toBe(400);
  const listed = await legacyPost(url, rival.key, rivalSession, {
    jsonrpc: '2.0',
    id: 4,
    method: 'tasks/list',
  });
  expect(listed.status).toBeGreaterThanOrEqual(400);
  const result = await messagesOf(
    await legacyPost(url, creator.key, session, {
      jsonrpc: '2.0',
      id: 5,
      method: 'tasks/result',
      params: { taskId },
    }),
  );
  expect(JSON.stringify(result.at(-1)?.result)).toContain('bound tasks');
}, 30_000);
