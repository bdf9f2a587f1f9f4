// Shared helpers of the Chat4All k6 scripts: settings from the environment, and the setup
// (register users, log them in, create conversations) that every script starts with.
//
// Only k6 built-ins are used. The scripts import this file with a relative path, so run them
// from anywhere: `k6 run loadtest/k6/sustained.js` resolves `./lib/chat4all.js` next to it.

import http from 'k6/http';
import crypto from 'k6/crypto';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };

// --- settings --------------------------------------------------------------------------------

export function envInt(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || Math.floor(value) !== value) {
    throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function envStr(name, fallback) {
  const raw = __ENV[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

export function envBool(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  return ['1', 'true', 'yes', 'on'].includes(String(raw).toLowerCase());
}

// k6 duration strings ("90s", "1m30s", "500ms", "2h") in seconds, for the arithmetic of the
// thresholds (how many iterations a run should have).
export function durationSeconds(text) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = '';
  let match;
  while ((match = re.exec(text)) !== null) {
    total += Number(match[1]) * units[match[2]];
    consumed += match[0];
  }
  if (consumed !== text) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 30s, 5m, 1h30m)`);
  return total;
}

// The summary shows p(99) too (k6 stops at p(95) by default).
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

// --- setup -----------------------------------------------------------------------------------

// A short random id so that the users of one run never collide with those of an earlier run
// against the same server (usernames are unique). RUN_ID=... fixes it.
export function newRunId() {
  return envStr('RUN_ID', crypto.hexEncode(crypto.randomBytes(4)));
}

function expectStatus(res, status, what) {
  if (res.status !== status) {
    fail(`${what}: expected ${status}, got ${res.status} ${String(res.body).slice(0, 300)}`);
  }
}

// Runs the requests in batches of SETUP_CONCURRENCY (default 20): registration and login cost a
// bcrypt hash each (server side), so a few hundred users take a while at the default cost.
function inBatches(requests) {
  const size = Math.max(1, envInt('SETUP_CONCURRENCY', 20));
  let responses = [];
  for (let i = 0; i < requests.length; i += size) {
    responses = responses.concat(http.batch(requests.slice(i, i + size)));
  }
  return responses;
}

// Registers `count` users named `lt-<runId>-<i>` and logs them in; returns [{username, token}].
export function registerAndLogin(runId, count) {
  const users = [];
  for (let i = 0; i < count; i++) {
    users.push({ username: `lt-${runId}-${i}`, password: `load-test-${runId}` });
  }
  const registered = inBatches(
    users.map((u) => ({
      method: 'POST',
      url: `${BASE_URL}/v1/auth/register`,
      body: JSON.stringify({ username: u.username, password: u.password }),
      params: { headers: JSON_HEADERS, tags: { name: 'setup: register' } },
    })),
  );
  registered.forEach((res, i) => expectStatus(res, 201, `register ${users[i].username}`));
  const tokens = inBatches(
    users.map((u) => ({
      method: 'POST',
      url: `${BASE_URL}/v1/auth/token`,
      body: JSON.stringify({ username: u.username, password: u.password }),
      params: { headers: JSON_HEADERS, tags: { name: 'setup: login' } },
    })),
  );
  return users.map((u, i) => {
    expectStatus(tokens[i], 200, `log in ${u.username}`);
    return { username: u.username, token: tokens[i].json('access_token') };
  });
}

// `count` private conversations over count + 1 users, as a chain: conversation i is between
// user i (who sends into it) and user i + 1, so no two conversations have the same pair.
// Returns [{conversation_id, token}] (the sender's token).
export function setupConversations(count) {
  if (count < 1) fail('CONVERSATIONS must be at least 1');
  const runId = newRunId();
  const users = registerAndLogin(runId, count + 1);
  const created = inBatches(
    users.slice(0, count).map((sender, i) => ({
      method: 'POST',
      url: `${BASE_URL}/v1/conversations`,
      body: JSON.stringify({ type: 'private', members: [users[i + 1].username] }),
      params: { headers: authHeaders(sender.token), tags: { name: 'setup: conversation' } },
    })),
  );
  const conversations = created.map((res, i) => {
    expectStatus(res, 201, `create conversation ${i}`);
    return { conversation_id: res.json('conversation_id'), token: users[i].token };
  });
  console.log(`run ${runId}: ${users.length} users, ${conversations.length} conversations at ${BASE_URL}`);
  return { runId, conversations };
}

export function authHeaders(token) {
  return { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` };
}

// --- the message load --------------------------------------------------------------------------

const TEXT = 'x'.repeat(Math.max(1, envInt('TEXT_CHARS', 100)));

// Time from sending POST /v1/messages to its 202 (the message is durably in the event log).
const acceptLatency = new Trend('accept_latency', true);
const accepted = new Counter('messages_accepted');

// One POST /v1/messages into conversation number `n` (modulo their count), round robin.
export function sendMessage(data, n) {
  const conversation = data.conversations[n % data.conversations.length];
  const res = http.post(
    `${BASE_URL}/v1/messages`,
    JSON.stringify({ conversation_id: conversation.conversation_id, payload: { type: 'text', text: TEXT } }),
    { headers: authHeaders(conversation.token), tags: { name: 'POST /v1/messages' } },
  );
  if (res.status === 202) {
    acceptLatency.add(res.timings.duration);
    accepted.add(1);
  }
  return res;
}

// The iteration of the message scripts: the next message, checked for its 202.
export function sendNextMessage(data) {
  const res = sendMessage(data, exec.scenario.iterationInTest);
  check(res, { 'message accepted (202)': (r) => r.status === 202 });
}

// Options of the message scripts, which differ only in their arrival-rate scenario: the
// thresholds (p99 accept, failures, checks, iterations k6 could not start in time).
export function messageLoadOptions(scenarios, maxDropped) {
  return {
    setupTimeout: envStr('SETUP_TIMEOUT', '10m'),
    scenarios,
    thresholds: {
      accept_latency: [`p(99)<${envInt('ACCEPT_P99_MS', 200)}`],
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
      dropped_iterations: [`count<=${maxDropped}`],
    },
    summaryTrendStats: SUMMARY_TREND_STATS,
  };
}
