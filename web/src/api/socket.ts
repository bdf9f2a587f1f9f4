/**
 * The live connection: `/v2/ws` when the server has it, else `/v1/ws`.
 *
 * It reconnects by itself (backoff with jitter, at once when the browser comes back online),
 * refreshes the token when the server closes with 4401, keeps the socket alive with pings,
 * and acknowledges every message it receives (DELIVERED), so the server's catch-up on the next
 * connect carries only what this client has not seen. Frames may repeat across a reconnect:
 * a consumer keeps messages by `message_id`.
 */
import type { Chat4AllClient } from "./client";
import type { ClientFrame, ServerFrame } from "./types";

export type ConnectionState = "connecting" | "online" | "reconnecting" | "offline" | "closed";

export interface LiveSocketOptions {
  /** use /v2/ws */
  v2?: boolean;
  pingIntervalMs?: number;
  maxBackoffMs?: number;
  /** acknowledge received messages as DELIVERED (default true) */
  autoAck?: boolean;
  WebSocket?: typeof WebSocket;
}

type FrameListener = (frame: ServerFrame) => void;
type StateListener = (state: ConnectionState) => void;

export class LiveSocket {
  private ws: WebSocket | null = null;
  private stateValue: ConnectionState = "closed";
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pinger: ReturnType<typeof setInterval> | null = null;
  private stopped = true;
  private readonly frameListeners = new Set<FrameListener>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly openListeners = new Set<(reconnected: boolean) => void>();
  private everOpened = false;
  private v2: boolean;
  private v2Failures = 0;
  private readonly online = () => this.reconnectNow();
  private readonly offline = () => this.setState("offline");

  constructor(
    private readonly client: Chat4AllClient,
    private readonly options: LiveSocketOptions = {},
  ) {
    this.v2 = options.v2 ?? false;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  onFrame(listener: FrameListener): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  onState(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Called on every successful connect; `reconnected` is true after the first. Catch up here. */
  onOpen(listener: (reconnected: boolean) => void): () => void {
    this.openListeners.add(listener);
    return () => this.openListeners.delete(listener);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    globalThis.addEventListener?.("online", this.online);
    globalThis.addEventListener?.("offline", this.offline);
    this.open();
  }

  stop(): void {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.online);
    globalThis.removeEventListener?.("offline", this.offline);
    this.clearTimers();
    this.ws?.close(1000, "bye");
    this.ws = null;
    this.setState("closed");
  }

  send(frame: ClientFrame): boolean {
    if (this.ws?.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Gives the open socket a fresh token (after a refresh) so it outlives the old one. */
  reauthenticate(): void {
    const token = this.client.accessToken;
    if (token) this.send({ type: "auth", token });
  }

  private url(): string {
    const base = this.client.baseUrl || globalThis.location.origin;
    return `${base.replace(/^http/, "ws")}/${this.v2 ? "v2" : "v1"}/ws`;
  }

  private open(): void {
    if (this.stopped) return;
    const token = this.client.accessToken;
    if (!token) {
      this.setState("closed");
      return;
    }
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    const Socket = this.options.WebSocket ?? WebSocket;
    let ws: WebSocket;
    try {
      ws = new Socket(this.url(), ["chat4all.v1", `bearer.${token}`]);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    let authFailed = false;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempts = 0;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.setState("online");
      this.pinger = setInterval(() => this.send({ type: "ping" }), this.options.pingIntervalMs ?? 20000);
      for (const listener of this.openListeners) listener(reconnected);
    };
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (frame.type === "error" && frame.error.code === "unauthenticated") authFailed = true;
      if (frame.type === "message" && !frame.own && (this.options.autoAck ?? true))
        this.send({ type: "ack", message_ids: [frame.message.message_id] });
      for (const listener of this.frameListeners) listener(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      // a proxy that does not pass /v2/ws on (an older gateway): v1's socket carries the same traffic
      if (this.v2 && !opened && !this.everOpened && ++this.v2Failures >= 3) this.v2 = false;
      if (event.code === 4401 || authFailed) {
        // the token expired or the session ended: one refresh, then reconnect (or stay signed out)
        this.setState("reconnecting");
        void this.client.refresh().then((ok) => (ok ? this.schedule(0) : this.setState("closed")));
        return;
      }
      this.schedule();
    };
  }

  private schedule(delay?: number): void {
    this.clearTimers();
    if (this.stopped) return;
    const offline = globalThis.navigator?.onLine === false;
    this.setState(offline ? "offline" : "reconnecting");
    const max = this.options.maxBackoffMs ?? 10000;
    const wait = delay ?? Math.min(max, 300 * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts += 1;
    this.timer = setTimeout(() => this.open(), wait);
  }

  private reconnectNow(): void {
    if (this.stopped || this.ws) return;
    this.attempts = 0;
    this.schedule(0);
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.pinger) clearInterval(this.pinger);
    this.timer = null;
    this.pinger = null;
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    for (const listener of this.stateListeners) listener(state);
  }
}
