"""Functions run as a bench backend's process in tests: importable by name, as a forkserver child needs."""

import os


def two_frames_then_exit(code: int, news) -> None:
    """Says it is tracking, tracks two frames and dies without an outcome, as a crashing library would."""
    news.put(("progress", "dying: tracking"))
    news.put(("frame", None))
    news.put(("frame", None))
    news.close()
    news.join_thread()
    os._exit(code)
