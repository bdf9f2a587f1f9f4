"""The flow an app developer runs first, written against the client openapi-python-client
generated from /openapi.json (package ``chat4all_generated``), with no hand-written workaround:
register → token → conversation → send → history. Run by tests/api/test_v2_live_openapi_clients.py
as ``python python_flow.py <generated dir> <base url> <suffix>``."""

from __future__ import annotations

import sys
import time
import uuid

sys.path.insert(0, sys.argv[1])

from chat4all_generated import AuthenticatedClient, Client  # noqa: E402
from chat4all_generated.api.auth import create_token, register  # noqa: E402
from chat4all_generated.api.conversations import create_conversation, list_conversation_messages  # noqa: E402
from chat4all_generated.api.messages import send_message  # noqa: E402
from chat4all_generated.models import (  # noqa: E402
    CreateConversation,
    CreateConversationType,
    MessageAccepted,
    MessageDuplicate,
    PasswordGrant,
    RegisterRequest,
    SendMessage,
    TextPayload,
    TextPayloadOut,
)

base_url, suffix = sys.argv[2], sys.argv[3]
alice, bob, password = f"py_alice_{suffix}", f"py_bob_{suffix}", "correct-horse-battery"
public = Client(base_url=base_url, raise_on_unexpected_status=True)
for name in (alice, bob):
    created = register.sync(client=public, body=RegisterRequest(username=name, password=password))
    assert created is not None and created.username == name, created
tokens = create_token.sync(client=public, body=PasswordGrant(grant_type="password", username=alice, password=password))
assert tokens is not None and hasattr(tokens, "access_token"), tokens
client = AuthenticatedClient(base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True)
conversation = create_conversation.sync(
    client=client, body=CreateConversation(type_=CreateConversationType.PRIVATE, members=[bob])
)
assert conversation is not None and hasattr(conversation, "conversation_id"), conversation
message_id = str(uuid.uuid4())
body = SendMessage(conversation_id=conversation.conversation_id, message_id=message_id, payload=TextPayload(type_="text", text="hi from python"))
accepted = send_message.sync(client=client, body=body)
assert isinstance(accepted, MessageAccepted) and accepted.status == "accepted", accepted
again = send_message.sync(client=client, body=body)
assert isinstance(again, MessageDuplicate) and again.duplicate is True, again
deadline = time.monotonic() + 15
while True:
    page = list_conversation_messages.sync(uuid.UUID(conversation.conversation_id), client=client)
    assert page is not None and hasattr(page, "items"), page
    if page.items or time.monotonic() > deadline:
        break
    time.sleep(0.05)
[message] = page.items
assert message.message_id == message_id and message.from_ == alice and message.sequence_number == 1
assert isinstance(message.payload, TextPayloadOut) and message.payload.text == "hi from python", message.payload
print("python flow ok")
