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
from dataclasses import dataclass
from pathlib import Path

from tomp_deploy.engines.plan import precision_problems, profile_problems, profile_shapes
from tomp_deploy.runtime.contract import GRAPHS
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.gpu import current_engine_target, engine_library
from tomp_deploy.runtime.manifests.engine import DEFAULT_MAX_BATCH, RUNTIME_CACHE_FILE, EngineManifest
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
        raise ToMPError(
            f"{trt.__name__} cannot parse {path}:\n  "
            + "\n  ".join(errors)
            + "\nChange the model code so that it exports to supported operators, or export again."
        )
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
    members = {
        name[2:]: getattr(trt.ComputeCapability, name)
        for name in dir(trt.ComputeCapability)
        if name.startswith("SM") and name[2:].isdigit()
    }
    chosen = []
    for text in requested:
        key = text.replace(".", "")
        if key not in members:
            known = ", ".join(f"{k[:-1]}.{k[-1]}" for k in sorted(members, key=int))
            raise ToMPError(f"--compute-capability {text}: TensorRT for RTX {trt.__version__} targets {known}.")
        chosen.append(members[key])
    return chosen


@dataclass(frozen=True)
class BuildOptions:
    """How `build` compiles an export; recorded in the engine manifest's build options."""

    library: str | None = None
    """tensorrt or tensorrt-rtx; None: whichever is installed (`runtime.gpu.engine_library`)."""
    expected_precision: str | None = None
    """The export precision the caller expects (`build --precision`): engines take the export's, and an
    export of another precision is an error saying which export to make."""
    workspace_gb: float = 4.0
    timing_cache: Path | None = None
    """TensorRT: a timing cache file, read and updated."""
    max_batch: int = DEFAULT_MAX_BATCH
    """Crops per backbone call, targets per predictor and head call."""
    compute_capabilities: tuple[str, ...] = ()
    """TensorRT for RTX: the compute capabilities to build for (none: its portable set)."""


def build_engines(
    export_dir: Path, out: Path, options: BuildOptions = BuildOptions(), report=lambda text: None
) -> EngineManifest:
    """Engines of the export's three graphs in `out`, with the export's model.json and a manifest."""
    exported = read_export(export_dir)
    _check_precision(exported, options.expected_precision)
    name, trt = engine_library(options.library)
    rtx = name == "tensorrt-rtx"
    _check_library_options(rtx, options)
    target = None if rtx else current_engine_target(name)
    capabilities = _compute_capabilities(trt, list(options.compute_capabilities)) if rtx else []
    profiles = profile_shapes(exported, options.max_batch)
    out.mkdir(parents=True, exist_ok=True)
    builder = _Builder(trt, rtx, options)
    started = time.perf_counter()
    sizes = {}
    for graph in GRAPHS:
        network = builder.parsed(exported.graph_path(graph), lambda text, graph=graph: report(f"{graph}: {text}"))
        _check_network(network, graph, exported, profiles[graph])
        report(f"{graph}: building")
        serialized = builder.build(network, profiles[graph], capabilities, lambda text, graph=graph: report(f"{graph}: {text}"))
        if serialized is None:
            raise ToMPError(f"{trt.__name__} failed to build the {graph} engine; see its messages above.")
        (out / f"{graph}.engine").write_bytes(memoryview(serialized))
        sizes[graph] = serialized.nbytes
    builder.save_timing_cache()
    shutil.copy(Path(export_dir) / EXPORT_MANIFEST_FILE, out / EXPORT_MANIFEST_FILE)
    (out / RUNTIME_CACHE_FILE).unlink(missing_ok=True)  # kernels compiled for engines that are gone
    manifest = EngineManifest(
        library=name,
        library_version=trt.__version__,
        precision=exported.manifest.precision,
        onnx_sha256=exported.graph_hashes(),
        gpu_name=target.gpu_name if target else None,
        compute_capability=target.compute_capability if target else None,
        target_compute_capabilities=list(options.compute_capabilities or RTX_PORTABLE_DEFAULT) if rtx else [],
        max_batch=options.max_batch,
        build_options={
            "workspace_gb": options.workspace_gb,
            "timing_cache": str(options.timing_cache) if options.timing_cache else None,
            "portable_default": rtx and not options.compute_capabilities,
            "strongly_typed": True,
        },
        engine_bytes=sizes,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=time.perf_counter() - started,
    )
    manifest.write(out)
    return manifest


class _Builder:
    """One TensorRT builder for the three graphs, carrying TensorRT's timing cache from one build to the next."""

    def __init__(self, trt, rtx: bool, options: BuildOptions):
        self.trt, self.rtx, self.options = trt, rtx, options
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.builder = trt.Builder(self.logger)
        cache_file = options.timing_cache
        self.cache_bytes = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""
        self._parser = None
        """The parser of the network being built: the network needs it alive."""

    def parsed(self, onnx_path: Path, report):
        report("parsing")
        network, self._parser = parse_network(self.trt, self.builder, self.logger, onnx_path)
        return network

    def build(self, network, profile: dict, capabilities: list, report):
        config = self.builder.create_builder_config()
        config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, int(self.options.workspace_gb * (1 << 30)))
        config.progress_monitor = _progress_monitor(self.trt, report)
        _set_compute_capabilities(config, capabilities)
        cache = None if self.rtx else config.create_timing_cache(self.cache_bytes)
        if cache is not None:
            config.set_timing_cache(cache, ignore_mismatch=False)
        config.add_optimization_profile(_optimization_profile(self.builder, profile))
        serialized = self.builder.build_serialized_network(network, config)
        if cache is not None:
            self.cache_bytes = bytes(cache.serialize())
        return serialized

    def save_timing_cache(self) -> None:
        if self.options.timing_cache:
            self.options.timing_cache.write_bytes(self.cache_bytes)


def _check_network(network, graph: str, exported: ExportFolder, profile: dict) -> None:
    """Refuses a parsed network that departs from the export's precision or from its optimisation profile."""
    checks = (
        (
            "keep the export's precision",
            precision_problems(network_layers(network), exported.manifest.graphs[graph].fp32_nodes, exported.manifest.precision),
        ),
        ("fit its optimisation profile", profile_problems(network_inputs(network), profile)),
    )
    for what, problems in checks:
        if problems:
            raise ToMPError(
                f"The parsed {graph} network does not {what}:\n  "
                + "\n  ".join(problems[:10])
                + "\nExport the model again with this tomp-deploy."
            )


def _check_library_options(rtx: bool, options: BuildOptions) -> None:
    if rtx and options.timing_cache is not None:
        raise ToMPError("--timing-cache applies to TensorRT; TensorRT for RTX has no timing cache.")
    if not rtx and options.compute_capabilities:
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
            f"{requested}, then build from DIR."
        )
