"""Logs (structlog JSON), metrics (prometheus-client) and trace context."""
