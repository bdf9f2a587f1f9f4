"""Pure rules of Chat4All: models, statuses, events, errors, ids. No I/O here."""
