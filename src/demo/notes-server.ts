/**
 * The demo upstream for `npm start`: a small notes MCP server built on SDK v2 that serves both
 * protocol generations on one endpoint, `/mcp`:
 *
 * - **modern** (2026-07-28, stateless): requests carrying the `_meta` protocol-version envelope go
 *   to `createMcpHandler` with `legacy: 'reject'`; answers are JSON, upgraded to SSE when a tool
 *   reports progress.
 * - **legacy** (2025-era): everything else goes to a sessionful Streamable HTTP transport per
 *   session (`initialize` issues `Mcp-Session-Id`; GET opens the server stream; DELETE ends it).
 *
 * The routing decision is the SDK's own (`isLegacyRequest`), so it can never disagree with how the
 * modern handler classifies a request. The server has no authentication and no Host/Origin guards:
 * it is meant to be reached only through Portcullis.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type NodeIncomingMessageLike,
  NodeStreamableHTTPServerTransport,
  toNodeHandler,
  toWebRequest,
} from '@modelcontextprotocol/node';
import {
  type CallToolResult,
  createMcpHandler,
  isJsonContentType,
  isLegacyRequest,
  McpServer,
  ResourceTemplate,
} from '@modelcontextprotocol/server';
import * as z from 'zod';
import { PROGRESS_NOTIFICATION } from '../jsonrpc/methods.js';

/** Options of {@link startNotesServer}. */
export interface NotesServerOptions {
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port to listen on; `0` (the default) picks a free one. */
  port?: number;
}

/** A running notes server. */
export interface RunningNotesServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:43117/mcp`. */
  url: string;
  /** Stops listening and ends every open session and stream. */
  close(): Promise<void>;
}

/** One note. */
interface Note {
  id: string;
  title: string;
  body: string;
  updatedAt: string;
}

/** The path the server answers on; anything else is 404. */
const MCP_PATH = '/mcp';
/** Bound on a request body, in bytes. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Bound on concurrently open legacy sessions; the least recently used one is closed beyond it. */
const MAX_LEGACY_SESSIONS = 256;
/** Progress reports `summarize_notes` sends, and the pause before each (about 1.5 s in all). */
const SUMMARY_STEPS = 5;
const SUMMARY_STEP_MS = 300;

const noteId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'lowercase letters, digits and dashes, at most 64 characters');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function text(value: string, isError = false): CallToolResult {
  return isError
    ? { content: [{ type: 'text', text: value }], isError }
    : { content: [{ type: 'text', text: value }] };
}

function seedNotes(): Map<string, Note> {
  const now = new Date().toISOString();
  const notes: Note[] = [
    {
      id: 'welcome',
      title: 'Welcome',
      body: 'This note lives in the demo upstream behind Portcullis. Try list_notes and read_note.',
      updatedAt: now,
    },
    {
      id: 'groceries',
      title: 'Groceries',
      body: 'Bread, olive oil, tomatoes, basil.',
      updatedAt: now,
    },
  ];
  return new Map(notes.map((note) => [note.id, note]));
}

/** Builds one MCP server instance over the shared note store (one per modern request or legacy session). */
function buildNotesServer(notes: Map<string, Note>): McpServer {
  const server = new McpServer(
    { name: 'portcullis-demo-notes', version: '1.0.0' },
    {
      capabilities: { tools: {}, resources: {} },
      instructions: 'A small in-memory notebook: list, read, write, delete and summarize notes.',
    },
  );

  server.registerTool(
    'list_notes',
    {
      title: 'List notes',
      description: 'Lists every note: id and title.',
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async () => {
      const lines = [...notes.values()].map((note) => `${note.id}: ${note.title}`);
      return text(lines.length === 0 ? '(no notes)' : lines.join('\n'));
    },
  );

  server.registerTool(
    'read_note',
    {
      title: 'Read a note',
      description: 'Returns the title and body of one note.',
      inputSchema: z.object({ id: noteId }),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async ({ id }) => {
      const note = notes.get(id);
      return note === undefined
        ? text(`No note with id "${id}".`, true)
        : text(`# ${note.title}\n\n${note.body}`);
    },
  );

  server.registerTool(
    'write_note',
    {
      title: 'Write a note',
      description: 'Creates a note, or replaces the one with the same id.',
      inputSchema: z.object({
        id: noteId,
        title: z.string().min(1).max(200),
        body: z.string().max(20_000),
      }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ id, title, body }) => {
      const existed = notes.has(id);
      notes.set(id, { id, title, body, updatedAt: new Date().toISOString() });
      return text(`${existed ? 'Updated' : 'Created'} note "${id}".`);
    },
  );

  server.registerTool(
    'delete_note',
    {
      title: 'Delete a note',
      description: 'Deletes one note.',
      inputSchema: z.object({ id: noteId }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ id }) =>
      notes.delete(id) ? text(`Deleted note "${id}".`) : text(`No note with id "${id}".`, true),
  );

  server.registerTool(
    'summarize_notes',
    {
      title: 'Summarize notes',
      description: 'Summarizes every note (slowly, reporting progress when asked to).',
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken;
      const snapshot = [...notes.values()];
      for (let step = 1; step <= SUMMARY_STEPS; step++) {
        await sleep(SUMMARY_STEP_MS);
        if (ctx.mcpReq.signal.aborted) return text('Summary cancelled.', true);
        if (progressToken !== undefined) {
          await ctx.mcpReq.notify({
            method: PROGRESS_NOTIFICATION,
            params: {
              progressToken,
              progress: step,
              total: SUMMARY_STEPS,
              message: `Summarizing (${step}/${SUMMARY_STEPS})`,
            },
          });
        }
      }
      const words = snapshot.reduce((sum, note) => sum + note.body.split(/\s+/).filter(Boolean).length, 0);
      const titles = snapshot.map((note) => note.title).join(', ');
      return text(`${snapshot.length} note(s), ${words} word(s)${titles === '' ? '.' : `: ${titles}.`}`);
    },
  );

  server.registerResource(
    'note',
    new ResourceTemplate('note://{id}', {
      list: async () => ({
        resources: [...notes.values()].map((note) => ({
          uri: `note://${note.id}`,
          name: note.id,
          title: note.title,
          mimeType: 'text/markdown',
        })),
      }),
    }),
    { title: 'Note', description: 'One note as Markdown.', mimeType: 'text/markdown' },
    async (uri, variables) => {
      const id = variables.id;
      const note = typeof id === 'string' ? notes.get(id) : undefined;
      if (note === undefined) throw new Error(`No note at ${uri.href}`);
      return {
        contents: [{ uri: uri.href, mimeType: 'text/markdown', text: `# ${note.title}\n\n${note.body}` }],
      };
    },
  );

  return server;
}

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

/** Reads a request body up to {@link MAX_BODY_BYTES}; `undefined` when it is larger. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A legacy session: its transport and its server instance. */
interface LegacySession {
  transport: NodeStreamableHTTPServerTransport;
  server: McpServer;
}

/**
 * Starts the demo notes MCP server. It serves modern (2026-07-28, stateless) and legacy (2025-era,
 * sessionful) clients on `/mcp`, over an in-memory note store seeded with two notes.
 *
 * @param opts - Where to listen; by default `127.0.0.1` on a free port.
 * @returns The endpoint URL and a `close()` that ends every session and stops listening.
 */
export async function startNotesServer(opts: NotesServerOptions = {}): Promise<RunningNotesServer> {
  const notes = seedNotes();
  const modern = createMcpHandler(() => buildNotesServer(notes), { legacy: 'reject', responseMode: 'auto' });
  const modernNode = toNodeHandler(modern, { maxRequestBodySize: MAX_BODY_BYTES });
  // Map order is insertion order; a session is re-inserted on use, so the first entry is the least
  // recently used one.
  const sessions = new Map<string, LegacySession>();

  const closeSession = async (id: string): Promise<void> => {
    const session = sessions.get(id);
    if (session === undefined) return;
    sessions.delete(id);
    await session.server.close();
  };

  const serveLegacy = async (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    const sessionId = firstHeader(req.headers['mcp-session-id']);
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId);
      if (session === undefined) {
        sendJsonRpcError(res, 404, -32001, 'Session not found');
        return;
      }
      sessions.delete(sessionId);
      sessions.set(sessionId, session);
      await session.transport.handleRequest(req, res, body);
      return;
    }
    if (req.method !== 'POST') {
      sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }
    // A POST without a session id must be `initialize`; the transport itself refuses anything else.
    const server = buildNotesServer(notes);
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server });
        while (sessions.size > MAX_LEGACY_SESSIONS) {
          const oldest = sessions.keys().next().value;
          if (oldest === undefined) break;
          void closeSession(oldest);
        }
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
    if (transport.sessionId === undefined) await server.close();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== MCP_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
      return;
    }
    let body: unknown;
    if (req.method === 'POST') {
      if (!isJsonContentType(firstHeader(req.headers['content-type']) ?? '')) {
        sendJsonRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
        return;
      }
      const raw = await readBody(req);
      if (raw === undefined) {
        sendJsonRpcError(res, 413, -32000, 'Request body too large');
        return;
      }
      try {
        body = JSON.parse(raw) as unknown;
      } catch {
        sendJsonRpcError(res, 400, -32700, 'Parse error');
        return;
      }
    }
    // The SDK's structural request type declares `method?: string`, which IncomingMessage's
    // `string | undefined` does not satisfy under exactOptionalPropertyTypes; the shapes agree.
    const nodeReq = req as NodeIncomingMessageLike;
    const probe = await toWebRequest(nodeReq, body);
    if (await isLegacyRequest(probe, body)) await serveLegacy(req, res, body);
    else await modernNode(nodeReq, res, body);
  };

  const httpServer = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      sendJsonRpcError(res, 500, -32603, error instanceof Error ? error.message : 'Internal error');
    });
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(opts.port ?? 0, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}${MCP_PATH}`,
    close: async () => {
      await Promise.allSettled([...sessions.keys()].map((id) => closeSession(id)));
      await modern.close();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
