import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import { ApiError, type ChannelLink, type FileInfo } from "../api";
import type { Conversation, ShownMessage, Store, UploadItem } from "./store";

// ------------------------------------------------------------------ plumbing
function useStore(store: Store): void {
  const [, setVersion] = useState(0);
  useEffect(() => store.subscribe(() => setVersion((v) => v + 1)), [store]);
}

function useRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return "The server could not be reached. Try again.";
}

type Theme = "light" | "dark";
function initialTheme(): Theme {
  const saved = localStorage.getItem("chat4all.theme");
  if (saved === "light" || saved === "dark") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function App({ store }: { store: Store }) {
  useStore(store);
  const [ready, setReady] = useState(false);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  useEffect(() => {
    store.restore().finally(() => setReady(true));
  }, [store]);
  const toggleTheme = () => {
    const next = theme === "dark" ? "light" : "dark";
    localStorage.setItem("chat4all.theme", next);
    setTheme(next);
  };
  if (!ready) return <div class="splash" aria-busy="true">Chat4All</div>;
  if (!store.signedIn) return <AuthScreen store={store} theme={theme} toggleTheme={toggleTheme} />;
  return <Main store={store} theme={theme} toggleTheme={toggleTheme} />;
}

// ------------------------------------------------------------------ sign in / up
function AuthScreen({ store, theme, toggleTheme }: { store: Store; theme: Theme; toggleTheme: () => void }) {
  const [mode, setMode] = useState<"in" | "up">("in");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mode === "up") await store.signUp(username.trim(), password);
      else await store.signIn(username.trim(), password);
    } catch (e) {
      setError(e instanceof ApiError && e.code === "invalid_grant" ? "Wrong username or password." : errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="auth">
      <form class="card" onSubmit={submit} aria-labelledby="auth-title">
        <div class="brand"><span class="logo" aria-hidden="true">◆</span> Chat4All</div>
        <h1 id="auth-title">{mode === "in" ? "Sign in" : "Create your account"}</h1>
        <label>
          Username
          <input name="username" autocomplete="username" required value={username}
            onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" required minLength={mode === "up" ? 8 : 1}
            autocomplete={mode === "in" ? "current-password" : "new-password"} value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <button class="primary" type="submit" disabled={busy}>{mode === "in" ? "Sign in" : "Sign up"}</button>
        <p class="muted">
          {mode === "in" ? "New here? " : "Have an account? "}
          <button type="button" class="link" onClick={() => { setMode(mode === "in" ? "up" : "in"); setError(""); }}>
            {mode === "in" ? "Create an account" : "Sign in"}
          </button>
        </p>
        <p class="muted small">
          <a href="/api-docs">API docs</a> · <button type="button" class="link" onClick={toggleTheme}>
            {theme === "dark" ? "Light theme" : "Dark theme"}</button>
        </p>
      </form>
    </main>
  );
}

// ------------------------------------------------------------------ the signed-in layout
function Main({ store, theme, toggleTheme }: { store: Store; theme: Theme; toggleTheme: () => void }) {
  const route = useRoute();
  const match = /^#\/c\/([0-9a-f-]{36})/.exec(route);
  const openId = match?.[1] ?? null;
  const settings = route.startsWith("#/settings");
  useEffect(() => {
    void store.open(openId);
  }, [openId]);
  const [dialog, setDialog] = useState<null | "new">(null);
  const paneOpen = Boolean(openId) || settings;
  return (
    <div class={`layout ${paneOpen ? "pane-open" : ""}`}>
      <aside class="sidebar" aria-label="Conversations">
        <header class="bar">
          <div class="me">
            <span class="avatar" aria-hidden="true">{initials(store.me!.username)}</span>
            <span class="name" data-testid="me">{store.me!.username}</span>
          </div>
          <ConnectionBadge state={store.connection} />
          <button class="small" onClick={() => void store.signOut()} data-testid="sign-out">Sign out</button>
        </header>
        <nav class="tools" aria-label="App">
          <button onClick={() => setDialog("new")} class="primary" data-testid="new-chat">New chat</button>
          <a class="button" href="#/settings">Channels</a>
          <button onClick={toggleTheme} aria-label={theme === "dark" ? "Use the light theme" : "Use the dark theme"}>
            {theme === "dark" ? "☀" : "☾"}
          </button>
          <a class="button" href="/api-docs" title="The HTTP API, with Swagger UI">API docs</a>
        </nav>
        <Inbox store={store} openId={openId} />
      </aside>
      <main class="pane">
        {settings ? <Settings store={store} /> : openId && store.conversations.get(openId) ? (
          <ConversationPane key={openId} store={store} conversation={store.conversations.get(openId)!} />
        ) : (
          <div class="empty"><p>Pick a conversation, or start a new one.</p></div>
        )}
      </main>
      <div class="sr-only" aria-live="polite" role="status" data-testid="announcer">{store.announcement}</div>
      {dialog === "new" && <NewChat store={store} close={() => setDialog(null)} />}
    </div>
  );
}

function initials(name: string): string {
  return name.slice(0, 2).toUpperCase();
}

function ConnectionBadge({ state }: { state: string }) {
  const label = state === "online" ? "Online" : state === "offline" ? "Offline" : state === "closed" ? "Signed out" : "Reconnecting…";
  return (
    <span class={`conn conn-${state}`} role="status" aria-live="polite" data-testid="connection" data-state={state}>
      <span class="dot" aria-hidden="true" /> {label}
    </span>
  );
}

function Inbox({ store, openId }: { store: Store; openId: string | null }) {
  const [filter, setFilter] = useState("");
  const items = store.sortedConversations(filter);
  return (
    <div class="inbox">
      <label class="search">
        <span class="sr-only">Search conversations</span>
        <input type="search" placeholder="Search" value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </label>
      <ul class="conversations" data-testid="conversations">
        {items.map((c) => {
          const peer = store.peer(c);
          const online = peer ? store.presence.get(peer) === "online" : false;
          return (
            <li key={c.id}>
              <a href={`#/c/${c.id}`} class={`conv ${c.id === openId ? "active" : ""}`} aria-current={c.id === openId ? "page" : undefined}
                data-testid="conversation" data-title={store.title(c)}>
                <span class="avatar" aria-hidden="true">{c.type === "group" ? "#" : initials(store.title(c))}
                  {peer && <span class={`presence ${online ? "on" : ""}`} />}</span>
                <span class="conv-text">
                  <span class="conv-title">{store.title(c)}{peer && <span class="sr-only">{online ? " (online)" : ""}</span>}</span>
                  <span class="conv-last">{lastLine(store, c)}</span>
                </span>
                {c.unread > 0 && <span class="badge" aria-label={`${c.unread} unread`} data-testid="unread">{c.unread}</span>}
              </a>
            </li>
          );
        })}
        {items.length === 0 && <li class="muted pad">{filter ? "No match." : "No conversations yet."}</li>}
      </ul>
    </div>
  );
}

function lastLine(store: Store, c: Conversation): string {
  const m = c.lastMessage;
  if (!m) return c.type === "group" ? `${c.members.length} members` : "";
  const who = m.from === store.me?.username ? "You: " : c.type === "group" ? `${m.from}: ` : "";
  if (m.deleted) return `${who}message deleted`;
  if (m.payload?.type === "text") return who + m.payload.text;
  if (m.payload?.type === "file") return `${who}file`;
  if (m.payload?.type === "system") return systemText(m.payload as Record<string, unknown>);
  return "";
}

// ------------------------------------------------------------------ new chat
function NewChat({ store, close }: { store: Store; close: () => void }) {
  const [type, setType] = useState<"private" | "group">("private");
  const [members, setMembers] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  const submit = async (event: Event) => {
    event.preventDefault();
    const names = members.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    if (type === "private" && names.length !== 1) return setError("A private chat is with one person.");
    try {
      const id = await store.createConversation(type, names, type === "group" ? name : undefined);
      close();
      location.hash = `#/c/${id}`;
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && close()}>
      <div role="dialog" aria-modal="true" aria-labelledby="new-title" class="dialog-wrap">
      <form class="card dialog" onSubmit={submit} onKeyDown={(e) => e.key === "Escape" && close()}>
        <h2 id="new-title">New conversation</h2>
        <fieldset class="segmented">
          <legend class="sr-only">Kind</legend>
          <label><input type="radio" name="type" checked={type === "private"} onChange={() => setType("private")} /> Private</label>
          <label><input type="radio" name="type" checked={type === "group"} onChange={() => setType("group")} /> Group</label>
        </fieldset>
        {type === "group" && (
          <label>Group name<input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        )}
        <label>
          {type === "private" ? "Username" : "Members (usernames, separated by commas)"}
          <input ref={first} required value={members} data-testid="new-members"
            onInput={(e) => setMembers((e.target as HTMLInputElement).value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <div class="row end">
          <button type="button" onClick={close}>Cancel</button>
          <button type="submit" class="primary">Start</button>
        </div>
      </form>
      </div>
    </div>
  );
}

// ------------------------------------------------------------------ a conversation
function ConversationPane({ store, conversation }: { store: Store; conversation: Conversation }) {
  const id = conversation.id;
  const messages = store.messages(id);
  const view = store.views.get(id);
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [showSettings, setShowSettings] = useState(false);
  const [dragging, setDragging] = useState(false);
  const peer = store.peer(conversation);
  const firstUnread = useMemo(() => {
    const m = messages.find((x) => !x.pending && x.sequence_number > conversation.readUpTo && x.from !== store.me?.username);
    return store.features.v2 ? m?.message_id : undefined;
  }, [view?.loaded]);
  useEffect(() => {
    if (peer && !store.features.v2) void store.refreshPresence(peer);
  }, [peer]);
  useEffect(() => {
    const el = list.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
    store.markSeen(id);
  });
  useEffect(() => {
    const on = () => store.markSeen(id);
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, [id]);
  const onScroll = () => {
    const el = list.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    if (el.scrollTop < 60 && view && view.olderCursor !== null && !view.loadingOlder) {
      const before = el.scrollHeight;
      void store.loadOlder(id).then(() => requestAnimationFrame(() => (el.scrollTop += el.scrollHeight - before)));
    }
  };
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    for (const file of event.dataTransfer?.files ?? []) store.startUpload(file, id);
  };
  const typers = store.typers(id);
  let lastDay = "";
  return (
    <section class={`conversation ${dragging ? "dragging" : ""}`} aria-label={store.title(conversation)}
      onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)} onDrop={onDrop}>
      <header class="bar">
        <a href="#/" class="button back" aria-label="Back to conversations">←</a>
        <div class="title">
          <h2 data-testid="conversation-title">{store.title(conversation)}</h2>
          <span class="muted small" data-testid="subtitle">
            {typers.length > 0 ? <span data-testid="typing">{typers.join(", ")} {typers.length > 1 ? "are" : "is"} typing…</span>
              : peer ? (store.presence.get(peer) === "online" ? "online" : "offline")
              : `${conversation.members.length} members`}
          </span>
        </div>
        {conversation.type === "group" && (
          <button onClick={() => setShowSettings(!showSettings)} aria-expanded={showSettings} data-testid="group-settings">Group</button>
        )}
        {firstUnread && (
          <button onClick={() => document.getElementById(`m-${firstUnread}`)?.scrollIntoView({ block: "center" })}>
            First unread</button>
        )}
      </header>
      {showSettings && <GroupSettings store={store} conversation={conversation} />}
      <div class="messages" ref={list} onScroll={onScroll} role="log" aria-label="Messages" data-testid="messages" tabIndex={0}>
        {view?.loadingOlder && <p class="muted center">Loading older messages…</p>}
        {view?.loaded && view.olderCursor === null && messages.length === 0 && <p class="muted center">No messages yet. Say hello.</p>}
        {messages.map((m) => {
          const day = new Date(m.created_at).toDateString();
          const separator = day !== lastDay ? <div class="day" role="separator">{dayLabel(m.created_at)}</div> : null;
          lastDay = day;
          return (
            <>
              {separator}
              <MessageRow key={m.message_id} store={store} m={m} group={conversation.type === "group"} />
            </>
          );
        })}
      </div>
      <Uploads store={store} items={store.uploads.filter((u) => u.conversationId === id)} />
      <Composer store={store} conversation={conversation} />
    </section>
  );
}

function dayLabel(iso: string): string {
  const d = new Date(iso);
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return "Today";
  const y = new Date(today.getTime() - 86400000);
  if (d.toDateString() === y.toDateString()) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

const TICK_LABEL: Record<string, string> = { PENDING: "sending", SENT: "sent", DELIVERED: "delivered", READ: "read", FAILED: "failed" };

function MessageRow({ store, m, group }: { store: Store; m: ShownMessage; group: boolean }) {
  const own = m.from === store.me?.username;
  const [editing, setEditing] = useState(false);
  if (m.payload?.type === "system") {  // (a socket frame may carry it without `kind`)
    return <div class="system" id={`m-${m.message_id}`}>{systemText(m.payload as Record<string, unknown>)}</div>;
  }
  const tick = own ? store.tick(m) : null;
  const time = new Date(m.created_at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return (
    <div class={`msg ${own ? "own" : ""}`} id={`m-${m.message_id}`} data-testid="message" data-id={m.message_id}
      data-seq={m.sequence_number} data-from={m.from}>
      <div class="bubble">
        {group && !own && <div class="from">{m.from}</div>}
        {m.deleted ? <em class="muted">This message was deleted.</em>
          : editing && m.payload?.type === "text" ? (
            <EditBox text={m.payload.text} done={async (text) => { setEditing(false); if (text) await store.edit(m.message_id, text); }} />
          ) : m.payload?.type === "text" ? <span class="text" data-testid="text">{m.payload.text}</span>
          : m.payload?.type === "file" ? <FileView store={store} fileId={m.payload.file_id} /> : null}
        <span class="meta">
          {m.edited_at && !m.deleted && <span class="muted">edited · </span>}
          <time dateTime={m.created_at}>{time}</time>
          {tick && (
            <span class={`tick tick-${tick.status.toLowerCase()}`} data-testid="tick" data-status={tick.status}
              title={tick.detail.map(([k, s]) => `${k}: ${s.toLowerCase()}`).join("\n") || TICK_LABEL[tick.status]}
              aria-label={TICK_LABEL[tick.status]}>
              {tick.status === "PENDING" ? "◷" : tick.status === "SENT" ? "✓" : tick.status === "FAILED" ? "!" : "✓✓"}
            </span>
          )}
        </span>
        {tick && tick.detail.some(([k]) => !k.endsWith("/internal")) && (
          <ul class="channels small">
            {tick.detail.map(([k, s]) => <li key={k}>{k.replace("/", " · ")}: {s.toLowerCase()}</li>)}
          </ul>
        )}
        {m.failed && <div class="error small" role="alert">Not sent: {m.failed}</div>}
        {own && store.features.v2 && !m.deleted && !m.pending && !editing && (
          <span class="actions">
            {m.payload?.type === "text" && <button class="link small" onClick={() => setEditing(true)}>Edit</button>}
            <button class="link small" onClick={() => void store.remove(m)}>Delete</button>
          </span>
        )}
      </div>
    </div>
  );
}

function systemText(p: Record<string, unknown>): string {
  const actor = String(p.actor ?? "");
  switch (p.event) {
    case "member_added": return `${actor} added ${(p.usernames as string[]).join(", ")}`;
    case "member_removed": return `${actor} removed ${(p.usernames as string[]).join(", ")}`;
    case "member_left": return `${p.username} left`;
    case "role_changed": return `${actor} made ${p.username} ${p.role}`;
    case "renamed": return `${actor} renamed the group to “${p.name}”`;
    case "topic_changed": return `${actor} set the topic to “${p.topic}”`;
    default: return `${actor}: ${String(p.event)}`;
  }
}

function EditBox({ text, done }: { text: string; done: (text: string | null) => void }) {
  const [value, setValue] = useState(text);
  return (
    <form onSubmit={(e) => { e.preventDefault(); done(value.trim() || null); }}>
      <label class="sr-only" for="edit">Edit message</label>
      <input id="edit" value={value} autoFocus onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => e.key === "Escape" && done(null)} />
    </form>
  );
}

const fileCache = new Map<string, Promise<FileInfo>>();

function FileView({ store, fileId }: { store: Store; fileId: string }) {
  const [file, setFile] = useState<FileInfo | null>(null);
  useEffect(() => {
    if (!fileCache.has(fileId)) fileCache.set(fileId, store.client.getFile(fileId));
    fileCache.get(fileId)!.then(setFile, () => fileCache.delete(fileId));
  }, [fileId]);
  if (!file) return <span class="muted">file…</span>;
  const image = file.content_type.startsWith("image/") && file.download_url;
  return (
    <span class="file" data-testid="file" data-sha256={file.sha256 ?? ""}>
      {image && <img src={file.download_url!} alt={file.filename} loading="lazy" class="preview" />}
      <span class="file-row">
        <Icon d={CLIP} />
        {file.download_url ? <a href={file.download_url} download={file.filename} data-testid="download">{file.filename}</a> : file.filename}
        <span class="muted small">{size(file.size)}</span>
      </span>
    </span>
  );
}

const CLIP = "M16.5 6.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l7.8-7.8a4 4 0 0 0-5.7-5.7L5.8 11.4a6 6 0 0 0 8.5 8.5l6.4-6.4";

function Icon({ d }: { d: string }) {
  return (
    <svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
      stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d={d} /></svg>
  );
}

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function Uploads({ store, items }: { store: Store; items: UploadItem[] }) {
  if (items.length === 0) return null;
  return (
    <ul class="uploads" aria-label="Uploads">
      {items.map((item) => {
        const { phase, sent, total, hashed, error } = item.progress;
        const percent = total ? Math.floor((sent / total) * 100) : 0;
        return (
          <li key={item.id} class="upload" data-testid="upload" data-phase={phase}>
            <span class="file-name">{item.filename}</span>
            <progress max={total} value={sent} aria-label={`Uploading ${item.filename}`} />
            <span class="small muted" data-testid="upload-percent">
              {phase === "interrupted" ? "connection lost, resuming…" : phase === "paused" ? "paused" : phase === "completing" ? "checking…" : phase}
              {" "}{percent}%{hashed < 1 ? ` · hashing ${Math.floor(hashed * 100)}%` : ""}
            </span>
            {(phase === "uploading" || phase === "interrupted") && <button onClick={() => item.upload.pause()} data-testid="pause">Pause</button>}
            {phase === "paused" && <button onClick={() => void item.upload.resume()} data-testid="resume">Resume</button>}
            <button onClick={() => store.dismissUpload(item)} aria-label={`Cancel ${item.filename}`}>✕</button>
            {error && phase === "failed" && <span class="error small" role="alert">{error}</span>}
          </li>
        );
      })}
    </ul>
  );
}

function Composer({ store, conversation }: { store: Store; conversation: Conversation }) {
  const [text, setText] = useState("");
  const [route, setRoute] = useState("internal");
  const [picked, setPicked] = useState<string[]>([]);
  const picker = useRef<HTMLInputElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const linked = Object.keys(store.me?.channels ?? {});
  useEffect(() => input.current?.focus(), [conversation.id]);
  const channels = route === "internal" ? undefined : route === "all" ? ["all"] : picked.length ? picked : undefined;
  const send = () => {
    const value = text.trim();
    if (!value) return;
    setText("");
    void store.sendText(conversation.id, value, channels);
  };
  return (
    <form class="composer" onSubmit={(e) => { e.preventDefault(); send(); }}>
      <input ref={picker} type="file" multiple hidden data-testid="file-input"
        onChange={(e) => {
          for (const f of (e.target as HTMLInputElement).files ?? []) store.startUpload(f, conversation.id);
          (e.target as HTMLInputElement).value = "";
        }} />
      <button type="button" onClick={() => picker.current?.click()} aria-label="Attach a file" title="Attach a file (or drop it here)">
        <Icon d={CLIP} /></button>
      <label class="sr-only" for="compose">Message</label>
      <textarea id="compose" ref={input} rows={1} placeholder="Write a message" value={text} data-testid="compose"
        onInput={(e) => { setText((e.target as HTMLTextAreaElement).value); store.typingStart(conversation.id); }}
        onKeyDown={(e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } }} />
      <label class="route">
        <span class="sr-only">Send over</span>
        <select value={route} onChange={(e) => setRoute((e.target as HTMLSelectElement).value)} title="Where to deliver">
          <option value="internal">In-app</option>
          <option value="all">All channels</option>
          {store.features.channels.length > 0 && <option value="picked">Pick channels…</option>}
        </select>
      </label>
      {route === "picked" && (
        <fieldset class="picked">
          <legend class="sr-only">Channels</legend>
          {["internal", ...store.features.channels].map((c) => (
            <label key={c} class="small">
              <input type="checkbox" checked={picked.includes(c)}
                onChange={(e) => setPicked((e.target as HTMLInputElement).checked ? [...picked, c] : picked.filter((x) => x !== c))} />
              {c}{c !== "internal" && !linked.includes(c) ? "" : ""}
            </label>
          ))}
        </fieldset>
      )}
      <button type="submit" class="primary" data-testid="send">Send</button>
    </form>
  );
}

function GroupSettings({ store, conversation }: { store: Store; conversation: Conversation }) {
  const [name, setName] = useState(conversation.name ?? "");
  const [add, setAdd] = useState("");
  const [error, setError] = useState("");
  const me = store.me!.username;
  const myRole = conversation.roles[me] ?? "member";
  const manage = myRole === "owner" || myRole === "admin";
  const act = async (work: () => Promise<void>) => {
    setError("");
    try {
      await work();
    } catch (e) {
      setError(errorText(e));
    }
  };
  if (!store.features.v2)
    return <div class="group-panel muted">Members: {conversation.members.join(", ")}. Renaming and membership changes need API v2.</div>;
  return (
    <div class="group-panel" data-testid="group-panel">
      {manage && (
        <form class="row" onSubmit={(e) => { e.preventDefault(); void act(() => store.rename(conversation.id, name)); }}>
          <label class="grow">Name<input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
          <button type="submit">Rename</button>
        </form>
      )}
      <ul class="members">
        {conversation.members.map((m) => (
          <li key={m}>{m} <span class="muted small">{conversation.roles[m]}</span>
            {manage && m !== me && <button class="link small" onClick={() => void act(() => store.removeMember(conversation.id, m))}>Remove</button>}
          </li>
        ))}
      </ul>
      {manage && (
        <form class="row" onSubmit={(e) => { e.preventDefault(); void act(() => store.addMembers(conversation.id, add.split(/[\s,]+/).filter(Boolean))).then(() => setAdd("")); }}>
          <label class="grow">Add people<input value={add} data-testid="add-member" onInput={(e) => setAdd((e.target as HTMLInputElement).value)} /></label>
          <button type="submit" data-testid="add-member-submit">Add</button>
        </form>
      )}
      <button onClick={() => void act(async () => { await store.leave(conversation.id); location.hash = "#/"; })}>Leave group</button>
      {error && <p class="error" role="alert">{error}</p>}
    </div>
  );
}

// ------------------------------------------------------------------ channels
const CHANNEL_NAMES: Record<string, string> = { whatsapp: "WhatsApp", instagram: "Instagram", messenger: "Messenger", telegram: "Telegram" };
const CHANNEL_HINT: Record<string, string> = {
  whatsapp: "phone number in international form, e.g. +5511999990000",
  instagram: "Instagram-scoped user id",
  messenger: "page-scoped user id (PSID)",
  telegram: "chat id, e.g. 123456789",
};

function Settings({ store }: { store: Store }) {
  const channels = store.features.channels.length ? store.features.channels : Object.keys(CHANNEL_NAMES);
  return (
    <section class="settings" aria-labelledby="settings-title">
      <header class="bar">
        <a href="#/" class="button back" aria-label="Back to conversations">←</a>
        <h2 id="settings-title">Channels</h2>
      </header>
      <div class="scroll">
        <p class="muted">Link your accounts on other networks: messages sent to you over “All channels” reach you there too,
          and replies from there come back into the conversation.</p>
        {channels.map((c) => <ChannelRow key={c} store={store} channel={c} />)}
      </div>
    </section>
  );
}

function ChannelRow({ store, channel }: { store: Store; channel: string }) {
  const current = store.me?.channels[channel];
  const [value, setValue] = useState(current ?? "");
  const [error, setError] = useState("");
  const [saved, setSaved] = useState(false);
  const [claim, setClaim] = useState<ChannelLink | null>(null);
  const label = CHANNEL_NAMES[channel] ?? channel;
  const waiting = claim !== null && current !== claim.external_id;
  // a claim is proven from the other network: look again every few seconds until it is linked
  useEffect(() => {  // the code arrived: the claim is done
    if (claim !== null && current === claim.external_id) {
      setClaim(null);
      setSaved(true);
    }
  }, [claim, current]);
  useEffect(() => {
    if (!waiting) return;
    const timer = setInterval(() => void store.refreshMe().catch(() => undefined), 3000);
    return () => clearInterval(timer);
  }, [waiting, store]);
  const save = async (event: Event) => {
    event.preventDefault();
    setError("");
    setSaved(false);
    try {
      const link = await store.linkChannel(channel, value.trim());
      setClaim(link.status === "pending" ? link : null);
      setSaved(link.status === "linked");
    } catch (e) {
      setError(errorText(e));
    }
  };
  const pill = current && !waiting
    ? <span class="pill ok">linked</span>
    : waiting ? <span class="pill">waiting for the code</span> : <span class="pill">not linked</span>;
  return (
    <form class="card channel" onSubmit={save} data-testid={`channel-${channel}`}>
      <h3>{label} {pill}</h3>
      <label>{label} id <span class="muted small">({CHANNEL_HINT[channel] ?? "your id there"})</span>
        <input value={value} required onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      </label>
      {waiting && claim && (
        <div class="claim" role="status" data-testid={`claim-${channel}`}>
          <p>To prove {claim.external_id} is yours, send this code from it to our {label} account:</p>
          <p class="code"><strong>{claim.code}</strong></p>
          <p class="muted small">It is linked as soon as the code arrives (until {new Date(claim.expires_at ?? "").toLocaleTimeString()}).</p>
          <button type="button" onClick={() => void store.refreshMe()}>I sent it</button>
        </div>
      )}
      <div class="row">
        <button type="submit" class="primary">{current ? "Update" : "Link"}</button>
        {current && <button type="button" onClick={() => void store.unlinkChannel(channel).then(() => setValue(""))}>Unlink</button>}
        {saved && <span class="muted small" role="status">Saved.</span>}
      </div>
      {error && <p class="error" role="alert">{error}</p>}
    </form>
  );
}

export type { ComponentChildren };
