"""Ownership of one libslay handle: close() frees it once, context manager and finaliser call it,
and using it afterwards raises a clear error (shared by FeatureMap and State)."""
from .errors import error_for, INVALID_ARGUMENT


class OwnedHandle:
    _handle = None
    _free = None           # the slay_*_free function, set by the subclass
    _what = "handle"       # named in the "closed" error

    def close(self):
        if self._handle is not None:
            type(self)._free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def handle(self):
        if self._handle is None:
            raise error_for(INVALID_ARGUMENT, "the %s is closed" % self._what)
        return self._handle
