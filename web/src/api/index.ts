/** The Chat4All JavaScript SDK: a typed HTTP client, the live socket, resumable uploads. */
export * from "./types";
export { ApiError, Chat4AllClient, type ClientOptions, type Features } from "./client";
export { LiveSocket, type ConnectionState, type LiveSocketOptions } from "./socket";
export { Upload, UploadStore, type UploadOptions, type UploadPhase, type UploadProgress, type UploadRecord } from "./upload";
export { sha256 } from "./sha256";
