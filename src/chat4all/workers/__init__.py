"""Consume loops over the event log: the router (message.events), later webhooks and redrive."""
