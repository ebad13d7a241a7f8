"""spamcli: a command-line spam filter for email."""

__version__ = "0.1.0"
