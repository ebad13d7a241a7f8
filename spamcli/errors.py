"""Errors the core raises. Each message reads well to a user on its own line;
only ``cli.py`` turns them into exit statuses."""


class SpamcliError(Exception):
    """Base class of every error spamcli reports to a user."""


class InputError(SpamcliError):
    """A message, folder or archive could not be read."""


class CorpusError(SpamcliError):
    """A training or evaluation corpus is missing, empty or unusable."""


class ModelError(SpamcliError):
    """A model folder is missing, incomplete, or of an unknown format."""


class FetchError(SpamcliError):
    """A corpus could not be downloaded or verified."""


class MailboxError(SpamcliError):
    """A mailbox could not be sorted: it is no Maildir, or a folder could not be made."""


class ServeError(SpamcliError):
    """The daemon cannot start or do what was asked: an address that cannot
    be listened on, a missing optional library, learning not enabled."""


class MissingExtraError(SpamcliError):
    """A command needs packages that come with an extra that is not installed."""
