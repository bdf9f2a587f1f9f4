"""In-memory fakes of the ports, for service tests that run in milliseconds without servers."""
