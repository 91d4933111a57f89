"""TensorRT backend over an engine folder (`tomp-deploy build`) of TensorRT 10/11 or TensorRT for RTX;
torch-free, device memory through pycuda.

Every I/O tensor owns one device buffer and one pinned host buffer for the life of the backend, bound
once by name with `set_tensor_address`, sized for the engines' largest batch; the head's inputs are the
predictor's output buffers, so a frame's filters and encoded features never leave the GPU. All work is
queued on one CUDA stream with `execute_async_v3`. A target's memory frames are a device buffer of their
own, filled device to device from the backbone's output, and copied device to device into its row of the
predictor's input each frame (fixed addresses are what lets the per-frame calls be captured as CUDA
graphs, one per number of targets).

TensorRT for RTX engines are compiled for this GPU when first loaded; a runtime cache beside the
engines keeps the compiled kernels across runs (read at load if its hash and its GPU, library and engines
match, written whole at `close`; see `cache_files`), and CUDA graphs are left to the library's own strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomp_deploy.runtime.backends.base import BackendLifecycle, Located, TargetQuery, stacked_inputs
from tomp_deploy.runtime.cache_files import read_entry, write_entry
from tomp_deploy.runtime.contract import (
    DYNAMIC,
    GRAPHS,
    HEAD,
    PREDICTOR,
    GraphTensor,
    Tensors,
    TensorSpec,
    batch_size,
    graph_feeds,
    graph_io,
    graph_io_problems,
)
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.gpu import cuda_device, current_engine_target, engine_library, require
from tomp_deploy.runtime.manifests.engine import REBUILD, RUNTIME_CACHE_FILE, EngineManifest, check_engines
from tomp_deploy.runtime.manifests.export import read_export_manifest
from tomp_deploy.runtime.manifests.json_files import confined_file

TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BOOL": "bool"}


def _device_index(device: str) -> int:
    if device == "cuda":
        return 0
    name, _, index = device.partition(":")
    if name != "cuda" or not index.isdigit():
        raise ToMPError(f"The tensorrt backend runs on a CUDA device ('cuda' or 'cuda:N'), not {device!r}.")
    return int(index)


@dataclass
class DeviceFeatures:
    """A batch of backbone features in the backbone's output buffer (valid until the next `extract`)."""

    pointer: int
    batch: int
    item_bytes: int


class DeviceMemory:
    """A target's memory features: one device buffer of `slots` features, written device to device."""

    def __init__(self, cuda, stream, slots: int, item_bytes: int):
        self._cuda, self._stream, self.item_bytes = cuda, stream, item_bytes
        self.buffer = cuda.mem_alloc(slots * item_bytes)
        cuda.memset_d8(self.buffer, 0, slots * item_bytes)

    def store(self, slot: int, features: DeviceFeatures, index: int) -> None:
        if not 0 <= index < features.batch:
            raise IndexError(f"feature {index} of a batch of {features.batch}")
        self._cuda.memcpy_dtod_async(
            int(self.buffer) + slot * self.item_bytes, features.pointer + index * self.item_bytes, self.item_bytes, self._stream
        )


class CapturedLaunch:
    """One engine's `execute_async_v3` captured as a CUDA graph with cuda-python's runtime API (pycuda
    has no stream capture). Valid while the bound addresses and input shapes stay as they were."""

    def __init__(self, context, stream_handle: int):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            cudart = require("cuda.cudart")
        self._cudart, self._stream = cudart, stream_handle
        if not context.execute_async_v3(stream_handle):  # TensorRT finishes deferred setup on a first run
            raise ToMPError("TensorRT failed to run an engine before CUDA graph capture.")
        self._check(cudart.cudaStreamBeginCapture(stream_handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
        launched = context.execute_async_v3(stream_handle)
        graph = self._check(cudart.cudaStreamEndCapture(stream_handle))
        if not launched:
            raise ToMPError("TensorRT could not be captured into a CUDA graph; run without --cuda-graphs.")
        self._exec = self._check(cudart.cudaGraphInstantiate(graph, 0))

    def _check(self, result):
        error, *values = result
        if error != self._cudart.cudaError_t.cudaSuccess:
            raise ToMPError(f"CUDA graph capture failed ({error}); run without --cuda-graphs.")
        return values[0] if values else None

    def __call__(self) -> bool:
        self._check(self._cudart.cudaGraphLaunch(self._exec, self._stream))
        return True


class TensorRTBackend(BackendLifecycle):
    """`--backend tensorrt`: the three engines of an engine folder on one GPU.

    The folder's manifest must match this machine (engine library and version, GPU) and the export it
    carries (`model.json`, whose ONNX hashes the engines were built from), and the library's own validity
    check must accept each engine; anything else is an error that says to rebuild. `cuda_graphs` replays
    the predictor and head as CUDA graphs (captured once per number of targets). The engines take batches
    of 1..`max_batch` crops and targets (`tomp-deploy build --max-batch`).
    """

    name = "tensorrt"

    def __init__(self, engines: str | Path, device: str = "cuda", cuda_graphs: bool = False):
        folder = Path(engines)
        manifest = EngineManifest.read(folder)
        exported = read_export_manifest(folder)
        library, trt = engine_library(manifest.library)
        index = _device_index(device)
        cuda, gpu = cuda_device(index)
        target = current_engine_target(library, index)
        check_engines(manifest, target, exported.graph_hashes())
        self._runtime_cache_made_from = {**vars(target), "built_at": manifest.built_at, "onnx": manifest.onnx_sha256}
        self.library = library
        self.config, self.tracker_params = exported.config, exported.tracker
        self.precision = manifest.precision
        self.max_batch = manifest.max_batch
        self._cuda = cuda
        self._context = gpu.retain_primary_context()
        self._context.push()
        self.stream = cuda.Stream()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._rtx = library == "tensorrt-rtx"
        self._cuda_graphs = cuda_graphs
        self._runtime_cache = None
        self._runtime_cache_path = confined_file(folder, RUNTIME_CACHE_FILE, "The engine folder", REBUILD)
        self._io = graph_io(self.config)
        self.engines, self.contexts = {}, {}
        self.device_buffers, self.host_buffers = {}, {}
        for graph in GRAPHS:
            self._load(trt, confined_file(folder, f"{graph}.engine", "The engine folder", REBUILD), graph)
        self.item_bytes = self._spec("backbone", "feat").nbytes(1)
        self._captured: dict[tuple[str, int], CapturedLaunch] = {}
        self._events = [cuda.Event() for _ in range(3)]

    def _spec(self, graph: str, name: str) -> TensorSpec:
        inputs, outputs = self._io[graph]
        return next(spec for spec in inputs + outputs if spec.name == name)

    def _validity_problem(self, trt, blob: bytes) -> str | None:
        """The library's own verdict on a serialized engine (TensorRT 10.x and RTX have one), or None."""
        if not hasattr(self._runtime, "get_engine_validity"):
            return None
        validity, diagnostics = self._runtime.get_engine_validity(blob)
        if validity != trt.EngineValidity.INVALID:
            return None
        reasons = [
            flag
            for flag in dir(trt.EngineInvalidityDiagnostics)
            if flag.isupper() and diagnostics & int(getattr(trt.EngineInvalidityDiagnostics, flag))
        ]
        return ", ".join(reason.lower().replace("_", " ") for reason in reasons) or "invalid"

    def _create_context(self, trt, engine):
        """TensorRT for RTX: a context sharing the folder's runtime cache, with the library's CUDA graphs."""
        if not self._rtx:
            return engine.create_execution_context()
        config = engine.create_runtime_config()
        if self._runtime_cache is None:
            self._runtime_cache = config.create_runtime_cache()
            kept = read_entry(self._runtime_cache_path, self._runtime_cache_made_from)
            if kept is not None:
                self._runtime_cache.deserialize(kept)
        config.set_runtime_cache(self._runtime_cache)
        if self._cuda_graphs:
            config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
        return engine.create_execution_context(config)

    def _load(self, trt, path: Path, graph: str) -> None:
        if not path.is_file():
            raise ToMPError(f"{path} is missing from the engine folder; rebuild it with 'tomp-deploy build'.")
        blob = path.read_bytes()
        problem = self._validity_problem(trt, blob)
        if problem:
            raise ToMPError(
                f"{trt.__name__} {trt.__version__} cannot run {path} on this GPU ({problem}); rebuild it "
                "here with 'tomp-deploy build'."
            )
        engine = self._runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise ToMPError(
                f"{trt.__name__} {trt.__version__} cannot deserialize {path}: it is damaged or was built "
                "by another release. Rebuild it with 'tomp-deploy build'."
            )
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            tensors.append(
                GraphTensor(
                    name,
                    engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    tuple(DYNAMIC if d == -1 else d for d in engine.get_tensor_shape(name)),
                    TRT_DTYPES.get(engine.get_tensor_dtype(name).name, "other"),
                )
            )
        inputs, outputs = self._io[graph]
        problems = graph_io_problems(self.config, graph, tensors)
        if problems:
            raise ToMPError(
                f"{path} does not follow the split-graph contract of its model.json:\n  "
                + "\n  ".join(problems)
                + "\nRebuild the engines from the matching export."
            )
        context = self._create_context(trt, engine)
        for spec in inputs + outputs:
            if spec.name not in self.device_buffers:
                self.device_buffers[spec.name] = self._cuda.mem_alloc(spec.nbytes(self.max_batch))
                self.host_buffers[spec.name] = self._cuda.pagelocked_empty(
                    spec.concrete_shape(self.max_batch), np.bool_ if spec.dtype == "bool" else np.float32
                )
            context.set_tensor_address(spec.name, int(self.device_buffers[spec.name]))
        self.engines[graph], self.contexts[graph] = engine, context

    def _run(self, graph: str, batch: int = 1) -> None:
        """Queues `graph` on `batch` crops or targets: the inputs' shapes are set, then the engine runs (or
        its CUDA graph for this batch replays)."""
        context = self.contexts[graph]
        for spec in self._io[graph][0]:
            context.set_input_shape(spec.name, spec.concrete_shape(batch))
        if self._cuda_graphs and not self._rtx and graph != "backbone":
            if (graph, batch) not in self._captured:
                self._captured[graph, batch] = CapturedLaunch(context, self.stream.handle)
            launched = self._captured[graph, batch]()
        else:
            launched = context.execute_async_v3(self.stream.handle)
        if not launched:
            raise ToMPError(f"TensorRT failed to run the {graph} engine; see the TensorRT messages above.")

    def _check_batch(self, batch: int, what: str) -> None:
        if batch > self.max_batch:
            raise ToMPError(
                f"{batch} {what} need a batch of {batch}, but the engines were built for at most "
                f"{self.max_batch}; rebuild with 'tomp-deploy build --max-batch {batch}'."
            )

    def _upload(self, name: str, array: np.ndarray) -> None:
        host = self.host_buffers[name][: array.shape[0]]
        host[...] = array
        self._cuda.memcpy_htod_async(self.device_buffers[name], host, self.stream)

    def _download(self, name: str, batch: int = 1) -> np.ndarray:
        host = self.host_buffers[name][:batch]
        self._cuda.memcpy_dtoh_async(host, self.device_buffers[name], self.stream)
        return host

    # --- tracking path: features and memory stay on the GPU ---
    def extract(self, image: np.ndarray) -> DeviceFeatures:
        batch = image.shape[0]
        self._check_batch(batch, "crops")
        self._upload("image", image)
        self._run("backbone", batch)
        self.stream.synchronize()
        return DeviceFeatures(int(self.device_buffers["feat"]), batch, self.item_bytes)

    def new_memory(self) -> DeviceMemory:
        return DeviceMemory(self._cuda, self.stream, self.config.memory_size, self.item_bytes)

    def locate(self, queries: Sequence[TargetQuery]) -> list[Located]:
        cuda, stream, batch = self._cuda, self.stream, len(queries)
        self._check_batch(batch, "targets")
        memory_bytes = self.config.memory_size * self.item_bytes
        for row, query in enumerate(queries):
            cuda.memcpy_dtod_async(
                int(self.device_buffers["train_feat"]) + row * memory_bytes, query.memory.buffer, memory_bytes, stream
            )
            cuda.memcpy_dtod_async(
                int(self.device_buffers["test_feat"]) + row * self.item_bytes,
                query.features.pointer + query.index * self.item_bytes,
                self.item_bytes,
                stream,
            )
        for name, array in zip(("train_label", "train_ltrb", "key_padding_mask"), stacked_inputs(queries)):
            self._upload(name, array)
        start, middle, end = self._events
        start.record(stream)
        self._run("predictor", batch)
        middle.record(stream)
        self._run("head", batch)
        end.record(stream)
        scores, ltrb = self._download("scores", batch), self._download("ltrb", batch)
        stream.synchronize()
        seconds = {PREDICTOR: start.time_till(middle) / 1000, HEAD: middle.time_till(end) / 1000}
        return [Located(scores[row].copy(), ltrb[row].copy(), seconds) for row in range(batch)]

    # --- the numpy contract, for parity checks ---
    def run(self, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
        feeds = graph_feeds(self.config, graph, inputs)
        batch = batch_size(feeds)
        self._check_batch(batch, "crops" if graph == "backbone" else "targets")
        for name, array in feeds.items():
            self._upload(name, array)
        self._run(graph, batch)
        outputs = {spec.name: self._download(spec.name, batch) for spec in self._io[graph][1]}
        self.stream.synchronize()
        return {name: array.copy() for name, array in outputs.items()}

    def close(self) -> None:
        """Saves the TensorRT for RTX runtime cache and releases the CUDA context this backend pushed
        (buffers go with their Python objects)."""
        self.stream.synchronize()
        if self._runtime_cache is not None:
            write_entry(self._runtime_cache_path, bytes(self._runtime_cache.serialize()), self._runtime_cache_made_from)
        self._context.pop()
