/** The shapes of the Chat4All HTTP API (v1, and v2 as docs/api-v2.md defines it). */

export type DeliveryStatus = "SENT" | "DELIVERED" | "READ" | "FAILED";

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
  trace_id?: string | null;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "bearer";
  expires_in: number;
}

export interface Me {
  username: string;
  created_at: string;
  channels: Record<string, string>;
}

/** The answer to claiming a channel identity: `linked`, or `pending` until `code` arrives from it. */
export interface ChannelLink {
  channel: string;
  external_id: string;
  status: "linked" | "pending";
  code?: string | null;
  expires_at?: string | null;
  instructions?: string | null;
}

export type TextPayload = { type: "text"; text: string };
export type FilePayload = { type: "file"; file_id: string; caption?: string | null };
export type SystemPayload = { type: "system"; event: string; actor: string; [field: string]: unknown };
export type Payload = TextPayload | FilePayload | SystemPayload;

/** A message as v1 shows it; v2 adds the optional fields. */
export interface Message {
  message_id: string;
  conversation_id: string;
  sequence_number: number;
  from: string;
  to: string[];
  channels: string[];
  payload: Payload | null;
  metadata: Record<string, unknown>;
  created_at: string;
  kind?: "user" | "system";
  edited_at?: string | null;
  deleted?: boolean;
}

export interface SendMessage {
  message_id?: string;
  conversation_id: string;
  to?: string[];
  /** omitted: "internal"; ["all"]: every channel of every recipient; or picked channels */
  channels?: string[];
  payload: TextPayload | FilePayload;
  metadata?: Record<string, unknown>;
}

export interface MessageAccepted {
  message_id: string;
  conversation_id: string;
  status: string;
  duplicate?: boolean | null;
}

export interface RecipientStatus {
  username: string;
  channel: string;
  status: DeliveryStatus;
  updated_at: string;
  error?: string | null;
}

export interface MessageStatus {
  message_id: string;
  status: DeliveryStatus;
  recipients: RecipientStatus[];
  history: { status: DeliveryStatus; at: string; username: string; channel: string; detail?: string | null }[];
}

/** v1's conversation. */
export interface ConversationV1 {
  conversation_id: string;
  type: "private" | "group";
  name: string | null;
  members: string[];
  created_by: string;
  created_at: string;
  metadata: Record<string, unknown>;
}

export type Role = "owner" | "admin" | "member";

/** v2's conversation summary (the inbox). */
export interface ConversationSummary {
  conversation_id: string;
  type: "private" | "group";
  name: string | null;
  topic: string | null;
  members: { username: string; role: Role }[];
  created_by: string;
  created_at: string;
  last_message: Message | null;
  last_sequence: number;
  last_activity_at: string;
  read_up_to: number;
  unread_count: number;
  membership?: "left";
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface InboxPage extends Page<ConversationSummary> {
  sync_token: string;
}

export interface HistoryPage {
  items: Message[];
  prev_cursor: number | null;
  next_cursor: number | null;
}

export interface ReadCursor {
  conversation_id: string;
  read_up_to: number;
  unread_count: number;
}

export interface Presence {
  username: string;
  status: "online" | "offline";
  last_seen: string | null;
}

export interface PartUrl {
  part_number: number;
  url: string;
}

export interface UploadTicket {
  file_id: string;
  part_size: number;
  parts: PartUrl[];
  expires_at: string;
}

export interface UploadState {
  file_id: string;
  status: "uploading" | "completed" | "failed";
  part_size: number;
  uploaded_parts: { part_number: number; size: number }[];
  missing_parts: PartUrl[];
  expires_at?: string | null;
}

export interface FileInfo {
  file_id: string;
  filename: string;
  size: number;
  content_type: string;
  sha256: string | null;
  status: "uploading" | "completed" | "failed";
  created_at: string;
  completed_at?: string | null;
  download_url?: string | null;
  download_expires_at?: string | null;
}

// ---- WebSocket frames, server → client
export interface StatusChange {
  message_id: string;
  username: string;
  channel: string;
  status: DeliveryStatus;
  at: string;
  detail?: string;
}

export type ServerFrame =
  | { type: "message"; message: Message; own?: boolean }
  | { type: "status"; status: StatusChange }
  | { type: "pong" }
  | { type: "authenticated"; expires_at: number }
  | { type: "error"; error: { code: string; message: string } }
  | { type: "message_updated"; message: Message }
  | { type: "read_cursor"; conversation_id: string; up_to_sequence: number; unread_count: number }
  | {
      type: "conversation";
      event: "created" | "updated" | "member_added" | "member_removed" | "left";
      conversation: ConversationSummary;
    }
  | { type: "typing"; conversation_id: string; username: string; state: "start" | "stop"; expires_at?: string }
  | { type: "presence"; username: string; status: "online" | "offline"; last_seen: string | null };

// ---- client → server
export type ClientFrame =
  | { type: "auth"; token: string }
  | { type: "ack" | "read"; message_ids: string[] }
  | { type: "ping" }
  | { type: "typing"; conversation_id: string; state: "start" | "stop" }
  | { type: "read_cursor"; conversation_id: string; up_to_sequence: number };
