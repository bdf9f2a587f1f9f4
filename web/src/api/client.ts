/**
 * The Chat4All HTTP API as a typed client: v1, and v2 where the server has it.
 *
 * Tokens: the client keeps the pair it was given, refreshes it once when an answer is 401
 * (one refresh at a time, however many requests failed), and stores each new pair through
 * `onTokens` so an app can persist it. A refresh token works once (the server rotates it).
 */
import type {
  ChannelLink,
  ConversationSummary,
  ConversationV1,
  ErrorBody,
  FileInfo,
  HistoryPage,
  InboxPage,
  Me,
  Message,
  MessageAccepted,
  MessageStatus,
  Page,
  Presence,
  ReadCursor,
  Role,
  SendMessage,
  TokenPair,
  UploadState,
  UploadTicket,
} from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly traceId: string | null;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code;
    this.details = body.details;
    this.traceId = body.trace_id ?? null;
  }
}

/** What the server offers beyond v1, read from its OpenAPI document. */
export interface Features {
  v2: boolean;
  /** every path the server documents */
  paths: Set<string>;
  /** the external channels a user can link (WhatsApp, Instagram, …), as this server has them */
  channels: string[];
}

export interface ClientOptions {
  /** "" for the page's own origin */
  baseUrl?: string;
  tokens?: TokenPair | null;
  onTokens?: (tokens: TokenPair | null) => void;
  fetch?: typeof fetch;
}

interface OpenApiDoc {
  paths?: Record<string, Record<string, { parameters?: { name: string; schema?: { enum?: string[] } }[] }>>;
}

type Query = Record<string, string | number | undefined | null>;

export class Chat4AllClient {
  readonly baseUrl: string;
  private tokensValue: TokenPair | null;
  private readonly onTokens: (tokens: TokenPair | null) => void;
  private readonly fetchImpl: typeof fetch;
  private refreshing: Promise<boolean> | null = null;
  private featuresValue: Promise<Features> | null = null;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/$/, "");
    this.tokensValue = options.tokens ?? null;
    this.onTokens = options.onTokens ?? (() => {});
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  get tokens(): TokenPair | null {
    return this.tokensValue;
  }

  get accessToken(): string | null {
    return this.tokensValue?.access_token ?? null;
  }

  private setTokens(tokens: TokenPair | null): void {
    this.tokensValue = tokens;
    this.onTokens(tokens);
  }

  // ------------------------------------------------------------------ plumbing
  url(path: string, query?: Query): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) q.set(k, String(v));
    const s = q.toString();
    return `${this.baseUrl}${path}${s ? `?${s}` : ""}`;
  }

  async request<T>(method: string, path: string, body?: unknown, query?: Query, auth = true): Promise<T> {
    const send = () => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
      return this.fetchImpl(this.url(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    };
    let response = await send();
    if (response.status === 401 && auth && this.tokensValue && (await this.refresh())) response = await send();
    return this.answer<T>(response);
  }

  private async answer<T>(response: Response): Promise<T> {
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const body = data as { error?: ErrorBody | string; error_description?: string } | null;
      if (body && typeof body.error === "object") throw new ApiError(response.status, body.error);
      if (body && typeof body.error === "string")  // the token endpoint answers in OAuth2's shape
        throw new ApiError(response.status, { code: body.error, message: body.error_description ?? body.error });
      throw new ApiError(response.status, { code: `http_${response.status}`, message: text || response.statusText });
    }
    return data as T;
  }

  /** Exchanges the refresh token for a new pair; false (and signed out) when it no longer works. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      const token = this.tokensValue?.refresh_token;
      this.refreshing = (async () => {
        if (!token) return false;
        try {
          const pair = await this.request<TokenPair>(
            "POST", "/v1/auth/token", { grant_type: "refresh_token", refresh_token: token }, undefined, false,
          );
          this.setTokens(pair);
          return true;
        } catch (error) {
          if (error instanceof ApiError && error.status < 500) this.setTokens(null);
          return false;
        }
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** Feature detection: v2 is there when the server documents `/v2/conversations`. */
  features(): Promise<Features> {
    if (!this.featuresValue) {
      this.featuresValue = this.fetchImpl(this.url("/openapi.json"))
        .then((r) => (r.ok ? r.json() : { paths: {} }))
        .then((doc: OpenApiDoc) => {
          const paths = new Set(Object.keys(doc.paths ?? {}));
          const link = doc.paths?.["/v1/users/me/channels/{channel}"]?.put?.parameters ?? [];
          const channels = link.find((p) => p.name === "channel")?.schema?.enum ?? [];
          return { v2: paths.has("/v2/conversations"), paths, channels };
        })
        .catch(() => ({ v2: false, paths: new Set<string>(), channels: [] }));
    }
    return this.featuresValue;
  }

  // ------------------------------------------------------------------ auth
  register(username: string, password: string): Promise<{ username: string; created_at: string }> {
    return this.request("POST", "/v1/auth/register", { username, password }, undefined, false);
  }

  async login(username: string, password: string): Promise<TokenPair> {
    const pair = await this.request<TokenPair>(
      "POST", "/v1/auth/token", { grant_type: "password", username, password }, undefined, false,
    );
    this.setTokens(pair);
    return pair;
  }

  /** Ends the session on the server (its sockets close) and forgets the tokens. */
  async logout(): Promise<void> {
    const refresh_token = this.tokensValue?.refresh_token;
    try {
      if (this.tokensValue) await this.request("POST", "/v1/auth/logout", { refresh_token });
    } finally {
      this.setTokens(null);
    }
  }

  me(): Promise<Me> {
    return this.request("GET", "/v1/users/me");
  }

  /** Claims the identity: linked at once, or pending until the user sends `code` from it. */
  linkChannel(channel: string, externalId: string): Promise<ChannelLink> {
    return this.request("PUT", `/v1/users/me/channels/${encodeURIComponent(channel)}`, { external_id: externalId });
  }

  unlinkChannel(channel: string): Promise<void> {
    return this.request("DELETE", `/v1/users/me/channels/${encodeURIComponent(channel)}`);
  }

  presence(username: string): Promise<Presence> {
    return this.request("GET", `/v1/presence/${encodeURIComponent(username)}`);
  }

  // ------------------------------------------------------------------ conversations (v1)
  createConversation(body: {
    type: "private" | "group";
    members: string[];
    name?: string;
    metadata?: Record<string, unknown>;
  }): Promise<ConversationV1> {
    return this.request("POST", "/v1/conversations", body);
  }

  listConversations(cursor?: string, limit = 100): Promise<Page<ConversationV1>> {
    return this.request("GET", "/v1/conversations", undefined, { cursor, limit });
  }

  getConversation(id: string): Promise<ConversationV1> {
    return this.request("GET", `/v1/conversations/${id}`);
  }

  /** v1 history: messages with a sequence number above `since`, ascending. */
  listMessages(id: string, since = 0, limit = 100): Promise<{ items: Message[]; next_since: number | null }> {
    return this.request("GET", `/v1/conversations/${id}/messages`, undefined, { since, limit });
  }

  // ------------------------------------------------------------------ messages
  /** Idempotent when `message_id` is given: a retry answers 200 `duplicate` instead of sending twice. */
  send(message: SendMessage): Promise<MessageAccepted> {
    return this.request("POST", "/v1/messages", message);
  }

  getMessage(id: string): Promise<Message> {
    return this.request("GET", `/v1/messages/${id}`);
  }

  messageStatus(id: string): Promise<MessageStatus> {
    return this.request("GET", `/v1/messages/${id}/status`);
  }

  acknowledge(messageIds: string[], status: "delivered" | "read"): Promise<void> {
    return this.request("POST", "/v1/messages/ack", { message_ids: messageIds, status });
  }

  // ------------------------------------------------------------------ files
  initiateUpload(body: { filename: string; size: number; content_type?: string; sha256?: string }): Promise<UploadTicket> {
    return this.request("POST", "/v1/files/initiate", body);
  }

  uploadState(fileId: string): Promise<UploadState> {
    return this.request("GET", `/v1/files/${fileId}/upload`);
  }

  completeUpload(fileId: string, sha256: string): Promise<FileInfo> {
    return this.request("POST", "/v1/files/complete", { file_id: fileId, sha256 });
  }

  getFile(fileId: string): Promise<FileInfo> {
    return this.request("GET", `/v1/files/${fileId}`);
  }

  // ------------------------------------------------------------------ v2 (docs/api-v2.md)
  inbox(query: { limit?: number; cursor?: string; since?: string } = {}): Promise<InboxPage> {
    return this.request("GET", "/v2/conversations", undefined, query);
  }

  createConversationV2(body: {
    type: "private" | "group";
    members: string[];
    name?: string;
    topic?: string;
  }): Promise<ConversationSummary> {
    return this.request("POST", "/v2/conversations", body);
  }

  conversation(id: string): Promise<ConversationSummary> {
    return this.request("GET", `/v2/conversations/${id}`);
  }

  updateConversation(id: string, body: { name?: string; topic?: string }): Promise<ConversationSummary> {
    return this.request("PATCH", `/v2/conversations/${id}`, body);
  }

  addMembers(id: string, usernames: string[]): Promise<ConversationSummary> {
    return this.request("POST", `/v2/conversations/${id}/members`, { usernames });
  }

  removeMember(id: string, username: string): Promise<void> {
    return this.request("DELETE", `/v2/conversations/${id}/members/${encodeURIComponent(username)}`);
  }

  leave(id: string): Promise<void> {
    return this.request("POST", `/v2/conversations/${id}/leave`);
  }

  setRole(id: string, username: string, role: Role): Promise<ConversationSummary> {
    return this.request("PUT", `/v2/conversations/${id}/members/${encodeURIComponent(username)}/role`, { role });
  }

  /** The latest page, or older than `before`, newer than `after`, or around a message. */
  history(id: string, query: { limit?: number; before?: number; after?: number; around?: string } = {}): Promise<HistoryPage> {
    return this.request("GET", `/v2/conversations/${id}/messages`, undefined, query);
  }

  markRead(id: string, upToSequence: number): Promise<ReadCursor> {
    return this.request("POST", `/v2/conversations/${id}/read`, { up_to_sequence: upToSequence });
  }

  typing(id: string, state: "start" | "stop"): Promise<void> {
    return this.request("POST", `/v2/conversations/${id}/typing`, { state });
  }

  editMessage(id: string, text: string): Promise<Message> {
    return this.request("PATCH", `/v2/messages/${id}`, { payload: { type: "text", text } });
  }

  deleteMessage(id: string): Promise<void> {
    return this.request("DELETE", `/v2/messages/${id}`);
  }

  messageVersions(id: string): Promise<{ items: { version: number; payload: unknown; at: string }[] }> {
    return this.request("GET", `/v2/messages/${id}/versions`);
  }
}
