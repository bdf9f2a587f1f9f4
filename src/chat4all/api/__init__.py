"""The HTTP + WebSocket API (FastAPI). Routes parse, authorize and call one service function."""
