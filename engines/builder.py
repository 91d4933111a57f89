"""Builds FP16 (or FP32) TensorRT engines from an export folder with the TensorRT 10 Python API."""

from __future__ import annotations

import datetime
import shutil
import time
from pathlib import Path

from engines.plan import fp32_layers, profile_shapes
from tomp_deploy.contract import GRAPHS
from tomp_deploy.engine_manifest import EngineManifest
from tomp_deploy.errors import ToMPError
from tomp_deploy.export_manifest import EXPORT_MANIFEST_FILE, read_export
from tomp_deploy.gpu import current_engine_target, require


class _Progress:
    """Forwards TensorRT's build phases to a callback (TensorRT 10's IProgressMonitor)."""

    def __init__(self, trt, report):
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

        self.monitor = Monitor()


def _parse(trt, builder, logger, path: Path):
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            errors.append(f"node {error.node()} ({error.node_name()}, {error.node_operator()}): {error.desc()}")
        raise ToMPError(f"TensorRT cannot parse {path}:\n  " + "\n  ".join(errors))
    return network, parser


def build_engines(export_dir: Path, out: Path, precision: str = "fp16", workspace_gb: float = 4.0,
                  timing_cache: Path | None = None, max_batch: int = 4, report=lambda text: None) -> EngineManifest:
    trt = require("tensorrt")
    target = current_engine_target()
    exported = read_export(export_dir)
    profiles = profile_shapes(exported, max_batch)
    out.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    started = time.perf_counter()
    pinned = {}
    for graph in GRAPHS:
        report(f"{graph}: parsing")
        network, _parser = _parse(trt, builder, logger, exported.graph_path(graph))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        progress = _Progress(trt, lambda text, graph=graph: report(f"{graph}: {text}"))
        config.progress_monitor = progress.monitor
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        keep = set(fp32_layers([(layer.name, layer.type.name) for layer in layers], precision))
        for layer in layers:
            if layer.name in keep:
                layer.precision = trt.float32
                for output in range(layer.num_outputs):
                    layer.set_output_type(output, trt.float32)
        pinned[graph] = sorted(keep)
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles[graph].items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
        report(f"{graph}: building")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ToMPError(f"TensorRT failed to build the {graph} engine; see the messages above.")
        (out / f"{graph}.engine").write_bytes(bytes(serialized))
        cache_bytes = bytes(cache.serialize())
    if timing_cache:
        timing_cache.write_bytes(cache_bytes)
    shutil.copy(Path(export_dir) / EXPORT_MANIFEST_FILE, out / EXPORT_MANIFEST_FILE)
    manifest = EngineManifest(
        tensorrt=target.tensorrt, gpu_name=target.gpu_name, compute_capability=target.compute_capability,
        precision=precision, onnx_sha256=exported.graph_hashes(),
        build_options={"workspace_gb": workspace_gb, "max_batch": max_batch,
                       "timing_cache": str(timing_cache) if timing_cache else None, "fp32_layers": pinned},
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=time.perf_counter() - started,
    )
    manifest.write(out)
    return manifest
