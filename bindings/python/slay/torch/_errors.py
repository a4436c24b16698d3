"""slay.torch's exceptions: every one is a slay.SlayError (and the builtin type callers of the
mirrored APIs expect: ValueError for fla's argument checks, NotImplementedError for what libslay
does not do). Messages of fla's own checks are kept word for word."""
from ..errors import SlayError, SlayValueError, SlayRuntimeError, INVALID_ARGUMENT, UNSUPPORTED


class SlayNotImplementedError(SlayRuntimeError, NotImplementedError):
    """A feature of an API slay.torch mirrors (fla's per-channel value gates, context parallelism)
    that libslay does not have; a SlayError with the status "unsupported"."""


def _status(code):
    from .._lib import lib
    return lib.slay_status_string(code).decode()


def value_error(message):
    """SlayValueError (invalid argument) with `message` as it is."""
    return SlayValueError(message, INVALID_ARGUMENT, _status(INVALID_ARGUMENT))


def unsupported(message):
    """SlayRuntimeError (unsupported) with `message` as it is."""
    return SlayRuntimeError(message, UNSUPPORTED, _status(UNSUPPORTED))


def not_implemented(message):
    """SlayNotImplementedError (unsupported, also a NotImplementedError) with `message`."""
    return SlayNotImplementedError(message, UNSUPPORTED, _status(UNSUPPORTED))


__all__ = ["SlayError", "SlayNotImplementedError", "value_error", "unsupported", "not_implemented"]
