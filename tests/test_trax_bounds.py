"""The TraX server under hostile input (issue 31): seeded random, truncated and oversized messages and
huge images end the session with a TraX quit carrying the reason, exit code 2 and no traceback, in bounded
memory (an address-space limit on the server)."""

import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from tests.cli import error_message
from tests.huge_images import write_black_png
from tomp_deploy.evaluation.trax_channel import MessageScanner, ProtocolError

trax = pytest.importorskip("trax", reason="the TraX server needs the 'vot' extra: pip install -e '.[vot]'")

ADDRESS_SPACE = 6 << 30
"""The server's address-space limit: its libraries map about 3 GB; a runaway read (0.6 GB/s) would pass it
within seconds, and a 20000 x 20000 image decoded and converted (0.4 + 1.2 GB, plus the crops) comes close."""


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def serve(export, payload: bytes, *options, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the server on `payload` as everything the client sends, then the end of the stream."""
    with tempfile.TemporaryFile() as stream:
        stream.write(payload)
        stream.seek(0)
        command = [sys.executable, "-m", "tomp_deploy", "trax", "--model", str(export), "--backend", "onnxruntime"]
        return subprocess.run(
            [*command, *options], stdin=stream, capture_output=True, text=True, timeout=timeout, preexec_fn=limited
        )


def assert_quit_with(result: subprocess.CompletedProcess, reason: str) -> None:
    assert result.returncode == 2, result.stderr
    error_message(result.stderr)
    quits = [line for line in result.stdout.splitlines() if line.startswith("@@TRAX:quit")]
    assert len(quits) == 1 and reason in quits[0], result.stdout[-500:]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'@@TRAX:initialize "file:///tmp/a.png', "ended in the middle of a message"),
        (b"garbage\n", "not a TraX message"),
        (b'@@TRAX:frame "' + b"x" * (3 << 20), "longer than 1048576 bytes"),
        pytest.param(b'@@TRAX:frame "/' + b"p" * (100 << 20) + b'"\n', "longer than 1048576 bytes", marks=pytest.mark.slow),
    ],
    ids=["unclosed quote", "garbage line", "endless quote", "100 MB path"],
)
def test_malformed_messages_end_the_session_with_the_reason(shipped_export, payload, reason):
    result = serve(shipped_export, payload)
    assert_quit_with(result, reason)
    assert len(result.stdout) < 2000  # nothing the client sent is echoed back in full


@pytest.mark.slow
def test_seeded_random_streams_end_the_session_cleanly(shipped_export):
    rng = np.random.default_rng(31)
    payloads = [rng.bytes(int(rng.integers(1, 4096))) for _ in range(3)]
    payloads += [b"@@TRAX:" + rng.bytes(int(rng.integers(1, 4096))) for _ in range(3)]
    for payload in payloads:
        result = serve(shipped_export, payload)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert sum(line.startswith("@@TRAX:quit") for line in result.stdout.splitlines()) == 1, result.stdout


def test_a_huge_image_is_refused_with_the_bound(shipped_export, tmp_path):
    """Sent by libtrax's own client, as the VOT toolkit sends it."""
    from trax.client import Client
    from trax.image import FileImage
    from trax.region import Rectangle

    huge = write_black_png(tmp_path / "huge.png", 20000, 20000)
    server = subprocess.Popen(
        [sys.executable, "-m", "tomp_deploy", "trax", "--model", str(shipped_export), "--backend", "onnxruntime"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limited,
    )
    client = Client((server.stdin.fileno(), server.stdout.fileno()), log=lambda text: None)
    with pytest.raises(trax.TraxException, match="Server terminated the session: .*above the bound of 67 megapixels"):
        client.initialize({"color": FileImage.create(str(huge))}, [(Rectangle.create(100, 100, 40, 40), {})], {})
    assert server.wait(timeout=60) == 2
    stderr = server.stderr.read().decode()
    error_message(stderr)


def test_the_message_bound_can_be_raised(shipped_export):
    payload = b'@@TRAX:frame "' + b"x" * (2 << 20)
    assert_quit_with(serve(shipped_export, payload, "--max-message-bytes", str(4 << 20)), "middle of a message")


def test_the_scanner_cuts_messages_where_libtrax_does():
    scanner = MessageScanner(1000)
    stream = b'@@TRAX:frame "a\\"b\nc" x\n@@TRAX:quit \n@@TRAX:fr'
    messages = scanner.feed(stream[:5]) + scanner.feed(stream[5:])
    assert messages == [b'@@TRAX:frame "a\\"b\nc" x\n', b"@@TRAX:quit \n"]
    assert scanner.pending == b"@@TRAX:fr"
    with pytest.raises(ProtocolError, match="not a TraX message"):
        MessageScanner(1000).feed(b"@@TRAP:x\n")
    with pytest.raises(ProtocolError, match="longer than 10 bytes"):
        MessageScanner(10).feed(b"@@TRAX:frame\n")
    os.environ.pop("TRAX_SOCKET", None)
