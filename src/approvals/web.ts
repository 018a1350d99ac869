import { hash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { readCapped } from '../server/body.js';
import {
  type ApprovalsConfig,
  CALLBACK_PATH,
  LOGIN_COOKIE,
  type Login,
  type Person,
  pageUrl,
  SESSION_COOKIE,
} from './login.js';
import { approvalPage, messagePage, PAGE_HEADERS, statusPage } from './pages.js';
import { type Approval, type ApprovalStore, isApprovalId } from './store.js';

/**
 * The approval pages on the main listener, under `/portcullis/` (DESIGN.md "human confirmation"):
 * - `GET /portcullis/approvals/<id>`: the approver's page (login first); approve and deny are a
 *   `POST` to the same path with a CSRF token bound to the session and the approval, from the
 *   gateway's own origin;
 * - `GET /portcullis/approvals/<id>/status`: the requester's page (login as the same subject);
 * - `GET /portcullis/login?next=…` and `GET /portcullis/callback`: the OpenID Connect login.
 * Who may approve, and that nobody approves their own call, is decided here.
 */

export const PAGES_PREFIX = '/portcullis/';

export interface ApprovalPagesDeps {
  readonly approvals: ApprovalsConfig;
  readonly store: ApprovalStore;
  readonly login: Login;
  readonly logger: Logger;
  /** Called once per decision taken on a page (audit, metrics, the caller's notification). */
  readonly onDecision: (approval: Approval, by: Person) => void;
  /** A refused attempt to decide (self-approval, not an approver, a bad CSRF token): audited. */
  readonly onRefused: (
    id: string,
    approval: Approval | undefined,
    by: Person | undefined,
    why: string,
  ) => void;
  readonly now?: () => number;
}

/** The most a decision's form body may be. */
const MAX_FORM_BYTES = 4_096;

export function createApprovalPages(
  deps: ApprovalPagesDeps,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { approvals, store, login } = deps;
  const now = deps.now ?? Date.now;
  const publicUrl = approvals.publicUrl as string;
  const origin = new URL(publicUrl).origin;
  const issuer = approvals.oidc?.issuer;

  const send = (
    res: ServerResponse,
    status: number,
    html: string,
    headers: Record<string, string | string[]> = {},
  ) => {
    res.writeHead(status, { ...PAGE_HEADERS, ...headers, 'content-length': String(Buffer.byteLength(html)) });
    res.end(html);
  };
  const redirect = (res: ServerResponse, location: string, cookies: string[] = [], status = 302) => {
    res.writeHead(status, { location, 'cache-control': 'no-store', 'set-cookie': cookies });
    res.end();
  };

  /**
   * Whether `person` is the one who asked for `approval`: a JWT caller of the login's issuer by
   * its subject, or whoever `owners` names for the requester's identity (any requester, a JWT
   * caller of another issuer too). Issuers compare as URLs (a trailing slash is no other issuer).
   */
  const isRequester = (approval: Approval, person: Person): boolean => {
    const { requester } = approval;
    if (
      requester.issuer !== undefined &&
      sameIssuer(requester.issuer, person.issuer) &&
      requester.subject === person.subject
    )
      return true;
    const owner = approvals.owners[requester.key];
    return (
      owner !== undefined &&
      issuer !== undefined &&
      sameIssuer(person.issuer, issuer) &&
      owner === person.subject
    );
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', origin);
    const cookies = parseCookies(req.headers.cookie);
    const person = login.person(cookies.get(SESSION_COOKIE));

    if (url.pathname === '/portcullis/login' && req.method === 'GET') {
      const next = url.searchParams.get('next') ?? '';
      // Only back to a page of ours: never an open redirect.
      if (!/^\/portcullis\/approvals\/[A-Za-z0-9_-]{22}(\/status)?$/.test(next))
        return send(res, 400, messagePage('Bad login link', 'This login link does not name an approval.'));
      try {
        const started = await login.start(next);
        return redirect(res, started.location, [started.cookie]);
      } catch (err) {
        deps.logger.warn({ err, issuer }, 'approval login: the OpenID provider cannot be reached');
        return send(
          res,
          503,
          messagePage('Login unavailable', 'The login provider cannot be reached. Try again.'),
          {
            'retry-after': '5',
          },
        );
      }
    }
    if (url.pathname === CALLBACK_PATH && req.method === 'GET') {
      let finished: Awaited<ReturnType<Login['finish']>>;
      try {
        finished = await login.finish(url, cookies.get(LOGIN_COOKIE));
      } catch (err) {
        deps.logger.warn({ err, issuer }, 'approval login: the OpenID provider cannot be reached');
        return send(
          res,
          503,
          messagePage('Login unavailable', 'The login provider cannot be reached. Try again.'),
        );
      }
      if ('failed' in finished) return send(res, 400, messagePage('Login failed', finished.failed));
      return redirect(res, pageUrl(publicUrl, finished.next), [finished.cookie, login.clearLogin], 303);
    }

    const match = /^\/portcullis\/approvals\/([^/]+)(\/status)?$/.exec(url.pathname);
    const id = match?.[1];
    if (match === null || id === undefined || !isApprovalId(id))
      return send(res, 404, messagePage('Not found', 'There is no such page.'));
    const status = match[2] !== undefined;
    if (req.method !== 'GET' && !(req.method === 'POST' && !status))
      return send(res, 405, messagePage('Not allowed', 'This page cannot be used that way.'), {
        allow: status ? 'GET' : 'GET, POST',
      });
    if (person === undefined) {
      if (req.method === 'POST') {
        deps.onRefused(id, undefined, undefined, 'no_session');
        return send(res, 403, messagePage('Log in first', 'Your session ended. Open the link again.'));
      }
      return redirect(res, pageUrl(publicUrl, `/portcullis/login?next=${encodeURIComponent(url.pathname)}`));
    }
    const approval = await store.get(id);
    if (approval === undefined)
      return send(res, 404, messagePage('No such approval', 'It does not exist, or it expired.'));

    if (status) {
      if (!isRequester(approval, person))
        return send(
          res,
          403,
          messagePage('Not yours', 'Only the person who asked for this call can follow it here.'),
        );
      return send(res, 200, statusPage(approval));
    }

    const self = isRequester(approval, person);
    const refusal = !person.approver
      ? 'You are not an approver.'
      : self && !approvals.allowSelfApproval
        ? 'You asked for this call: another person must approve it.'
        : undefined;
    const token = csrfToken(person, id);
    if (req.method === 'GET') {
      // The call is shown to approvers and to its requester; anyone else holding the link sees nothing of it.
      if (!person.approver && !self)
        return send(res, 403, messagePage('Not an approver', 'You are not an approver.'));
      return send(
        res,
        refusal === undefined ? 200 : 403,
        approvalPage(approval, refusal === undefined ? token : undefined, refusal),
      );
    }

    // A decision: from our own origin, with the token of this session and this approval.
    if (req.headers.origin !== origin) {
      deps.onRefused(id, approval, person, 'origin');
      return send(res, 403, messagePage('Refused', 'This form must be sent from the approval page itself.'));
    }
    const form = await readForm(req);
    if (form === undefined || !sameToken(form.get('csrf'), token)) {
      deps.onRefused(id, approval, person, 'csrf');
      return send(
        res,
        403,
        messagePage('Refused', 'This form is stale or was not sent from the approval page.'),
      );
    }
    if (refusal !== undefined) {
      deps.onRefused(id, approval, person, person.approver ? 'self_approval' : 'not_approver');
      return send(res, 403, messagePage('Refused', refusal));
    }
    const decision = form.get('decision');
    if (decision !== 'approve' && decision !== 'deny')
      return send(res, 400, messagePage('Bad form', 'Choose approve or deny.'));
    const decided = await store.decide(
      id,
      decision === 'approve' ? 'approved' : 'denied',
      {
        issuer: person.issuer,
        subject: person.subject,
        ...(person.name === undefined ? {} : { name: person.name }),
      },
      now(),
    );
    if (decided === undefined) {
      deps.onRefused(id, approval, person, 'decided');
      const current = await store.get(id);
      return current === undefined
        ? send(res, 409, messagePage('Too late', 'This approval expired.'))
        : send(res, 409, approvalPage(current, undefined, 'Already decided.'));
    }
    deps.onDecision(decided, person);
    return send(res, 200, approvalPage(decided, undefined, decision === 'approve' ? 'Approved.' : 'Denied.'));
  };

  /** The form's fields, or undefined when it is not a small urlencoded form. */
  async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return undefined;
    let text = '';
    const read = await readCapped(req, MAX_FORM_BYTES, (piece) => {
      text += piece;
    });
    return read === 'read' ? new URLSearchParams(text) : undefined;
  }
}

/** Whether two issuer identifiers name one issuer: equal as URLs, a trailing slash aside. */
export function sameIssuer(a: string, b: string): boolean {
  const canonical = (value: string) => {
    try {
      return new URL(value).href.replace(/\/+$/, '');
    } catch {
      return value;
    }
  };
  return canonical(a) === canonical(b);
}

/** The CSRF token of `person`'s session for approval `id`: a page of another session, or another approval, has another. */
function csrfToken(person: Person, id: string): string {
  return hash('sha256', `portcullis approvals csrf\n${person.session}\n${id}`, 'base64url');
}

function sameToken(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The request's cookies by name (the first of a repeated name counts). */
function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at === -1) continue;
    const name = part.slice(0, at).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(at + 1).trim());
  }
  return cookies;
}
