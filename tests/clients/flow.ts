// The same flow with openapi-typescript's types and openapi-fetch, checked by `tsc --strict`
// (tests/api/test_v2_live_openapi_clients.py generates build/schema.d.ts, compiles, runs this).
import createClient from "openapi-fetch";
import type { components, paths } from "./build/schema.js";

type MessageOut = components["schemas"]["MessageOut"];

function textOf(message: MessageOut): string {
  switch (message.payload.type) {
    case "text":
      return message.payload.text;
    case "file":
      return `${message.payload.filename} (${message.payload.size} bytes)`;
    case "system":
      return message.payload.event;
  }
}

async function main(): Promise<void> {
  const [baseUrl, suffix] = process.argv.slice(2);
  const alice = `ts_alice_${suffix}`;
  const bob = `ts_bob_${suffix}`;
  const password = "correct-horse-battery";
  const api = createClient<paths>({ baseUrl });
  for (const username of [alice, bob]) {
    const { data, error } = await api.POST("/v1/auth/register", { body: { username, password } });
    if (!data) throw new Error(`register: ${JSON.stringify(error)}`);
  }
  const token = await api.POST("/v1/auth/token", { body: { grant_type: "password", username: alice, password } });
  if (!token.data) throw new Error(`token: ${JSON.stringify(token.error)}`);
  const headers = { Authorization: `Bearer ${token.data.access_token}` };
  const conversation = await api.POST("/v1/conversations", { body: { type: "private", members: [bob] }, headers });
  if (!conversation.data) throw new Error(`conversation: ${JSON.stringify(conversation.error)}`);
  const conversationId = conversation.data.conversation_id;
  const sent = await api.POST("/v1/messages", {
    body: { conversation_id: conversationId, payload: { type: "text", text: "hi from typescript" } },
    headers,
  });
  // 202 answers MessageAccepted, 200 (a repeated message_id) MessageDuplicate: the types tell them apart
  if (!sent.data || sent.response.status !== 202 || "duplicate" in sent.data) {
    throw new Error(`send: ${JSON.stringify(sent.error ?? sent.data)}`);
  }
  const accepted: "accepted" = sent.data.status;
  const deadline = Date.now() + 15000;
  for (;;) {
    const page = await api.GET("/v1/conversations/{conversation_id}/messages", {
      params: { path: { conversation_id: conversationId }, query: { since: 0, limit: 10 } },
      headers,
    });
    if (!page.data) throw new Error(`history: ${JSON.stringify(page.error)}`);
    if (page.data.items.length > 0) {
      const [message] = page.data.items;
      if (message.message_id !== sent.data.message_id || textOf(message) !== "hi from typescript") {
        throw new Error(`unexpected message ${JSON.stringify(message)}`);
      }
      console.log(`typescript flow ok (${accepted})`);
      return;
    }
    if (Date.now() > deadline) throw new Error("the message never reached the history");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
