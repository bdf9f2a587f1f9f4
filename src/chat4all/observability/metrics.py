"""Prometheus metrics (R13.1). Metric objects are process-wide by nature; they hold no connection."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "chat4all_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "chat4all_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
MESSAGES = Counter(
    "chat4all_messages_total",
    "Messages by stage: accepted (202), duplicate, persisted (router), pushed (to a socket)",
    ["stage"],
)
DELIVERY_STATUS = Counter(
    "chat4all_delivery_status_total", "Deliveries that moved to a status", ["channel", "status"]
)
ACCEPT_TO_DELIVERED = Histogram(
    "chat4all_accept_to_delivered_seconds",
    "From the API accepting a message to the recipient acknowledging it",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
ROUTER_BATCH = Histogram(
    "chat4all_router_batch_size", "Events handled per router batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
CONSUMER_LAG = Gauge(
    "chat4all_consumer_lag",
    "Records on the event log this worker's consumer has not taken yet (its partitions only)",
    ["worker", "topic"],
)
WORKER_ERRORS = Counter("chat4all_worker_errors_total", "Batches a worker failed to handle", ["worker"])
WEBSOCKET_CONNECTIONS = Gauge("chat4all_websocket_connections", "Open WebSocket connections on this node")
WEBHOOK_CALLBACKS = Counter(
    "chat4all_webhook_callbacks_total",
    "Webhook callbacks by stage: enqueued, delivered, failed (every attempt failed), cancelled",
    ["stage"],
)
WEBHOOK_ATTEMPTS = Counter(
    "chat4all_webhook_attempts_total", "Webhook POST attempts by outcome (2xx, 4xx, 5xx, error)", ["outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "chat4all_webhook_attempt_duration_seconds", "Time a webhook endpoint took to answer", buckets=LATENCY_BUCKETS
)
CONNECTOR_BREAKER = Gauge(
    "chat4all_connector_breaker_state", "Circuit breaker of each connector: 0 closed, 1 open, 2 half-open", ["channel"]
)
CONNECTOR_ATTEMPTS = Counter(
    "chat4all_connector_attempts_total",
    "Sends to external channels by outcome: ok, transient, rate_limited, permanent, circuit_open",
    ["channel", "outcome"],
)
CONNECTOR_ERRORS = Counter(
    "chat4all_connector_errors_total", "Failed sends to external channels (every outcome but ok)", ["channel"]
)
CONNECTOR_LATENCY = Histogram(
    "chat4all_connector_send_duration_seconds", "Time a provider took to take a message", ["channel"],
    buckets=LATENCY_BUCKETS,
)
CONNECTOR_DEAD_LETTERS = Counter(
    "chat4all_connector_dead_letters_total", "Deliveries that gave up and went to the dead-letter queue", ["channel"]
)
CONNECTOR_CONFIG = Gauge(
    "chat4all_connector_config_timestamp_seconds",
    "When the configuration a connector runs with was written (tells which version each process runs)",
    ["channel"],
)
GC_PAUSE = Histogram(
    "chat4all_gc_pause_seconds",
    "Time the process stood still in Python's cyclic garbage collector, by generation",
    ["generation"],
    buckets=LATENCY_BUCKETS,
)
