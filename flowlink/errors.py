"""Errors a user can act on. The CLI prints them without a traceback."""


class FlowlinkError(Exception):
    """A problem with the user's input or setup, with a message that says what and where."""
