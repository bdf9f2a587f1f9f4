/// <reference lib="webworker" />
/** Streams a Blob through SHA-256 off the main thread: `{blob}` in, `{progress}`… then `{sha256}` out. */
import { createSHA256 } from "hash-wasm";

const SLICE = 4 * 1024 * 1024;

self.onmessage = async (event: MessageEvent<{ blob: Blob }>) => {
  const { blob } = event.data;
  try {
    const hasher = await createSHA256();
    hasher.init();
    for (let offset = 0; offset < blob.size; offset += SLICE) {
      const chunk = new Uint8Array(await blob.slice(offset, offset + SLICE).arrayBuffer());
      hasher.update(chunk);
      self.postMessage({ progress: Math.min(blob.size, offset + SLICE) / blob.size });
    }
    self.postMessage({ sha256: hasher.digest("hex") });
  } catch (error) {
    self.postMessage({ error: String(error) });
  }
};
