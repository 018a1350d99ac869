import { describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/proxy/seal.js';
import { RELATED_TASK_META, sealTaskIds, TaskIds } from '../../../../src/upstream/federation/tasks.js';

const scope = { route: '/mcp', identity: 'apiKey:a' };

describe('TaskIds', () => {
  it('seals one id per task, which opens only for the same route and identity', () => {
    const ids = new TaskIds(createSealer(undefined));
    const sealed = ids.seal(scope, { server: 'every', id: 't-1' });
    expect(ids.seal(scope, { server: 'every', id: 't-1' })).toBe(sealed);
    expect(sealed).not.toContain('t-1');
    expect(ids.open(scope, sealed)).toEqual({ server: 'every', id: 't-1' });
    expect(ids.open({ ...scope, identity: 'apiKey:b' }, sealed)).toBeUndefined();
    expect(ids.open({ ...scope, route: '/other' }, sealed)).toBeUndefined();
    expect(ids.open(scope, 't-1')).toBeUndefined();
    expect(ids.open(scope, 42)).toBeUndefined();
  });

  it('opens in another replica with the same keys', () => {
    const key = Buffer.alloc(32, 3).toString('base64');
    const sealed = new TaskIds(createSealer([key])).seal(scope, { server: 's', id: 'x' });
    expect(new TaskIds(createSealer([key])).open(scope, sealed)).toEqual({ server: 's', id: 'x' });
  });
});

describe('sealTaskIds', () => {
  const seal = (id: string) => `sealed(${id})`;

  it('seals a created task, a task result, a status notification and related-task metadata', () => {
    expect(sealTaskIds({ id: 1, result: { task: { taskId: 'a', status: 'working' } } }, seal)).toEqual({
      id: 1,
      result: { task: { taskId: 'sealed(a)', status: 'working' } },
    });
    expect(sealTaskIds({ id: 2, result: { taskId: 'b', status: 'completed' } }, seal)).toMatchObject({
      result: { taskId: 'sealed(b)' },
    });
    expect(
      sealTaskIds({ method: 'notifications/tasks/status', params: { taskId: 'c', status: 'working' } }, seal),
    ).toMatchObject({ params: { taskId: 'sealed(c)' } });
    expect(
      sealTaskIds({ id: 3, result: { content: [], _meta: { [RELATED_TASK_META]: { taskId: 'd' } } } }, seal),
    ).toMatchObject({ result: { _meta: { [RELATED_TASK_META]: { taskId: 'sealed(d)' } } } });
    expect(
      sealTaskIds(
        {
          id: 'e',
          method: 'elicitation/create',
          params: { _meta: { [RELATED_TASK_META]: { taskId: 'e' } } },
        },
        seal,
      ),
    ).toMatchObject({ params: { _meta: { [RELATED_TASK_META]: { taskId: 'sealed(e)' } } } });
  });

  it('leaves a message that names no task alone, and a taskId in another notification', () => {
    expect(sealTaskIds({ id: 1, result: { content: [] } }, seal)).toBeUndefined();
    expect(sealTaskIds({ method: 'notifications/message', params: { taskId: 'x' } }, seal)).toBeUndefined();
  });
});
