/**
 * How the exchange tells its upstream that the client went away (DESIGN.md step 10): the HTTP
 * upstream aborts its request, a stdio upstream sends `notifications/cancelled`, a federation
 * cancels every member it asked. One per sent request, on the hot path, so it is the least that
 * does the job — no `EventEmitter` (an events object, `once` wrappers) and no `AbortController`
 * (an `AbortSignal` is an `EventTarget`, several times dearer to make).
 */
export class Cancellation {
  /** True once {@link cancel} ran: a listener added later runs at once. */
  cancelled = false;
  private listener: (() => void) | undefined = undefined;
  /** More listeners than one (a federation's members); rarely needed, so made when needed. */
  private more: (() => void)[] | undefined = undefined;

  /** Runs `listener` once when the request is cancelled — at once when it already was. */
  onCancel(listener: () => void): void {
    if (this.cancelled) listener();
    else if (this.listener === undefined) this.listener = listener;
    else if (this.more === undefined) this.more = [listener];
    else this.more.push(listener);
  }

  /** Forgets `listener` (its request finished: nothing left to cancel). */
  off(listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
    else if (this.more !== undefined) {
      const at = this.more.indexOf(listener);
      if (at !== -1) this.more.splice(at, 1);
    }
  }

  /** Cancels once: every listener runs, in the order added; later calls do nothing. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const { listener, more } = this;
    this.listener = undefined;
    this.more = undefined;
    listener?.();
    if (more !== undefined) for (const next of more) next();
  }
}
