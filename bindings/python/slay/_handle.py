"""Ownership and locking of one libslay handle (shared by FeatureMap and State).

close() frees the handle once; the context manager and the finaliser call it, and using the
object afterwards raises a clear SlayError. The C contract allows one call at a time per state and
no call during slay_feature_map_set_param, so the binding serialises what C cannot:
- a State has one (re-entrant) lock: its calls run one at a time, in any threads;
- a FeatureMap has a readers–writer lock: any number of threads may compute with it at once
  (readers), while set_params and close (writers) wait for them and they for it.
A State's calls also read-lock its map, so set_params never runs under a state's step. Concurrent
use blocks; it never raises and never corrupts memory."""
import threading
from contextlib import contextmanager

from .errors import error_for, INVALID_ARGUMENT, INTERNAL


class ReadersWriterLock:
    """Many readers or one writer. Writers are preferred (a waiting writer holds back new readers,
    so set_params cannot starve), and both sides are re-entrant within a thread: a thread that
    holds the lock may take it again for reading (a writer too)."""

    def __init__(self):
        self._mutex = threading.Lock()   # the condition's lock; `with self._mutex` is its cheap form
        self._condition = threading.Condition(self._mutex)
        self._readers = {}            # thread ident -> depth
        self._writer = None           # ident of the thread that writes
        self._writer_depth = 0
        self._writers_waiting = 0

    def acquire_read(self):
        """Takes the lock for reading (release with release_read); the hot paths call this pair
        directly, which costs a fraction of the context manager `reading`."""
        me = threading.get_ident()
        with self._mutex:
            if self._writer != me and me not in self._readers:
                while self._writer is not None or self._writers_waiting:
                    self._condition.wait()
            self._readers[me] = self._readers.get(me, 0) + 1

    def release_read(self):
        me = threading.get_ident()
        with self._mutex:
            depth = self._readers[me] - 1
            if depth:
                self._readers[me] = depth
            else:
                del self._readers[me]
                # Only writers wait for the readers to leave (readers wait for writers).
                if not self._readers and self._writers_waiting:
                    self._condition.notify_all()

    @contextmanager
    def reading(self):
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def writing(self):
        me = threading.get_ident()
        with self._condition:
            if self._writer == me:
                self._writer_depth += 1
            else:
                if me in self._readers:
                    raise error_for(INTERNAL, "a thread that is computing with a feature map cannot modify it")
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._condition.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._condition:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._condition.notify_all()


class OwnedHandle:
    _handle = None
    _free = None           # the slay_*_free function, set by the subclass
    _what = "handle"       # named in the "closed" error

    def _exclusive(self):
        """The context that close() holds: no call of this object runs meanwhile."""
        raise NotImplementedError

    def close(self):
        if self._handle is None:
            return
        with self._exclusive():
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
