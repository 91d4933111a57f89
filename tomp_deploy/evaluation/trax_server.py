"""A TraX server around the tracker: how the VOT toolkit runs tomp-deploy, on any backend.

One process serves one TraX session: the backend is loaded once, and every `initialize` request (the
first frame of a sequence, or a re-initialisation) starts a new tracker on it. Regions arrive as
rectangles, polygons or masks and are tracked as their bounding boxes; the reply is a rectangle with the
tracker's confidence (in [0, 1]) as `confidence`, never an empty region (the toolkit counts two empty
regions as overlap 1); the reply to an initialisation carries none, so the toolkit takes it as 0.
Images are read from the paths the client sends (RGB channel), bounded in size before they are decoded
(`images`). The client's messages reach libtrax through a bounded relay
(`trax_channel`). A failure (a bad model, a protocol error, an image too large or unreadable) is sent to
the client as the session's quit reason, so the toolkit reports it instead of waiting, and the server exits
with an error. `vot-trax` is imported only here (the `vot` extra).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tomp_deploy.evaluation.trax_channel import DEFAULT_MAX_MESSAGE_BYTES, BoundedRelay, ProtocolError
from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.images import read_rgb
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.tracker import ToMPTracker

TRACKER_NAME = "tomp-deploy"


def import_trax():
    try:
        import trax
    except ImportError:
        raise ToMPError("The TraX server needs the 'vot-trax' package: pip install -e '.[vot]'.") from None
    return trax


def region_box(region) -> np.ndarray:
    """(x, y, w, h) of a TraX rectangle, or the bounding box of a polygon or a mask."""
    trax = import_trax()
    if region.type == trax.Region.RECTANGLE:
        return np.array(region.bounds(), np.float64)
    if region.type == trax.Region.POLYGON:
        points = np.array([region.get(i) for i in range(region.size())], np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        return np.array([*low, *(high - low)])
    if region.type == trax.Region.MASK:
        rows, columns = np.nonzero(region.array())
        if rows.size == 0:
            raise ToMPError("The initial mask is empty: there is no target to track.")
        x, y = region.offset()
        return np.array([x + columns.min(), y + rows.min(), np.ptp(columns) + 1, np.ptp(rows) + 1], np.float64)
    raise ToMPError(f"A TraX region of type {region.type!r} cannot be tracked; send a rectangle, polygon or mask.")


def serve(
    open_backend: Callable[[], Backend],
    params: Callable[[Backend], TrackerParams],
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> None:
    """Runs one TraX session on stdin/stdout (or TRAX_SOCKET) until the client quits.
    `open_backend` loads the model; `params(backend)` gives the tracker parameters to use. Every failure
    is sent as the quit reason and raised as a `ToMPError`."""
    trax = import_trax()
    relay = BoundedRelay(max_message_bytes)
    try:
        relay.start()
    except (ProtocolError, OSError) as exc:
        raise ToMPError(f"Cannot reach the TraX client: {exc}.") from None
    server = trax.Server(
        [trax.Region.RECTANGLE, trax.Region.POLYGON, trax.Region.MASK],
        [trax.Image.PATH],
        ["color"],
        tracker_name=TRACKER_NAME,
        tracker_family="ToMP",
    )
    try:
        with open_backend() as backend:
            _answer_requests(trax, server, relay, backend, params(backend))
    except ToMPError as exc:
        _quit(trax, server, str(exc))
        raise
    server.quit()


def _quit(trax, server, reason: str) -> None:
    """Sends the reason to the client; one that has gone away cannot be told."""
    try:
        server.quit(reason=reason)
    except trax.TraxException:
        pass


def _wait(trax, server, relay: BoundedRelay):
    try:
        return server.wait()
    except trax.TraxException as exc:
        reason = relay.error or f"the client broke the TraX protocol ({exc})"
        raise ToMPError(f"TraX session ended: {reason}.") from None


def _answer_requests(trax, server, relay: BoundedRelay, backend: Backend, params: TrackerParams) -> None:
    tracker = None
    while True:
        request = _wait(trax, server, relay)
        if request.type == trax.TraxStatus.QUIT:
            return
        image = read_rgb(request.image["color"].path())
        if request.type == trax.TraxStatus.INITIALIZE:
            if len(request.objects) != 1:
                raise ToMPError(f"The client asked for {len(request.objects)} objects; this server tracks one per session.")
            box = region_box(request.objects[0][0])
            tracker = ToMPTracker(backend, params)
            tracker.initialize(image, box)
            server.status([(trax.Rectangle.create(*box), {})])
            continue
        if tracker is None:
            raise ToMPError("The client sent a frame before initialising the tracker.")
        result = tracker.track(image)
        server.status([(trax.Rectangle.create(*map(float, result.box)), {"confidence": result.confidence})])
