"""Use cases. Framework-free: they depend on ``chat4all.ports`` and the domain only."""
