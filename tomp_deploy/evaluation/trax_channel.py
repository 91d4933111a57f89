"""The TraX client's messages, bounded, on their way to libtrax.

libtrax reads a message until its closing quote with no bound: a message whose quote never closes made the
server read without end (0.6 GB/s, until the kernel killed it). So the client's stream is read here, in a
thread: each message is cut at its end (a newline outside quotes, backslash escaping the next byte, as
libtrax's parser reads it), checked against a size bound, and only then written to a pipe that libtrax
reads. A stream that breaks the protocol (not a TraX message, a message over the bound, a connection that
ends inside a message) closes the pipe, so libtrax's wait fails and the server can quit with `error` as its
reason. The client's stream is whatever libtrax would have used: TRAX_SOCKET (a port on this machine the
client listens on), TRAX_IN, or standard input; libtrax is pointed at the pipe through TRAX_IN and TRAX_OUT.
"""

from __future__ import annotations

import os
import socket
import threading

TRAX_PREFIX = b"@@TRAX:"
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
"""1 MiB: a TraX message carries an image path and a region (a mask as run lengths); a few hundred bytes."""


class ProtocolError(Exception):
    """What the client sent is not a TraX message this server accepts."""


class MessageScanner:
    """Cuts a byte stream into whole TraX messages, refusing one longer than `limit` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pending = bytearray()
        self._scanned = 0
        self._in_quotes = False
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        self.pending += data
        messages = []
        while (end := self._message_end()) is not None:
            messages.append(self._checked(bytes(self.pending[: end + 1])))
            del self.pending[: end + 1]
        self._checked(bytes(self.pending))
        return messages

    def _checked(self, message: bytes) -> bytes:
        """A whole message, or the start of one: it begins as a TraX message and is within the bound."""
        head = message[: len(TRAX_PREFIX)]
        if TRAX_PREFIX[: len(head)] != head:
            raise ProtocolError(f"the client sent a line that is not a TraX message (it starts {message[:20]!r})")
        if len(message) > self.limit:
            raise ProtocolError(
                f"the client sent a message longer than {self.limit} bytes (the bound; raise it with --max-message-bytes)"
            )
        return message

    def _message_end(self) -> int | None:
        buffer, index = self.pending, self._scanned
        while index < len(buffer):
            byte = buffer[index]
            if self._escaped:
                self._escaped = False
            elif byte == 0x5C:  # backslash
                self._escaped = True
            elif byte == 0x22:  # double quote
                self._in_quotes = not self._in_quotes
            elif byte == 0x0A and not self._in_quotes:
                self._scanned = 0
                return index
            index += 1
        self._scanned = index
        return None


def client_stream() -> tuple[int, int]:
    """The file descriptors libtrax would have read the client from and written it to."""
    port = os.environ.pop("TRAX_SOCKET", None)
    if port is not None:
        if not port.strip().isdigit():
            raise ProtocolError(f"TRAX_SOCKET={port[:40]!r} is not a port number")
        connection = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        connection.settimeout(None)
        descriptor = connection.detach()
        return descriptor, os.dup(descriptor)
    return _descriptor("TRAX_IN", 0), _descriptor("TRAX_OUT", 1)


def _descriptor(variable: str, default: int) -> int:
    text = os.environ.get(variable)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise ProtocolError(f"{variable}={text[:40]!r} is not a file descriptor")
    return int(text)


class BoundedRelay:
    """Relays whole, bounded TraX messages from the client to a pipe that libtrax reads (set up by `start`)."""

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.scanner = MessageScanner(max_message_bytes)
        self.error: str | None = None

    def start(self) -> None:
        """Takes the client's stream and points libtrax (TRAX_IN, TRAX_OUT) at the relay's pipe."""
        client_in, client_out = client_stream()
        to_trax_read, to_trax_write = os.pipe()
        os.environ["TRAX_IN"], os.environ["TRAX_OUT"] = str(to_trax_read), str(client_out)
        threading.Thread(target=self._relay, args=(client_in, to_trax_write), daemon=True, name="trax-relay").start()

    def _relay(self, client_in: int, to_trax: int) -> None:
        try:
            while True:
                data = os.read(client_in, 1 << 16)
                if not data:
                    if self.scanner.pending:
                        raise ProtocolError("the client's stream ended in the middle of a message")
                    return
                for message in self.scanner.feed(data):
                    _write_all(to_trax, message)
        except ProtocolError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = f"the connection to the client failed ({exc.strerror or exc})"
        finally:
            os.close(to_trax)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
