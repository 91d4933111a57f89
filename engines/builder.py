"""Builds engines from an export folder with TensorRT 10/11 or TensorRT for RTX, strongly typed.

One code path serves both libraries: the network is created strongly typed (TensorRT 10's
STRONGLY_TYPED flag; the only mode of TensorRT 11 and TensorRT for RTX), so every layer runs in the
type the ONNX graph gives it and the precision is the export's (`tomp-deploy export --precision`).
No weak-typing API (precision flags, per-layer precision) is used. Before building, the parsed network
is checked against the export's record of its FP32 islands.

TensorRT builds on the GPU that will run the engines and keeps a timing cache; TensorRT for RTX builds
ahead of time without a GPU, for a set of compute capabilities (its portable default, or those asked
for), and has no timing cache (deprecated there); it compiles for the card at first run, and the
runtime keeps what it compiled in a runtime cache beside the engines.
"""

from __future__ import annotations

import datetime
import shutil
import time
from pathlib import Path

from tomp_deploy.engines.plan import precision_problems, profile_problems, profile_shapes
from tomp_deploy.runtime.contract import GRAPHS
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.gpu import current_engine_target, engine_library
from tomp_deploy.runtime.manifests.engine import RUNTIME_CACHE_FILE, EngineManifest
from tomp_deploy.runtime.manifests.export import EXPORT_MANIFEST_FILE, ExportFolder, read_export

RTX_PORTABLE_DEFAULT = ("8.0", "8.6", "8.9", "12.0")
"""Compute capabilities a TensorRT for RTX engine runs on when none is asked for (and later ones)."""


def _progress_monitor(trt, report):
    """Forwards the builder's phases to a callback (IProgressMonitor)."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            report(f"{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name, step):
            report(f"{phase_name} (step {step + 1})")
            return True

        def phase_finish(self, phase_name):
            report(f"{phase_name} done")

    return Monitor()


def parse_network(trt, builder, logger, path: Path):
    """The strongly typed network of an ONNX file, or a `ToMPError` naming every node TensorRT rejects."""
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            errors.append(f"node {error.node()} ({error.node_name()}, {error.node_operator()}): {error.desc()}")
        raise ToMPError(f"{trt.__name__} cannot parse {path}:\n  " + "\n  ".join(errors)
                        + "\nChange the model code so that it exports to supported operators, or export again.")
    return network, parser


def network_layers(network) -> list[tuple[str, str, str]]:
    """(name, kind, output type) of every layer of a parsed network."""
    layers = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        layers.append((layer.name, layer.type.name, layer.get_output(0).dtype.name))
    return layers


def network_inputs(network) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every input of a parsed network; -1 marks a dynamic dimension."""
    return [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]


def _compute_capabilities(trt, requested: list[str]) -> list:
    members = {name[2:]: getattr(trt.ComputeCapability, name) for name in dir(trt.ComputeCapability)
               if name.startswith("SM") and name[2:].isdigit()}
    chosen = []
    for text in requested:
        key = text.replace(".", "")
        if key not in members:
            known = ", ".join(f"{k[:-1]}.{k[-1]}" for k in sorted(members, key=int))
            raise ToMPError(f"--compute-capability {text}: TensorRT for RTX {trt.__version__} targets {known}.")
        chosen.append(members[key])
    return chosen


def build_engines(export_dir: Path, out: Path, library: str | None = None, precision: str | None = None,
                  workspace_gb: float = 4.0, timing_cache: Path | None = None, max_batch: int = 4,
                  compute_capabilities: list[str] | None = None, report=lambda text: None) -> EngineManifest:
    """Engines of the export's three graphs in `out`, with the export's model.json and a manifest."""
    exported = read_export(export_dir)
    _check_precision(exported, precision)
    name, trt = engine_library(library)
    rtx = name == "tensorrt-rtx"
    _check_library_options(rtx, timing_cache, compute_capabilities)
    target = None if rtx else current_engine_target(name)
    capabilities = _compute_capabilities(trt, compute_capabilities or []) if rtx else []
    profiles = profile_shapes(exported, max_batch)
    out.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    started = time.perf_counter()
    sizes = {}
    for graph in GRAPHS:
        report(f"{graph}: parsing")
        network, _parser = parse_network(trt, builder, logger, exported.graph_path(graph))
        _check_network(network, graph, exported, profiles[graph])
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        config.progress_monitor = _progress_monitor(trt, lambda text, graph=graph: report(f"{graph}: {text}"))
        _set_compute_capabilities(config, capabilities)
        cache = None if rtx else config.create_timing_cache(cache_bytes)
        if cache is not None:
            config.set_timing_cache(cache, ignore_mismatch=False)
        config.add_optimization_profile(_optimization_profile(builder, profiles[graph]))
        report(f"{graph}: building")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ToMPError(f"{trt.__name__} failed to build the {graph} engine; see its messages above.")
        (out / f"{graph}.engine").write_bytes(memoryview(serialized))
        sizes[graph] = serialized.nbytes
        if cache is not None:
            cache_bytes = bytes(cache.serialize())
    if timing_cache:
        timing_cache.write_bytes(cache_bytes)
    shutil.copy(Path(export_dir) / EXPORT_MANIFEST_FILE, out / EXPORT_MANIFEST_FILE)
    (out / RUNTIME_CACHE_FILE).unlink(missing_ok=True)  # kernels compiled for engines that are gone
    manifest = EngineManifest(
        library=name, library_version=trt.__version__, precision=exported.manifest.precision, onnx_sha256=exported.graph_hashes(),
        gpu_name=target.gpu_name if target else None,
        compute_capability=target.compute_capability if target else None,
        target_compute_capabilities=list(compute_capabilities or RTX_PORTABLE_DEFAULT) if rtx else [],
        build_options={"workspace_gb": workspace_gb, "max_batch": max_batch,
                       "timing_cache": str(timing_cache) if timing_cache else None,
                       "portable_default": rtx and not compute_capabilities, "strongly_typed": True},
        engine_bytes=sizes,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=time.perf_counter() - started,
    )
    manifest.write(out)
    return manifest


def _check_network(network, graph: str, exported: ExportFolder, profile: dict) -> None:
    """Refuses a parsed network that departs from the export's precision or from its optimisation profile."""
    checks = (("keep the export's precision", precision_problems(
                  network_layers(network), exported.manifest.graphs[graph].fp32_nodes, exported.manifest.precision)),
              ("fit its optimisation profile", profile_problems(network_inputs(network), profile)))
    for what, problems in checks:
        if problems:
            raise ToMPError(f"The parsed {graph} network does not {what}:\n  " + "\n  ".join(problems[:10])
                            + "\nExport the model again with this tomp-deploy.")


def _check_library_options(rtx: bool, timing_cache: Path | None, compute_capabilities: list[str] | None) -> None:
    if rtx and timing_cache is not None:
        raise ToMPError("--timing-cache applies to TensorRT; TensorRT for RTX has no timing cache.")
    if not rtx and compute_capabilities:
        raise ToMPError("--compute-capability applies to TensorRT for RTX; TensorRT builds for the GPU it runs on.")


def _set_compute_capabilities(config, capabilities: list) -> None:
    """TensorRT for RTX: the compute capabilities the engine is compiled for (none given: its default set)."""
    if capabilities:
        config.num_compute_capabilities = len(capabilities)
        for index, capability in enumerate(capabilities):
            config.set_compute_capability(capability, index)


def _optimization_profile(builder, shapes: dict):
    """One profile with each dynamic input's (min, opt, max) shapes."""
    profile = builder.create_optimization_profile()
    for tensor, (low, opt, high) in shapes.items():
        profile.set_shape(tensor, low, opt, high)
    return profile


def _check_precision(exported: ExportFolder, requested: str | None) -> None:
    """Precision lives in the graphs; a build asking for another one says which export to make."""
    if requested is not None and requested != exported.manifest.precision:
        raise ToMPError(
            f"{exported.folder} is an {exported.manifest.precision} export, and engines take their precision from "
            f"the graphs. Export {requested} graphs first: tomp-deploy export CHECKPOINT --out DIR --precision "
            f"{requested}, then build from DIR.")
