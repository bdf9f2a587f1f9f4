/**
 * The app's state and everything that changes it: the conversations, their messages, delivery
 * statuses, typing and presence, the live socket and the uploads. Components read it and
 * re-render on `subscribe`; nothing here knows about the DOM.
 */
import {
  ApiError,
  type ChannelLink,
  Chat4AllClient,
  type ConnectionState,
  type ConversationSummary,
  type ConversationV1,
  type DeliveryStatus,
  type Features,
  LiveSocket,
  type Me,
  type Message,
  type ServerFrame,
  type TokenPair,
  Upload,
  type UploadProgress,
  UploadStore,
} from "../api";

const TOKENS_KEY = "chat4all.tokens";
const RANK: Record<DeliveryStatus | "PENDING", number> = { PENDING: 0, FAILED: 0, SENT: 1, DELIVERED: 2, READ: 3 };

export interface Conversation {
  id: string;
  type: "private" | "group";
  name: string | null;
  topic: string | null;
  members: string[];
  roles: Record<string, string>;
  lastMessage: Message | null;
  lastActivity: string;
  unread: number;
  readUpTo: number;
  /** the highest sequence number known here (v2: the server's, with the unread count that goes with it) */
  lastSequence: number;
}

export interface ShownMessage extends Message {
  /** sent from here and not yet stored by the server */
  pending?: boolean;
  /** the server accepted it (202): it is stored soon, with its sequence number */
  accepted?: boolean;
  failed?: string;
}

export interface UploadItem {
  id: string;
  conversationId: string;
  filename: string;
  progress: UploadProgress;
  upload: Upload;
}

export interface ConversationView {
  messages: Map<string, ShownMessage>;
  loaded: boolean;
  /** v2: the `before` cursor of the older page (null: the start is loaded) */
  olderCursor: number | null;
  loadingOlder: boolean;
}

type Listener = () => void;

export class Store {
  readonly client: Chat4AllClient;
  features: Features = { v2: false, paths: new Set(), channels: [] };
  me: Me | null = null;
  connection: ConnectionState = "closed";
  conversations = new Map<string, Conversation>();
  views = new Map<string, ConversationView>();
  /** message id → "username/channel" → status */
  statuses = new Map<string, Map<string, DeliveryStatus>>();
  typing = new Map<string, Map<string, number>>();
  presence = new Map<string, "online" | "offline">();
  uploads: UploadItem[] = [];
  openId: string | null = null;
  announcement = "";
  private socket: LiveSocket | null = null;
  private listeners = new Set<Listener>();
  private readSent = new Set<string>();
  private uploadStore: UploadStore | null = null;
  private typingSentAt = new Map<string, number>();
  private outbox = new Map<string, Promise<void>>();
  private storedChain = new Map<string, Promise<void>>();
  private scheduled = false;

  constructor() {
    let tokens: TokenPair | null = null;
    try {
      tokens = JSON.parse(localStorage.getItem(TOKENS_KEY) ?? "null");
    } catch {
      tokens = null;
    }
    this.client = new Chat4AllClient({
      tokens,
      onTokens: (pair) => {
        if (pair) localStorage.setItem(TOKENS_KEY, JSON.stringify(pair));
        else localStorage.removeItem(TOKENS_KEY);
        if (pair) this.socket?.reauthenticate();
        else if (this.me) this.signedOut();
      },
    });
    setInterval(() => this.expireTyping(), 1000);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-renders once per frame however many changes came in. */
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    });
  }

  get signedIn(): boolean {
    return this.me !== null;
  }

  // ------------------------------------------------------------------ session
  async restore(): Promise<void> {
    this.features = await this.client.features();
    if (!this.client.tokens) return;
    try {
      this.me = await this.client.me();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      throw error;
    }
    await this.started();
  }

  async signUp(username: string, password: string): Promise<void> {
    await this.client.register(username, password);
    await this.signIn(username, password);
  }

  async signIn(username: string, password: string): Promise<void> {
    await this.client.login(username, password);
    this.me = await this.client.me();
    await this.started();
  }

  async signOut(): Promise<void> {
    try {
      await this.client.logout();
    } finally {
      this.signedOut();
    }
  }

  private signedOut(): void {
    this.socket?.stop();
    this.socket = null;
    for (const item of this.uploads) item.upload.pause();
    this.me = null;
    this.conversations.clear();
    this.views.clear();
    this.statuses.clear();
    this.uploads = [];
    this.openId = null;
    this.changed();
  }

  private async started(): Promise<void> {
    this.changed();
    const socket = new LiveSocket(this.client, { v2: this.features.v2 });
    this.socket = socket;
    socket.onState((state) => {
      this.connection = state;
      this.changed();
    });
    socket.onFrame((frame) => this.onFrame(frame));
    socket.onOpen((reconnected) => {
      if (reconnected) void this.catchUp();
    });
    socket.start();
    await this.loadConversations();
    try {
      this.uploadStore = new UploadStore(`chat4all-uploads-${this.me?.username}`);
      for (const record of await this.uploadStore.all())
        this.startUpload(record.blob, String(record.context.conversation_id), record.file_id, record.filename,
          String(record.context.message_id ?? crypto.randomUUID()) as string);
    } catch {
      this.uploadStore = null;  // no IndexedDB (private mode): uploads still work, without resume after reload
    }
  }

  /** After a reconnect: whatever changed while the socket was down. */
  private async catchUp(): Promise<void> {
    await this.loadConversations();
    for (const [id, view] of this.views) {
      await this.loadNewer(id);
      // own messages accepted before the connection dropped: v1 does not push them back to the sender
      for (const m of view.messages.values()) if (m.pending && m.accepted) void this.stored(id, m.message_id);
      void this.loadStatuses(id);  // status frames sent while the socket was down are not pushed again
    }
  }

  // ------------------------------------------------------------------ conversations
  async loadConversations(): Promise<void> {
    if (this.features.v2) {
      let cursor: string | undefined;
      do {
        const page = await this.client.inbox({ limit: 100, cursor });
        for (const summary of page.items) this.putSummary(summary);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
    } else {
      let cursor: string | undefined;
      do {
        const page = await this.client.listConversations(cursor);
        for (const c of page.items) this.putV1(c);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      // v1 pushes no presence: ask for the people of private chats (v2 pushes it)
      const peers = new Set([...this.conversations.values()].map((c) => this.peer(c)).filter((p): p is string => !!p));
      void Promise.all([...peers].slice(0, 50).map((p) => this.refreshPresence(p)));
    }
    this.changed();
  }

  private putV1(c: ConversationV1): Conversation {
    const known = this.conversations.get(c.conversation_id);
    const conversation: Conversation = {
      id: c.conversation_id,
      type: c.type,
      name: c.name,
      topic: null,
      members: c.members,
      roles: known?.roles ?? { [c.created_by]: "owner" },
      lastMessage: known?.lastMessage ?? null,
      lastActivity: known?.lastActivity ?? c.created_at,
      unread: known?.unread ?? 0,
      readUpTo: known?.readUpTo ?? 0,
      lastSequence: known?.lastSequence ?? 0,
    };
    this.conversations.set(c.conversation_id, conversation);
    return conversation;
  }

  private putSummary(s: ConversationSummary): void {
    if (s.membership === "left") {
      this.conversations.delete(s.conversation_id);
      if (this.openId === s.conversation_id) this.openId = null;
      return;
    }
    this.conversations.set(s.conversation_id, {
      id: s.conversation_id,
      type: s.type,
      name: s.name,
      topic: s.topic,
      members: s.members.map((m) => m.username),
      roles: Object.fromEntries(s.members.map((m) => [m.username, m.role])),
      lastMessage: s.last_message,
      lastActivity: s.last_activity_at,
      unread: this.openId === s.conversation_id ? 0 : s.unread_count,
      readUpTo: s.read_up_to,
      lastSequence: Math.max(s.last_sequence, this.conversations.get(s.conversation_id)?.lastSequence ?? 0),
    });
  }

  sortedConversations(filter = ""): Conversation[] {
    const needle = filter.trim().toLowerCase();
    return [...this.conversations.values()]
      .filter((c) => !needle || this.title(c).toLowerCase().includes(needle))
      .sort((a, b) => (a.lastActivity < b.lastActivity ? 1 : a.lastActivity > b.lastActivity ? -1 : 0));
  }

  title(c: Conversation): string {
    if (c.name) return c.name;
    const others = c.members.filter((m) => m !== this.me?.username);
    return others.join(", ") || (this.me?.username ?? "");
  }

  peer(c: Conversation): string | null {
    return c.type === "private" ? (c.members.find((m) => m !== this.me?.username) ?? null) : null;
  }

  async createConversation(type: "private" | "group", members: string[], name?: string): Promise<string> {
    if (this.features.v2) {
      const summary = await this.client.createConversationV2({ type, members, name: name || undefined });
      this.putSummary(summary);
      this.changed();
      return summary.conversation_id;
    }
    const c = await this.client.createConversation({ type, members, name: name || undefined });
    this.putV1(c);
    this.changed();
    return c.conversation_id;
  }

  async rename(id: string, name: string): Promise<void> {
    this.putSummary(await this.client.updateConversation(id, { name }));
    this.changed();
    void this.loadNewer(id);  // the change's system message
  }

  async addMembers(id: string, usernames: string[]): Promise<void> {
    this.putSummary(await this.client.addMembers(id, usernames));
    this.changed();
    void this.loadNewer(id);  // the change's system message
  }

  async removeMember(id: string, username: string): Promise<void> {
    await this.client.removeMember(id, username);
    this.putSummary(await this.client.conversation(id));
    this.changed();
    void this.loadNewer(id);  // the change's system message
  }

  async leave(id: string): Promise<void> {
    await this.client.leave(id);
    this.conversations.delete(id);
    this.views.delete(id);
    if (this.openId === id) this.openId = null;
    this.changed();
  }

  // ------------------------------------------------------------------ a conversation's messages
  view(id: string): ConversationView {
    let view = this.views.get(id);
    if (!view) {
      view = { messages: new Map(), loaded: false, olderCursor: null, loadingOlder: false };
      this.views.set(id, view);
    }
    return view;
  }

  async open(id: string | null): Promise<void> {
    this.openId = id;
    this.changed();
    if (!id) return;
    if (!this.conversations.has(id)) {
      try {
        if (this.features.v2) this.putSummary(await this.client.conversation(id));
        else this.putV1(await this.client.getConversation(id));
      } catch {
        this.openId = null;
        this.changed();
        return;
      }
    }
    const view = this.view(id);
    if (!view.loaded) {
      if (this.features.v2) {
        const page = await this.client.history(id, { limit: 50 });
        this.merge(id, page.items);
        view.olderCursor = page.prev_cursor;
      } else {
        await this.loadNewer(id);
      }
      view.loaded = true;
      void this.loadStatuses(id);
    }
    const conversation = this.conversations.get(id);
    if (conversation) conversation.unread = 0;
    this.changed();
  }

  /** v2: the page before the oldest message shown (infinite scroll upward). */
  async loadOlder(id: string): Promise<void> {
    const view = this.view(id);
    if (!this.features.v2 || view.olderCursor === null || view.loadingOlder) return;
    view.loadingOlder = true;
    this.changed();
    try {
      const page = await this.client.history(id, { before: view.olderCursor, limit: 50 });
      this.merge(id, page.items);
      view.olderCursor = page.prev_cursor;
    } finally {
      view.loadingOlder = false;
      this.changed();
    }
  }

  /** Everything after the newest stored message shown (first load on v1, catch-up on both). */
  async loadNewer(id: string): Promise<void> {
    const view = this.view(id);
    let since = 0;
    for (const m of view.messages.values()) if (!m.pending && m.sequence_number > since) since = m.sequence_number;
    for (;;) {
      if (this.features.v2) {
        const page = await this.client.history(id, { after: since, limit: 200 });
        this.merge(id, page.items);
        if (page.next_cursor === null || page.items.length === 0) break;
        since = page.next_cursor;
      } else {
        const page = await this.client.listMessages(id, since, 100);
        this.merge(id, page.items);
        if (page.next_since === null || page.items.length === 0) break;
        since = page.next_since;
      }
    }
    this.changed();
  }

  private merge(id: string, messages: Message[]): void {
    const view = this.view(id);
    for (const m of messages) view.messages.set(m.message_id, { ...m, pending: false });
    const conversation = this.conversations.get(id);
    const last = this.messages(id).filter((m) => !m.pending).at(-1);
    if (conversation && last) conversation.lastSequence = Math.max(conversation.lastSequence, last.sequence_number);
    if (conversation && last && (!conversation.lastMessage || last.sequence_number >= conversation.lastMessage.sequence_number)) {
      conversation.lastMessage = last;
      if (last.created_at > conversation.lastActivity) conversation.lastActivity = last.created_at;
    }
  }

  /** In order: stored messages by sequence number, then what is still on its way. */
  messages(id: string): ShownMessage[] {
    const view = this.views.get(id);
    if (!view) return [];
    return [...view.messages.values()].sort((a, b) => {
      if (a.pending !== b.pending) return a.pending ? 1 : -1;
      if (a.pending) return a.created_at < b.created_at ? -1 : 1;
      return a.sequence_number - b.sequence_number;
    });
  }

  private async loadStatuses(id: string): Promise<void> {
    const own = this.messages(id).filter((m) => m.from === this.me?.username && !m.pending).slice(-30);
    await Promise.all(own.map((m) => this.loadStatus(m.message_id)));
  }

  private async loadStatus(messageId: string): Promise<void> {
    try {
      const status = await this.client.messageStatus(messageId);
      for (const r of status.recipients) this.setStatus(messageId, r.username, r.channel, r.status);
      this.changed();
    } catch {
      /* shown without ticks until a status frame comes */
    }
  }

  // ------------------------------------------------------------------ sending
  async sendText(conversationId: string, text: string, channels?: string[]): Promise<void> {
    await this.send(conversationId, { type: "text", text }, channels);
  }

  async send(
    conversationId: string,
    payload: { type: "text"; text: string } | { type: "file"; file_id: string },
    channels?: string[],
    messageId: string = crypto.randomUUID() as string,
  ): Promise<void> {
    const view = this.view(conversationId);
    const conversation = this.conversations.get(conversationId);
    const shown: ShownMessage = {
      message_id: messageId,
      conversation_id: conversationId,
      sequence_number: 0,
      from: this.me!.username,
      to: conversation?.members.filter((m) => m !== this.me?.username) ?? [],
      channels: channels ?? ["internal"],
      payload,
      metadata: {},
      created_at: new Date().toISOString(),
      pending: true,
    };
    view.messages.set(messageId, shown);
    if (conversation) conversation.lastActivity = shown.created_at;
    this.changed();
    this.typingStop(conversationId);
    // one send at a time per conversation, so messages are stored in the order they were written
    const previous = this.outbox.get(conversationId) ?? Promise.resolve();
    const mine = previous.then(() => this.deliver(conversationId, messageId, shown, payload, channels));
    this.outbox.set(conversationId, mine);
    await mine;
  }

  /** Sends until the server has it; the same message_id on every try, so a retry after a lost
   * answer is a duplicate, not a second message. Gives up only on an answer that a retry cannot change. */
  private async deliver(
    conversationId: string,
    messageId: string,
    shown: ShownMessage,
    payload: { type: "text"; text: string } | { type: "file"; file_id: string },
    channels?: string[],
  ): Promise<void> {
    const view = this.view(conversationId);
    for (let attempt = 0; ; attempt++) {
      if (!this.me) return;
      try {
        await this.client.send({ message_id: messageId, conversation_id: conversationId, payload, channels });
        break;
      } catch (error) {
        const retriable = !(error instanceof ApiError) || error.status >= 500 || error.status === 429;
        if (!retriable) {
          view.messages.set(messageId, { ...shown, failed: (error as Error).message });
          this.changed();
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(5000, 300 * 2 ** attempt)));
      }
    }
    const accepted = view.messages.get(messageId);
    if (accepted?.pending) view.messages.set(messageId, { ...accepted, accepted: true });
    // in the order sent: a later message is never shown stored while an earlier one still waits
    const before = this.storedChain.get(conversationId) ?? Promise.resolve();
    this.storedChain.set(conversationId, before.then(() => this.stored(conversationId, messageId)));
  }

  /** Fills in the stored message (its sequence number) once the router has it. */
  private async stored(conversationId: string, messageId: string): Promise<void> {
    for (let wait = 100; wait < 60000; wait = Math.min(wait * 2, 5000)) {
      const shown = this.views.get(conversationId)?.messages.get(messageId);
      if (!shown?.pending || !this.me) return;
      try {
        const message = await this.client.getMessage(messageId);
        this.merge(conversationId, [message]);
        this.changed();
        if (this.connection !== "online" || !this.statuses.has(messageId)) await this.loadStatus(messageId);
        return;
      } catch (error) {
        // 404: not stored yet; no answer: the server is away (the reconnect's catch-up asks again)
        if (error instanceof ApiError && error.status !== 404) return;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  // ------------------------------------------------------------------ statuses
  private setStatus(messageId: string, username: string, channel: string, status: DeliveryStatus): void {
    let map = this.statuses.get(messageId);
    if (!map) {
      map = new Map();
      this.statuses.set(messageId, map);
    }
    const key = `${username}/${channel}`;
    const known = map.get(key);
    if (!known || RANK[status] >= RANK[known] || status === "FAILED") map.set(key, status);
  }

  /** The message's tick: the least advanced of its recipients (read only when all have read). */
  tick(m: ShownMessage): { status: DeliveryStatus | "PENDING"; detail: [string, DeliveryStatus][] } {
    const map = this.statuses.get(m.message_id);
    if (m.pending || !map || map.size === 0) return { status: m.pending ? "PENDING" : "SENT", detail: [] };
    const detail = [...map.entries()];
    const recipients = new Set(detail.map(([k]) => k.split("/")[0]));
    let status: DeliveryStatus = "READ";
    for (const r of recipients) {
      const best = detail.filter(([k]) => k.startsWith(`${r}/`)).reduce<DeliveryStatus>(
        (acc, [, s]) => (RANK[s] > RANK[acc] ? s : acc), "FAILED");
      if (RANK[best] < RANK[status]) status = best;
    }
    if (detail.every(([, s]) => s === "FAILED")) status = "FAILED";
    return { status, detail };
  }

  /** Marks the open conversation's messages from others as read (called when they are on screen). */
  markSeen(id: string): void {
    if (document.visibilityState !== "visible" || this.openId !== id) return;
    const unseen = this.messages(id).filter(
      (m) => !m.pending && m.from !== this.me?.username && !this.readSent.has(m.message_id) && m.payload?.type !== "system",
    );
    if (unseen.length === 0) return;
    for (const m of unseen) this.readSent.add(m.message_id);
    const ids = unseen.map((m) => m.message_id);
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      if (!this.socket?.send({ type: "read", message_ids: chunk })) void this.client.acknowledge(chunk, "read");
    }
    const conversation = this.conversations.get(id);
    const top = Math.max(...unseen.map((m) => m.sequence_number));
    if (this.features.v2 && conversation && top > conversation.readUpTo) {
      conversation.readUpTo = top;
      void this.client.markRead(id, top).catch(() => {});
    }
    if (conversation) conversation.unread = 0;
    this.changed();
  }

  // ------------------------------------------------------------------ typing (v2)
  typingStart(id: string): void {
    if (!this.features.v2) return;
    const now = Date.now();
    if (now - (this.typingSentAt.get(id) ?? 0) < 2500) return;
    this.typingSentAt.set(id, now);
    this.socket?.send({ type: "typing", conversation_id: id, state: "start" });
  }

  typingStop(id: string): void {
    if (!this.features.v2 || !this.typingSentAt.get(id)) return;
    this.typingSentAt.delete(id);
    this.socket?.send({ type: "typing", conversation_id: id, state: "stop" });
  }

  typers(id: string): string[] {
    return [...(this.typing.get(id)?.keys() ?? [])];
  }

  private expireTyping(): void {
    const now = Date.now();
    let any = false;
    for (const who of this.typing.values())
      for (const [name, until] of who) if (until < now) {
        who.delete(name);
        any = true;
      }
    if (any) this.changed();
  }

  // ------------------------------------------------------------------ edits and deletes (v2)
  async edit(messageId: string, text: string): Promise<void> {
    const message = await this.client.editMessage(messageId, text);
    this.merge(message.conversation_id, [message]);
    this.changed();
  }

  async remove(m: ShownMessage): Promise<void> {
    await this.client.deleteMessage(m.message_id);
    this.merge(m.conversation_id, [{ ...m, deleted: true, payload: null }]);
    this.changed();
  }

  // ------------------------------------------------------------------ frames
  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "message": {
        const m = frame.message;
        const id = m.conversation_id;
        // new to this client: not shown yet, and (v2) past what the inbox's unread count covers
        const known = this.conversations.get(id);
        const fresh = (!this.views.get(id)?.messages.get(m.message_id) || this.views.get(id)?.messages.get(m.message_id)?.pending)
          && (!known || m.sequence_number > known.lastSequence);
        this.merge(id, [m]);
        this.typing.get(id)?.delete(m.from);
        const conversation = this.conversations.get(id);
        if (!conversation) {
          // a conversation someone else started: load it, then count this message in it
          void this.loadConversations().then(() => {
            this.merge(id, [m]);
            const c = this.conversations.get(id);
            if (c && !this.features.v2 && this.openId !== id && m.from !== this.me?.username) c.unread += 1;
            this.changed();
          });
        } else if (fresh && m.from !== this.me?.username && this.openId !== id) conversation.unread += 1;
        if (fresh && m.from !== this.me?.username) {
          const text = m.payload?.type === "text" ? m.payload.text : "a file";
          this.announcement = `New message from ${m.from}: ${text}`;
        }
        if (this.openId === id) queueMicrotask(() => this.markSeen(id));
        break;
      }
      case "status": {
        const s = frame.status;
        this.setStatus(s.message_id, s.username, s.channel, s.status);
        break;
      }
      case "message_updated":
        this.merge(frame.message.conversation_id, [frame.message]);
        break;
      case "read_cursor": {
        const c = this.conversations.get(frame.conversation_id);
        if (c) {
          c.readUpTo = Math.max(c.readUpTo, frame.up_to_sequence);
          c.unread = frame.unread_count;
        }
        break;
      }
      case "conversation":
        if (frame.event === "left" || frame.event === "member_removed") {
          if (!frame.conversation.members.some((m) => m.username === this.me?.username)) {
            this.putSummary({ ...frame.conversation, membership: "left" });
            break;
          }
        }
        this.putSummary(frame.conversation);
        // the change's system message is in the timeline: fetch it for a conversation on screen
        if (this.views.get(frame.conversation.conversation_id)?.loaded) void this.loadNewer(frame.conversation.conversation_id);
        break;
      case "typing": {
        let who = this.typing.get(frame.conversation_id);
        if (!who) {
          who = new Map();
          this.typing.set(frame.conversation_id, who);
        }
        if (frame.state === "start") {
          const until = frame.expires_at ? Date.parse(frame.expires_at) : Date.now() + 6000;
          who.set(frame.username, Math.min(until, Date.now() + 6000));
        } else who.delete(frame.username);
        break;
      }
      case "presence":
        this.presence.set(frame.username, frame.status);
        break;
      default:
        return;
    }
    this.changed();
  }

  async refreshPresence(username: string): Promise<void> {
    try {
      const p = await this.client.presence(username);
      this.presence.set(username, p.status);
      this.changed();
    } catch {
      /* unknown */
    }
  }

  // ------------------------------------------------------------------ files
  startUpload(blob: Blob, conversationId: string, fileId?: string, filename?: string, messageId: string = crypto.randomUUID()): UploadItem {
    const item: UploadItem = {
      id: fileId ?? crypto.randomUUID(),
      conversationId,
      filename: filename ?? (blob instanceof File ? blob.name : "file"),
      progress: { phase: "starting", sent: 0, total: blob.size, hashed: 0 },
      upload: null as unknown as Upload,
    };
    item.upload = new Upload(this.client, blob, {
      fileId,
      filename: item.filename,
      store: this.uploadStore,
      context: { conversation_id: conversationId, message_id: messageId },
      onProgress: (progress) => {
        item.progress = progress;
        this.changed();
      },
    });
    this.uploads = [...this.uploads, item];
    this.changed();
    item.upload
      .start()
      .then(async (file) => {
        await this.send(conversationId, { type: "file", file_id: file.file_id }, undefined, messageId);
        this.uploads = this.uploads.filter((u) => u !== item);
        this.changed();
      })
      .catch(() => this.changed());
    return item;
  }

  dismissUpload(item: UploadItem): void {
    void item.upload.cancel();
    this.uploads = this.uploads.filter((u) => u !== item);
    this.changed();
  }

  // ------------------------------------------------------------------ channels
  async linkChannel(channel: string, externalId: string): Promise<ChannelLink> {
    const link = await this.client.linkChannel(channel, externalId);
    this.me = await this.client.me();
    this.changed();
    return link;
  }

  /** Looks again whether the identities are linked (a claim's code arrives from the channel). */
  async refreshMe(): Promise<void> {
    this.me = await this.client.me();
    this.changed();
  }

  async unlinkChannel(channel: string): Promise<void> {
    await this.client.unlinkChannel(channel);
    this.me = await this.client.me();
    this.changed();
  }
}
