"""Fixtures of the API tests."""

from __future__ import annotations

import pytest


@pytest.fixture
async def pair(make_user):
    """alice and bob, registered and logged in, and their private conversation's id."""
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation = await alice.create_conversation("private", ["bob"])
    return alice, bob, conversation["conversation_id"]
