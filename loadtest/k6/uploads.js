// Concurrent file uploads through the Chat4All files API (docs/files.md).
//
//   k6 run loadtest/k6/uploads.js                                     # 10 VUs × 3 uploads of 1 MiB
//   k6 run -e FILE_SIZE=104857600 -e VUS=20 -e ITERATIONS=1 loadtest/k6/uploads.js   # 20 × 100 MiB
//   k6 run -e VUS=2 -e ITERATIONS=1 -e DOWNLOAD=1 loadtest/k6/uploads.js             # a smoke run
//
// setup() registers VUS users named after a random run id and logs them in; each VU uploads
// with its own user. An iteration is one whole upload:
//   1. random bytes of FILE_SIZE and their SHA-256 (k6/crypto);
//   2. POST /v1/files/initiate {filename, size, content_type, sha256} → 201 {file_id, part_size, parts};
//   3. PUT each part's bytes to its absolute URL, with no token (→ 200), PART_CONCURRENCY at a time;
//   4. POST /v1/files/complete {file_id, sha256} → 200, status "completed" (the server re-reads
//      the stored bytes and checks the digest);
//   5. with DOWNLOAD=1, GET the returned download_url (no token) and compare its SHA-256.
// The server picks the part size (CHAT4ALL_FILE_PART_BYTES, 8 MiB by default; 5 MiB at least on
// S3); a file up to one part is a single PUT.
//
// Environment (all optional):
//   BASE_URL           http://127.0.0.1:8080
//   FILE_SIZE          1048576    bytes per file (every VU holds one file in memory, twice while
//                                 slicing parts: mind the k6 machine's RAM for big files)
//   VUS                10         concurrent uploaders
//   ITERATIONS         3          uploads per VU
//   PART_CONCURRENCY   4          parts of one file in flight at once
//   DOWNLOAD           0          1: also download each completed file and check its SHA-256
//   PART_TIMEOUT       120s       timeout of one part PUT (and of a download)
//   COMPLETE_TIMEOUT   600s       timeout of complete (it hashes the whole stored file)
//   MAX_DURATION       30m        the scenario stops after this even if uploads remain
//   SETUP_CONCURRENCY  20         parallel requests in setup
//   RUN_ID             random     names the users lt-<RUN_ID>-<n>
//
// A failed threshold (any failed check or request) makes k6 exit with code 99.

import http from 'k6/http';
import crypto from 'k6/crypto';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import {
  BASE_URL,
  SUMMARY_TREND_STATS,
  authHeaders,
  envBool,
  envInt,
  envStr,
  newRunId,
  registerAndLogin,
} from './lib/chat4all.js';

const FILE_SIZE = envInt('FILE_SIZE', 1024 * 1024);
const VUS = envInt('VUS', 10);
const PART_CONCURRENCY = Math.max(1, envInt('PART_CONCURRENCY', 4));
const DOWNLOAD = envBool('DOWNLOAD', false);
const PART_TIMEOUT = envStr('PART_TIMEOUT', '120s');
const COMPLETE_TIMEOUT = envStr('COMPLETE_TIMEOUT', '600s');

const uploadDuration = new Trend('upload_duration', true); // initiate → completed
const completeLatency = new Trend('complete_latency', true); // the complete call alone
const uploadedBytes = new Counter('uploaded_bytes');
const filesCompleted = new Counter('files_completed');

export const options = {
  setupTimeout: envStr('SETUP_TIMEOUT', '10m'),
  scenarios: {
    uploads: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: envInt('ITERATIONS', 3),
      maxDuration: envStr('MAX_DURATION', '30m'),
    },
  },
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  const runId = newRunId();
  const users = registerAndLogin(runId, VUS);
  console.log(`run ${runId}: ${VUS} uploaders, ${FILE_SIZE} bytes per file at ${BASE_URL}`);
  return { runId, tokens: users.map((u) => u.token) };
}

export default function (data) {
  const token = data.tokens[(exec.vu.idInTest - 1) % data.tokens.length];
  const bytes = crypto.randomBytes(FILE_SIZE);
  const sha256 = crypto.sha256(bytes, 'hex');
  const started = Date.now();

  // 1. initiate
  const initiated = http.post(
    `${BASE_URL}/v1/files/initiate`,
    JSON.stringify({
      filename: `load-${data.runId}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}.bin`,
      size: FILE_SIZE,
      content_type: 'application/octet-stream',
      sha256,
    }),
    { headers: authHeaders(token), tags: { name: 'POST /v1/files/initiate' } },
  );
  if (!check(initiated, { 'initiate 201': (r) => r.status === 201 })) return;
  const { file_id: fileId, part_size: partSize, parts } = initiated.json();

  // 2. the parts, PART_CONCURRENCY at a time, to the URLs as given (absolute, signed, no token)
  let allStored = true;
  for (let i = 0; i < parts.length; i += PART_CONCURRENCY) {
    const batch = parts.slice(i, i + PART_CONCURRENCY);
    const answers = http.batch(
      batch.map((part) => {
        const start = (part.part_number - 1) * partSize;
        return {
          method: 'PUT',
          url: part.url,
          body: bytes.slice(start, Math.min(start + partSize, FILE_SIZE)),
          params: {
            headers: { 'Content-Type': 'application/octet-stream' },
            timeout: PART_TIMEOUT,
            tags: { name: 'PUT part' },
          },
        };
      }),
    );
    answers.forEach((res) => {
      if (!check(res, { 'part PUT 200': (r) => r.status === 200 })) allStored = false;
    });
  }
  if (!allStored) return;
  uploadedBytes.add(FILE_SIZE);

  // 3. complete: the server checks the stored bytes against the digest
  const completed = http.post(
    `${BASE_URL}/v1/files/complete`,
    JSON.stringify({ file_id: fileId, sha256 }),
    { headers: authHeaders(token), timeout: COMPLETE_TIMEOUT, tags: { name: 'POST /v1/files/complete' } },
  );
  completeLatency.add(completed.timings.duration);
  const ok = check(completed, {
    'complete 200': (r) => r.status === 200,
    'file completed with our digest': (r) =>
      r.status === 200 && r.json('status') === 'completed' && r.json('sha256') === sha256 && r.json('size') === FILE_SIZE,
  });
  if (!ok) return;
  uploadDuration.add(Date.now() - started);
  filesCompleted.add(1);

  // 4. optionally download it back through its URL (no token) and compare
  if (DOWNLOAD) {
    const downloaded = http.get(completed.json('download_url'), {
      responseType: 'binary',
      timeout: PART_TIMEOUT,
      tags: { name: 'GET download' },
    });
    check(downloaded, {
      'download 200': (r) => r.status === 200,
      'download has our digest': (r) => r.status === 200 && crypto.sha256(r.body, 'hex') === sha256,
    });
  }
}
