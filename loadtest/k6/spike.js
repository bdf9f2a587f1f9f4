// Spike: from 0 to 200,000 messages per minute (3,334/s) and back to 0, open loop.
//
//   k6 run loadtest/k6/spike.js                                       # 2 m up, 1 m at peak, 2 m down
//   k6 run -e RAMP_UP=30s -e HOLD=5m -e RAMP_DOWN=30s loadtest/k6/spike.js
//   k6 run -e PEAK_RATE=40 -e RAMP_UP=2s -e HOLD=1s -e RAMP_DOWN=2s loadtest/k6/spike.js  # a smoke run
//
// Same setup as sustained.js (users named after a random run id, logged in, CONVERSATIONS private
// conversations); then a `ramping-arrival-rate` executor raises the arrival rate linearly from 0
// to PEAK_RATE over RAMP_UP, keeps it for HOLD and brings it back to 0 over RAMP_DOWN. Each
// iteration POSTs one text message to /v1/messages and checks the 202.
//
// Environment (all optional):
//   BASE_URL           http://127.0.0.1:8080
//   PEAK_RATE          3334       messages per second at the peak (200,000/min)
//   RAMP_UP            2m         0 → PEAK_RATE
//   HOLD               1m         at PEAK_RATE
//   RAMP_DOWN          2m         PEAK_RATE → 0
//   CONVERSATIONS      100        conversations (each has its own sender)
//   PRE_VUS            300        VUs allocated before the start
//   MAX_VUS            3000       VUs k6 may add when answers slow down
//   TEXT_CHARS         100        length of each message's text
//   ACCEPT_P99_MS      200        threshold: p(99) of the accept latency
//   MAX_DROPPED        1% of the iterations the stages ask for   threshold: iterations k6 could not start
//   SETUP_CONCURRENCY  20         parallel requests in setup
//   SETUP_TIMEOUT      10m
//   RUN_ID             random     names the users lt-<RUN_ID>-<n>
//
// A failed threshold makes k6 exit with code 99.

import {
  durationSeconds,
  envInt,
  envStr,
  messageLoadOptions,
  sendNextMessage,
  setupConversations,
} from './lib/chat4all.js';

const PEAK_RATE = envInt('PEAK_RATE', 3334);
const RAMP_UP = envStr('RAMP_UP', '2m');
const HOLD = envStr('HOLD', '1m');
const RAMP_DOWN = envStr('RAMP_DOWN', '2m');
const CONVERSATIONS = envInt('CONVERSATIONS', 100);
// The ramps average half the peak: the stages ask for PEAK_RATE × (RAMP_UP/2 + HOLD + RAMP_DOWN/2).
const EXPECTED = PEAK_RATE * (durationSeconds(RAMP_UP) / 2 + durationSeconds(HOLD) + durationSeconds(RAMP_DOWN) / 2);
const MAX_DROPPED = envInt('MAX_DROPPED', Math.floor(0.01 * EXPECTED));

export const options = messageLoadOptions({
  spike: {
    executor: 'ramping-arrival-rate',
    startRate: 0,
    timeUnit: '1s',
    preAllocatedVUs: envInt('PRE_VUS', 300),
    maxVUs: envInt('MAX_VUS', 3000),
    stages: [
      { target: PEAK_RATE, duration: RAMP_UP },
      { target: PEAK_RATE, duration: HOLD },
      { target: 0, duration: RAMP_DOWN },
    ],
  },
}, MAX_DROPPED);

export function setup() {
  return setupConversations(CONVERSATIONS);
}

export default sendNextMessage;
