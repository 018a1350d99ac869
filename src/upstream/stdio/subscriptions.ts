/**
 * Which legacy sessions of one stdio process subscribed to which resource URIs. The process sees
 * one subscription per URI however many sessions hold it — subscribed with the first, unsubscribed
 * with the last — so one session's `resources/unsubscribe` never ends another's; and its
 * `notifications/resources/updated` reaches only the sessions that subscribed (each authorized for
 * the URI by policy when it did), never every session on a shared process.
 */
export class ResourceSubscriptions {
  private readonly byUri = new Map<string, Set<string>>();

  /** `session` subscribes to `uri`: true when it is the first, and the process must be asked. */
  add(uri: string, session: string): boolean {
    let sessions = this.byUri.get(uri);
    const first = sessions === undefined;
    if (sessions === undefined) {
      sessions = new Set();
      this.byUri.set(uri, sessions);
    }
    sessions.add(session);
    return first;
  }

  /** `session` lets go of `uri`: true when it was the last, and the process must be told. */
  remove(uri: string, session: string): boolean {
    const sessions = this.byUri.get(uri);
    if (sessions === undefined || !sessions.delete(session)) return false;
    if (sessions.size > 0) return false;
    this.byUri.delete(uri);
    return true;
  }

  /** Every URI some session holds. */
  uris(): string[] {
    return [...this.byUri.keys()];
  }

  /** Whether `session` holds `uri`. */
  holds(uri: string, session: string): boolean {
    return this.byUri.get(uri)?.has(session) === true;
  }

  /** The session ended: the URIs it was the last subscriber of (the process must be told). */
  dropSession(session: string): string[] {
    const last: string[] = [];
    for (const [uri, sessions] of this.byUri)
      if (sessions.delete(session) && sessions.size === 0) {
        this.byUri.delete(uri);
        last.push(uri);
      }
    return last;
  }
}
