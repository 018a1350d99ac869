import { describe, expect, it } from 'vitest';
import { Cancellation } from '../../src/cancellation.js';

describe('Cancellation', () => {
  it('runs every listener once, in the order added, and never again', () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    cancellation.onCancel(() => calls.push('a'));
    cancellation.onCancel(() => calls.push('b'));
    cancellation.onCancel(() => calls.push('c'));
    cancellation.cancel();
    cancellation.cancel();
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(cancellation.cancelled).toBe(true);
  });

  it('runs a listener added after the cancel at once', () => {
    const cancellation = new Cancellation();
    cancellation.cancel();
    let ran = 0;
    cancellation.onCancel(() => ran++);
    expect(ran).toBe(1);
  });

  it('forgets a listener taken off, first or later', () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    const first = (): number => calls.push('first');
    const second = (): number => calls.push('second');
    const third = (): number => calls.push('third');
    cancellation.onCancel(first);
    cancellation.onCancel(second);
    cancellation.onCancel(third);
    cancellation.off(first);
    cancellation.off(third);
    cancellation.cancel();
    expect(calls).toEqual(['second']);
  });

  it('does nothing for a request that was never cancelled', () => {
    const cancellation = new Cancellation();
    let ran = 0;
    cancellation.onCancel(() => ran++);
    expect(ran).toBe(0);
    expect(cancellation.cancelled).toBe(false);
  });
});
