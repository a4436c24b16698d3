"""C status codes as Python exceptions carrying the library's detail message.

Every exception the binding raises is a SlayError: the library's statuses map to the classes
below, and `translated` turns the TypeError / ValueError / MemoryError of argument conversion
(numpy, float(), int()) into the matching SlayError subclass."""
import functools

OK = 0
INVALID_ARGUMENT, SHAPE, LAYOUT, DTYPE, OVERFLOW, OUT_OF_MEMORY = -1, -2, -3, -4, -5, -6
CORRUPT_DATA, VERSION_MISMATCH, UNSUPPORTED, BUFFER_TOO_SMALL, INTERNAL, STATE_MISMATCH = -7, -8, -9, -10, -11, -12
NON_FINITE = -13


class SlayError(Exception):
    """Base of every libslay error; `.code` is the C status, `.status_name` its name."""

    def __init__(self, message, code=INTERNAL, status_name="internal error"):
        super().__init__(message)
        self.code = code
        self.status_name = status_name


class SlayValueError(SlayError, ValueError):
    """Bad argument, shape, layout, overflow, corrupt or mismatched data."""


class SlayTypeError(SlayError, TypeError):
    """Unsupported element type."""


class SlayMemoryError(SlayError, MemoryError):
    """The library could not allocate its workspace."""


class SlayRuntimeError(SlayError, RuntimeError):
    """Unsupported operation or an internal error."""


class NonFiniteError(SlayError):
    """A NaN or ±inf input refused by check_finite=True (SLAY_ERR_NON_FINITE); nothing was written."""


class SlayImportError(SlayError, ImportError):
    """libslay.so cannot be found or loaded, or is not the ABI this binding was written for."""

    def __init__(self, message):
        super().__init__(message, INTERNAL, "cannot load libslay")


_CLASSES = {
    INVALID_ARGUMENT: SlayValueError, SHAPE: SlayValueError, LAYOUT: SlayValueError, OVERFLOW: SlayValueError,
    CORRUPT_DATA: SlayValueError, VERSION_MISMATCH: SlayValueError, BUFFER_TOO_SMALL: SlayValueError,
    STATE_MISMATCH: SlayValueError, DTYPE: SlayTypeError, OUT_OF_MEMORY: SlayMemoryError, NON_FINITE: NonFiniteError,
}


def error_for(code, message):
    from ._lib import lib
    name = lib.slay_status_string(code).decode()
    return _CLASSES.get(code, SlayRuntimeError)("%s: %s" % (name, message), code, name)


def check(code, err):
    """Raises the exception for a non-zero status, with the detail message from `err`."""
    if code != OK:
        raise error_for(code, err.message.decode("utf-8", "replace"))


def translated(function):
    """Decorates a public function so it raises only SlayError subclasses: a TypeError, ValueError,
    OverflowError or MemoryError from converting its arguments becomes SlayTypeError,
    SlayValueError or SlayMemoryError with the same message (the original is the __cause__).
    inspect.signature still sees the function's own keyword parameters."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except SlayError:
            raise
        except MemoryError as error:
            raise SlayMemoryError("out of memory: %s" % error, OUT_OF_MEMORY, "out of memory") from error
        except TypeError as error:
            raise SlayTypeError("invalid argument: %s" % error, INVALID_ARGUMENT, "invalid argument") from error
        except (ValueError, OverflowError) as error:
            raise SlayValueError("invalid argument: %s" % error, INVALID_ARGUMENT, "invalid argument") from error
    return wrapper
