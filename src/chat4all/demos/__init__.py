"""Demonstrations run by ``chat4all demo …`` against a real server."""
