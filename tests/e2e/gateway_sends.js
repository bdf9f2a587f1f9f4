// Steady sends through the gateway for tests/e2e/test_gateway_failover.py: RATE a second for
// DURATION, each with its own message_id, sent as Idempotency-Key too. One console line per send:
// "SEND <message_id> <status or error code>". The gateway's CA comes from SSL_CERT_FILE.
import http from 'k6/http';
import exec from 'k6/execution';

const conversations = JSON.parse(__ENV.CONVERSATIONS);
const headers = { Authorization: `Bearer ${__ENV.TOKEN}`, 'Content-Type': 'application/json' };

export const options = {
  scenarios: {
    sends: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE),
      timeUnit: '1s',
      duration: __ENV.DURATION,
      preAllocatedVUs: 200,
      maxVUs: 1500,  // a send may take seconds on a busy machine: arrivals are never dropped for want of a VU
    },
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(99)', 'max'],
};

export default function () {
  const i = exec.scenario.iterationInTest;
  const messageId = `${__ENV.RUN}-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const body = JSON.stringify({
    message_id: messageId,
    conversation_id: conversations[i % conversations.length],
    payload: { type: 'text', text: `m${i}` },
  });
  const res = http.post(`${__ENV.BASE_URL}/v1/messages`, body, {
    headers: { ...headers, 'Idempotency-Key': messageId },
    timeout: '30s',
  });
  console.log(`SEND ${messageId} ${res.status || res.error_code}`);
}
