/** SHA-256 of a Blob, streamed in a Web Worker (the page stays responsive for files of gigabytes). */
export function sha256(blob: Blob, onProgress?: (fraction: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./sha256.worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (event: MessageEvent<{ progress?: number; sha256?: string; error?: string }>) => {
      const { progress, sha256: digest, error } = event.data;
      if (progress !== undefined) onProgress?.(progress);
      if (digest !== undefined || error !== undefined) {
        worker.terminate();
        if (digest !== undefined) resolve(digest);
        else reject(new Error(error));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage({ blob });
  });
}
