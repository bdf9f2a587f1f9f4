/**
 * Resumable multipart upload (`/v1/files/initiate` → PUT parts → `/v1/files/complete`).
 *
 * Parts go straight to their signed URLs (no token), a few at a time, with byte progress.
 * `pause()` aborts the parts in flight; `resume()` asks the server which parts it has
 * (`GET /v1/files/{id}/upload`, with fresh URLs for the rest) and sends only those. A dropped
 * network does the same by itself when the browser is back online. The SHA-256 is computed in
 * a worker while the parts upload, and the server checks it on complete.
 *
 * `UploadStore` keeps the file itself (a Blob, in IndexedDB) with its id, so an upload goes on
 * after a page reload without picking the file again.
 */
import { ApiError, type Chat4AllClient } from "./client";
import { sha256 } from "./sha256";
import type { FileInfo, PartUrl } from "./types";

export type UploadPhase = "starting" | "uploading" | "paused" | "interrupted" | "completing" | "done" | "failed";

export interface UploadProgress {
  phase: UploadPhase;
  sent: number;
  total: number;
  hashed: number;
  error?: string;
}

export interface UploadRecord {
  file_id: string;
  blob: Blob;
  filename: string;
  content_type: string;
  /** what the app wants done once complete (e.g. the conversation to send it to) */
  context: Record<string, unknown>;
  created_at: number;
}

export interface UploadOptions {
  concurrency?: number;
  store?: UploadStore | null;
  context?: Record<string, unknown>;
  onProgress?: (progress: UploadProgress) => void;
  /** an upload started before (after a reload) */
  fileId?: string;
  filename?: string;
}

export class Upload {
  fileId: string | null;
  readonly blob: Blob;
  readonly filename: string;
  private progressValue: UploadProgress;
  private partSize = 0;
  private doneBytes = 0;
  private readonly inflight = new Map<number, XMLHttpRequest>();
  private readonly inflightBytes = new Map<number, number>();
  private hash: Promise<string> | null = null;
  private running: Promise<void> | null = null;
  private paused = false;
  private finished: { resolve: (f: FileInfo) => void; reject: (e: Error) => void } | null = null;
  readonly result: Promise<FileInfo>;
  private readonly online = () => {
    if (this.progressValue.phase === "interrupted") void this.resume();
  };

  constructor(
    private readonly client: Chat4AllClient,
    blob: Blob,
    private readonly options: UploadOptions = {},
  ) {
    this.blob = blob;
    this.filename = options.filename ?? (blob instanceof File ? blob.name : "file");
    this.fileId = options.fileId ?? null;
    this.progressValue = { phase: "starting", sent: 0, total: blob.size, hashed: 0 };
    this.result = new Promise((resolve, reject) => (this.finished = { resolve, reject }));
    this.result.catch(() => {});
  }

  get progress(): UploadProgress {
    return this.progressValue;
  }

  /** Starts (or, with `fileId`, continues) the upload; resolves with the completed file. */
  start(): Promise<FileInfo> {
    globalThis.addEventListener?.("online", this.online);
    this.hash ??= sha256(this.blob, (f) => this.report({ hashed: f }));
    this.hash.catch(() => {});
    this.run();
    return this.result;
  }

  pause(): void {
    if (this.progressValue.phase !== "uploading" && this.progressValue.phase !== "interrupted") return;
    this.paused = true;
    this.abortInflight();
    this.report({ phase: "paused" });
  }

  resume(): Promise<FileInfo> {
    this.paused = false;
    if (!this.running) this.run();
    return this.result;
  }

  /** Stops for good and forgets the upload (the server drops unfinished uploads when they expire). */
  async cancel(): Promise<void> {
    this.paused = true;
    this.abortInflight();
    globalThis.removeEventListener?.("online", this.online);
    if (this.fileId) await this.options.store?.delete(this.fileId);
    this.report({ phase: "failed", error: "cancelled" });
    this.finished?.reject(new Error("cancelled"));
  }

  private run(): void {
    this.running = this.attempt().finally(() => (this.running = null));
  }

  /** One go at it: ends when the upload is done, paused, failed or interrupted. */
  private async attempt(): Promise<void> {
    try {
      let parts: PartUrl[];
      if (!this.fileId) {
        const ticket = await this.client.initiateUpload({
          filename: this.filename,
          size: this.blob.size,
          content_type: this.blob.type || undefined,
        });
        this.fileId = ticket.file_id;
        this.partSize = ticket.part_size;
        parts = ticket.parts;
        await this.options.store?.put({
          file_id: ticket.file_id,
          blob: this.blob,
          filename: this.filename,
          content_type: this.blob.type,
          context: this.options.context ?? {},
          created_at: Date.now(),
        });
      } else {
        const state = await this.client.uploadState(this.fileId);
        this.partSize = state.part_size;
        if (state.status === "completed") return await this.succeed(await this.client.getFile(this.fileId));
        if (state.status === "failed") throw new Error("the server gave this upload up");
        this.doneBytes = state.uploaded_parts.reduce((sum, p) => sum + p.size, 0);
        parts = state.missing_parts;
      }
      this.report({ phase: "uploading", sent: this.doneBytes });
      await this.sendParts(parts);
      if (this.paused) return;
      this.report({ phase: "completing" });
      const digest = await this.hash!;
      const file = await this.client.completeUpload(this.fileId, digest);
      await this.succeed(file);
    } catch (error) {
      if (this.paused) return;
      if (error instanceof ApiError && error.status < 500 && error.status !== 408 && error.status !== 429) {
        this.report({ phase: "failed", error: error.message });
        if (this.fileId) await this.options.store?.delete(this.fileId);
        this.finished?.reject(error);
        return;
      }
      // the network went away (or the server): wait for it and go on from the upload state
      this.report({ phase: "interrupted", error: String((error as Error).message ?? error) });
      if (globalThis.navigator?.onLine !== false)
        setTimeout(() => this.progressValue.phase === "interrupted" && !this.running && this.run(), 2000);
    }
  }

  private async succeed(file: FileInfo): Promise<void> {
    globalThis.removeEventListener?.("online", this.online);
    if (this.fileId) await this.options.store?.delete(this.fileId);
    this.report({ phase: "done", sent: this.blob.size });
    this.finished?.resolve(file);
  }

  private async sendParts(parts: PartUrl[]): Promise<void> {
    const queue = [...parts];
    const worker = async () => {
      for (let part = queue.shift(); part && !this.paused; part = queue.shift()) await this.put(part);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 3, parts.length) }, worker));
  }

  private put(part: PartUrl): Promise<number> {
    const start = (part.part_number - 1) * this.partSize;
    const body = this.blob.slice(start, Math.min(this.blob.size, start + this.partSize));
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.inflight.set(part.part_number, xhr);
      xhr.open("PUT", part.url);
      xhr.upload.onprogress = (event) => {
        this.inflightBytes.set(part.part_number, event.loaded);
        this.reportSent();
      };
      const done = (error?: Error) => {
        this.inflight.delete(part.part_number);
        this.inflightBytes.delete(part.part_number);
        if (!error) this.doneBytes += body.size;
        this.reportSent();
        if (error) reject(error);
        else resolve(body.size);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) done();
        else done(new Error(`part ${part.part_number}: HTTP ${xhr.status}`));
      };
      xhr.onerror = () => done(new Error(`part ${part.part_number}: the network failed`));
      xhr.onabort = () => done(new Error(`part ${part.part_number}: aborted`));
      xhr.send(body);
    });
  }

  private abortInflight(): void {
    for (const xhr of this.inflight.values()) xhr.abort();
  }

  private reportSent(): void {
    let sent = this.doneBytes;
    for (const n of this.inflightBytes.values()) sent += n;
    this.report({ sent: Math.min(sent, this.blob.size) });
  }

  private report(change: Partial<UploadProgress>): void {
    this.progressValue = { ...this.progressValue, ...change };
    if (change.phase && change.phase !== "failed") delete this.progressValue.error;
    if (change.error) this.progressValue.error = change.error;
    this.options.onProgress?.(this.progressValue);
  }
}

/** Unfinished uploads with their bytes, in IndexedDB, so a reload can resume them. */
export class UploadStore {
  private db: Promise<IDBDatabase>;

  constructor(name = "chat4all-uploads") {
    this.db = new Promise((resolve, reject) => {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore("uploads", { keyPath: "file_id" });
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }

  private async tx<T>(mode: IDBTransactionMode, work: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.db;
    return new Promise((resolve, reject) => {
      const request = work(db.transaction("uploads", mode).objectStore("uploads"));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  put(record: UploadRecord): Promise<IDBValidKey> {
    return this.tx("readwrite", (s) => s.put(record));
  }

  delete(fileId: string): Promise<undefined> {
    return this.tx("readwrite", (s) => s.delete(fileId));
  }

  all(): Promise<UploadRecord[]> {
    return this.tx("readonly", (s) => s.getAll());
  }
}
