"""The console's refusals: what its services raise when a business rule says no.

Views, forms, admin, commands and the API catch these by name (never a bare ValueError) and show the
message: `str(error)` is the user-facing text. `InvalidField` names the offending field, so the API can
answer `invalid_request` with `param` set to it.
"""


class ConsoleError(Exception):
    """Base of the console's domain errors."""


class InvalidField(ConsoleError):
    """A value the rules refuse; `field` is the argument (and API parameter) it came in."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotPermitted(ConsoleError):
    """The acting user's role (or lack of membership) does not allow this."""


class EmailTaken(ConsoleError):
    """Sign-up with an e-mail address that already has an account."""


class LastOwner(ConsoleError):
    """Removing the workspace's only owner: a workspace keeps at least one."""


class InvitationInvalid(ConsoleError):
    """An invitation link that cannot be used: unknown, revoked, expired or used already."""
