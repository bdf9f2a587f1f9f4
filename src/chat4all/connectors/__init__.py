"""External channels (R9): the connector protocol, plugins, resilience, and the built-in
connectors (Telegram for real; WhatsApp, Instagram Direct and Messenger simulated)."""
