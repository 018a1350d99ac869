import { hash } from 'node:crypto';
import type { Approval } from './store.js';

/**
 * The approval pages' HTML: plain server-rendered pages, every value escaped as text, one
 * stylesheet allowed by its hash, no script at all. The headers forbid framing and caching.
 */

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}code,pre{font:14px/1.4 ui-monospace,monospace}
pre{background:#f4f4f4;padding:.6rem;white-space:pre-wrap;overflow-wrap:anywhere}
.state{font-weight:600}.approved{color:#0a6b2d}.denied{color:#a11}
form{display:flex;gap:1rem;margin-top:1.5rem}button{font:inherit;padding:.5rem 1.2rem;cursor:pointer}
button.approve{background:#0a6b2d;color:#fff;border:0}button.deny{background:#fff;border:1px solid #a11;color:#a11}`;

/** Every page's headers: no framing (`frame-ancestors 'none'`), no script, no cache, no referrer elsewhere. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': `default-src 'none'; style-src 'sha256-${hash('sha256', STYLE, 'base64')}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // Not `no-referrer`: browsers then send `Origin: null` with the page's own form, which the
  // Origin check must refuse. `same-origin` keeps the link (it names the approval) off other sites.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** `text` as HTML text or an attribute value: nothing in it can open a tag, an entity or a quote. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string, refreshSec?: number): string {
  const refresh = refreshSec === undefined ? '' : `<meta http-equiv="refresh" content="${refreshSec}">`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">${refresh}<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>`;
}

/** What people are shown of an approval: who asked, for what, under which rule, until when. */
function details(approval: Approval): string {
  const { bindings, requester } = approval;
  const rows: [string, string][] = [
    [
      'Requester',
      requester.subject === undefined ? requester.key : `${requester.subject} (${requester.key})`,
    ],
    ['Tool', bindings.tool],
    ['Route', bindings.route],
    ['Rule', approval.rule],
    ['Asked', new Date(approval.createdAt).toISOString()],
    ['Expires', new Date(approval.expiresAt).toISOString()],
  ];
  const decided =
    approval.decidedBy === undefined
      ? ''
      : `<dt>Decided by</dt><dd>${escapeHtml(approval.decidedBy.name ?? approval.decidedBy.subject)}</dd>`;
  return `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd><code>${escapeHtml(v)}</code></dd>`).join('')}${decided}<dt>State</dt><dd class="state ${approval.state}">${approval.state}</dd></dl><h2>Arguments</h2><pre>${escapeHtml(approval.arguments)}</pre>`;
}

/** The approver's page: the request, and approve / deny when it is still pending. */
export function approvalPage(approval: Approval, csrf: string | undefined, notice?: string): string {
  const form =
    approval.state === 'pending' && csrf !== undefined
      ? `<form method="post"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button class="approve" name="decision" value="approve">Approve</button><button class="deny" name="decision" value="deny">Deny</button></form>`
      : '';
  const said = notice === undefined ? '' : `<p class="state">${escapeHtml(notice)}</p>`;
  return page(
    'Approve a tool call',
    `<h1>A tool call waits for your approval</h1>${said}${details(approval)}${form}`,
  );
}

/** The requester's page: where their call stands (it reloads itself while pending). */
export function statusPage(approval: Approval): string {
  const next =
    approval.state === 'pending'
      ? 'An approver has been told. This page reloads until one decides.'
      : approval.state === 'approved'
        ? 'Approved: your client can call again now, once.'
        : approval.state === 'used'
          ? 'Approved, and the call has run.'
          : 'Denied: the call will not run.';
  return page(
    'Your tool call',
    `<h1>Your tool call needs another person's approval</h1><p>${escapeHtml(next)}</p>${details(approval)}`,
    approval.state === 'pending' ? 5 : undefined,
  );
}

/** A page that says why nothing can be shown or done (its status says it to machines). */
export function messagePage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`);
}
