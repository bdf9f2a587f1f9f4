"""``chat4all bench``: an open-loop load generator that measures Chat4All end to end."""
