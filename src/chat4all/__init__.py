"""Chat4All: one HTTP + WebSocket API for in-app messaging and external channels."""

__version__ = "0.1.0"
