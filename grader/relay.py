"""The byte relay between the grading process and a sandboxed kernel's sockets, which caps
what the kernel can make the grading process hold.

The kernel binds its Jupyter sockets (ZeroMQ over Unix sockets) in its socket folder, inside
the sandbox; the relay listens on sockets of the same names in a folder of the grading
process that no kernel sees, and for each connection the grading process makes, connects to
the kernel's socket through ``/proc/<pid>/root`` and forwards the bytes both ways.

From the kernel, it reads the ZMTP 3 framing as the bytes pass (the 64-byte greeting, then
frames: a flags byte, a 1- or 8-byte size, the body) and counts

- the bytes of each message, all its frames together: a message over ``message_bytes`` ends
  the connection before the grading process holds it, however many frames (ZeroMQ's own
  ``MAXMSGSIZE`` is per frame, so many zero-copy frames of one buffer would pass it);
- the bytes since :meth:`Relay.reset` (called at the start of each execution): over
  ``execution_bytes``, the same, so output cannot pile up across calls.

Either sets :attr:`Relay.overflow` and closes every connection of the kernel for good (the
grading process then names the output limit and starts a fresh kernel). The relay itself
holds at most :data:`CHUNK` bytes per direction of a connection: it reads from one side only
when the other has taken what was read before.
"""
import os
import selectors
import socket
import threading

__all__ = ["Relay", "CHUNK"]

#: bytes read at once, and the most the relay buffers per direction of a connection
CHUNK = 1 << 16
#: the ZMTP 3 greeting's length
GREETING = 64


class _Counter:
    """Follows the frames of the kernel's side of one connection (see the module docstring)."""

    def __init__(self):
        self.greeting = GREETING
        self.header = b""          # bytes of a frame header read so far
        self.body = 0              # bytes of the current frame's body still to pass
        self.message = 0           # bytes of the current message so far
        self._last = True          # the current frame ends its message

    def feed(self, data, cap):
        """Account for ``data``; False when a message goes over ``cap`` bytes."""
        view, k = memoryview(data), 0
        while k < len(view):
            if self.greeting:
                step = min(self.greeting, len(view) - k)
                self.greeting -= step
                k += step
            elif self.body:
                step = min(self.body, len(view) - k)
                self.body -= step
                k += step
                if not self.body and self._last:
                    self.message = 0
            else:
                self.header += bytes(view[k:k + 1])
                k += 1
                flags = self.header[0]
                need = 9 if flags & 0x02 else 2
                if len(self.header) < need:
                    continue
                size = int.from_bytes(self.header[1:need], "big")
                self._last = not flags & 0x01 or flags & 0x04
                self.header = b""
                self.message += size
                if self.message > cap:
                    return False
                self.body = size
                if not size and self._last:
                    self.message = 0
        return True


class _Pipe:
    """One connection: the grading process's side, the kernel's side, and what is in flight."""

    def __init__(self, grader, kernel):
        self.grader, self.kernel = grader, kernel
        self.to_kernel, self.to_grader = b"", b""
        self.counter = _Counter()


class Relay:
    """Relays ``ports`` of a kernel; see the module docstring.

    ``listen_prefix`` is where the grading process connects (``{prefix}-{port}``), and
    ``target_prefix()`` gives the kernel's sockets' prefix as seen from the host (it may be
    None until the sandbox exists). The relay runs in a daemon thread until :meth:`close`.
    """

    def __init__(self, listen_prefix, target_prefix, ports, *, message_bytes, execution_bytes):
        self.target_prefix = target_prefix
        self.message_bytes, self.execution_bytes = message_bytes, execution_bytes
        self.overflow = None            # why the kernel was cut off, once it is
        self._received = 0
        self._selector = selectors.DefaultSelector()
        self._pipes = set()
        self._listeners = {}
        self._lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        for port in ports:
            path = f"{listen_prefix}-{port}"
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(16)
            listener.setblocking(False)
            self._listeners[port] = listener
            self._selector.register(listener, selectors.EVENT_READ, ("accept", port))
        self._thread = threading.Thread(target=self._run, name="kernel-relay", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ control
    def reset(self):
        """Start counting a new execution's bytes."""
        with self._lock:
            self._received = 0

    def close(self):
        """Stop relaying and close every socket."""
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=5)

    # ------------------------------------------------------------ the loop
    def _run(self):
        try:
            while not self._closed:
                for key, events in self._selector.select(timeout=0.5):
                    kind, item = key.data
                    if kind == "wake":
                        try:
                            os.read(self._wake_r, 64)
                        except OSError:
                            pass
                    elif kind == "accept":
                        self._accept(key.fileobj, item)
                    elif item in self._pipes:
                        self._move(item, key.fileobj, events)
                self._update()
        finally:
            for pipe in list(self._pipes):
                self._drop(pipe)
            for listener in self._listeners.values():
                listener.close()
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept(self, listener, port):
        try:
            grader, _ = listener.accept()
        except OSError:
            return
        prefix = None if self.overflow else self.target_prefix()
        kernel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if prefix is None:
                raise OSError("no kernel to connect to")
            kernel.connect(f"{prefix}-{port}")     # a local socket: connects at once or fails
        except OSError:
            grader.close()                          # ZeroMQ connects again a moment later
            kernel.close()
            return
        grader.setblocking(False)
        kernel.setblocking(False)
        pipe = _Pipe(grader, kernel)
        self._pipes.add(pipe)
        self._selector.register(grader, selectors.EVENT_READ, ("pipe", pipe))
        self._selector.register(kernel, selectors.EVENT_READ, ("pipe", pipe))

    def _move(self, pipe, sock, events):
        try:
            if events & selectors.EVENT_WRITE:
                self._flush(pipe, sock)
            if events & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if not data:
                    raise ConnectionError("closed")
                if sock is pipe.kernel:
                    self._count(pipe, data)
                    pipe.to_grader += data
                else:
                    pipe.to_kernel += data
        except (OSError, ConnectionError):
            self._drop(pipe)

    def _count(self, pipe, data):
        with self._lock:
            self._received += len(data)
            over_execution = self._received > self.execution_bytes
        if not pipe.counter.feed(data, self.message_bytes):
            self._cut(f"a message of more than {self.message_bytes} bytes")
        elif over_execution:
            self._cut(f"more than {self.execution_bytes} bytes in one execution")

    def _cut(self, why):
        """The kernel sent too much: close everything, for good."""
        self.overflow = why
        for pipe in list(self._pipes):
            self._drop(pipe)
        raise ConnectionError(why)

    @staticmethod
    def _flush(pipe, sock):
        pending = pipe.to_kernel if sock is pipe.kernel else pipe.to_grader
        if not pending:
            return
        sent = sock.send(pending)
        if sock is pipe.kernel:
            pipe.to_kernel = pipe.to_kernel[sent:]
        else:
            pipe.to_grader = pipe.to_grader[sent:]

    def _update(self):
        """Read from a side only when the other side's buffer is empty; write when it is not."""
        for pipe in list(self._pipes):
            for sock, inbound, outbound in ((pipe.kernel, pipe.to_grader, pipe.to_kernel),
                                            (pipe.grader, pipe.to_kernel, pipe.to_grader)):
                events = (0 if inbound else selectors.EVENT_READ) | \
                         (selectors.EVENT_WRITE if outbound else 0)
                try:
                    self._want(sock, events, pipe)
                except (ValueError, OSError):
                    self._drop(pipe)
                    break

    def _want(self, sock, events, pipe):
        try:
            key = self._selector.get_key(sock)
        except KeyError:
            key = None
        if events and key is None:
            self._selector.register(sock, events, ("pipe", pipe))
        elif events and key.events != events:
            self._selector.modify(sock, events, ("pipe", pipe))
        elif not events and key is not None:
            self._selector.unregister(sock)

    def _drop(self, pipe):
        self._pipes.discard(pipe)
        for sock in (pipe.grader, pipe.kernel):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
