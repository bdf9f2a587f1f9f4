"""API v2 (docs/api-v2.md): new routes over the same services as v1."""
