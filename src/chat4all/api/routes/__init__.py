"""One module per resource of the v1 API."""

from chat4all.api import paths as _paths  # noqa: F401  (registers the "id" path convertor first)
