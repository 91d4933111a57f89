"""`trax`: the tracker as a TraX server, for the VOT toolkit (its trackers.ini runs this command)."""

from __future__ import annotations

from typing import Annotated

import typer

from tomp_deploy.cli.app import command, error_console
from tomp_deploy.cli.options import (
    Backend,
    CudaGraphs,
    Device,
    LongTerm,
    Model,
    Precision,
    Threads,
    TrackerParam,
    backend_and_model,
    backend_options,
    tracker_overrides,
)
from tomp_deploy.evaluation.trax_channel import DEFAULT_MAX_MESSAGE_BYTES


@command()
def trax(
    model: Model,
    backend: Backend = None,
    device: Device = "cpu",
    threads: Threads = None,
    precision: Precision = None,
    cuda_graphs: CudaGraphs = None,
    tracker_param: TrackerParam = None,
    long_term: LongTerm = False,
    max_message_bytes: Annotated[
        int,
        typer.Option(
            help="Longest TraX message accepted from the client; the session quits, with that reason, on a longer one.", min=1024
        ),
    ] = DEFAULT_MAX_MESSAGE_BYTES,
) -> None:
    """Serve one TraX session (VOT toolkit): rectangles (masks and polygons as their boxes), RGB images.
    Errors go to the client as the session's quit reason."""
    from tomp_deploy.evaluation.trax_server import import_trax, serve
    from tomp_deploy.runtime.backends import open_backend
    from tomp_deploy.runtime.overrides import overridden_tracker_params

    import_trax()
    options = backend_options(device, threads, precision, cuda_graphs)

    def prepared_backend():
        name, loaded = backend_and_model(backend, model, options, say=error_console)
        return open_backend(name, loaded, options)

    overrides = tracker_overrides(tracker_param, long_term)
    serve(prepared_backend, lambda loaded: overridden_tracker_params(loaded.tracker_params, overrides), max_message_bytes)
