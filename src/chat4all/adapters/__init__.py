"""One module (or folder) per backend, each implementing one port of ``chat4all.ports``."""
