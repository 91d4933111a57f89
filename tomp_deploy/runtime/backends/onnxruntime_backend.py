"""ONNX Runtime backend over an export folder (torch-free)."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort

from tomp_deploy.runtime.backends.attention_fusion import fuse_attention
from tomp_deploy.runtime.backends.base import ExportedGraphs, thread_budget
from tomp_deploy.runtime.contract import DYNAMIC, GRAPHS, GraphTensor, Tensors
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import ExportFolder, read_export

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
"""Short names of the execution providers, in their order of preference (TensorRT, then CUDA, then CPU)."""
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(bool)": "bool"}


def resolve_providers(requested: list[str]) -> list[str]:
    """The requested providers in fallback order, CPU last; an unavailable one is an error."""
    unknown = [p for p in requested if p not in PROVIDERS]
    if unknown:
        raise ToMPError(f"Unknown execution provider(s) {unknown}; choose from {', '.join(PROVIDERS)}.")
    available = set(ort.get_available_providers())
    missing = [p for p in requested if PROVIDERS[p] not in available]
    if missing:
        raise ToMPError(
            f"ONNX Runtime here has no {', '.join(missing)} execution provider (available: "
            f"{', '.join(sorted(available))}). Install onnxruntime-gpu instead of onnxruntime for cuda/tensorrt."
        )
    return [PROVIDERS[p] for p in PROVIDERS if p in requested or p == "cpu"]


def session_options(threads: int) -> ort.SessionOptions:
    """Highest graph optimisation, quiet logs, `threads` compute threads that do not spin between runs."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    return options


class OnnxRuntimeBackend(ExportedGraphs):
    """Runs the three exported graphs with ONNX Runtime; numpy in, numpy out.

    Graph optimisation is at its highest level. numpy inputs are bound without copies on the CPU
    provider, so the tracker's memory features are handed over as they are each frame. On the CPU
    provider alone, an FP32 predictor runs with fused attention (`attention_fusion`: same outputs,
    faster). Worker threads do not spin between runs: the three sessions run one after another, and a
    pool left spinning steals the cores of the next (ToMP-50 tracking 3.2 -> 2.4 FPS on two cores; the tiny
    model 11.6 FPS spinning, 25.1 not, and 7.9 against 12.2 with one of the two cores busy). `threads` is the
    thread budget (`thread_budget`: one per physical core by default).
    """

    name = "onnxruntime"

    @property
    def precision(self) -> str:
        """The export's precision, which ONNX Runtime computes in."""
        return self.exported.manifest.precision

    def __init__(
        self,
        export: str | Path | ExportFolder,
        device: str = "cpu",
        providers: list[str] | None = None,
        threads: int | None = None,
    ):
        self.exported = export if isinstance(export, ExportFolder) else read_export(export)
        self.config = self.exported.config
        self.tracker_params = self.exported.tracker
        self.providers = resolve_providers(providers or (["cuda"] if device.startswith("cuda") else ["cpu"]))
        self.threads = thread_budget(threads)
        options = session_options(self.threads)
        self.sessions = {}
        self.fused_attention_blocks = 0
        """Attention blocks of the predictor running as one MultiHeadAttention kernel each."""
        for graph in GRAPHS:
            try:
                self.sessions[graph] = ort.InferenceSession(self._graph_to_load(graph), options, providers=self.providers)
            except Exception as exc:  # ORT raises its own exception types for bad or foreign files
                raise ToMPError(
                    f"ONNX Runtime cannot load the {graph} graph of {self.exported.folder}: "
                    f"{str(exc).splitlines()[0]}. Export the model again."
                ) from None
            self._check_io(graph)

    def _graph_to_load(self, graph: str) -> str | bytes:
        """The graph's file, or the bytes of its fused-attention rewrite (FP32 predictor, CPU provider alone)."""
        path = self.exported.graph_path(graph)
        if graph != "predictor" or self.exported.manifest.precision != "fp32" or self.providers != [PROVIDERS["cpu"]]:
            return str(path)
        try:
            model = onnx.load(str(path))
        except Exception:  # unreadable: let ONNX Runtime's loader report it in its own words
            return str(path)
        fused, self.fused_attention_blocks = fuse_attention(model, self.config.num_heads, self.config.feature_dim)
        return fused.SerializeToString() if self.fused_attention_blocks else str(path)

    def _check_io(self, graph: str) -> None:
        session = self.sessions[graph]
        self._check_graph_io(
            graph,
            [
                GraphTensor(
                    a.name, is_input, tuple(d if isinstance(d, int) else DYNAMIC for d in a.shape), ORT_DTYPES.get(a.type, a.type)
                )
                for is_input, tensors in ((True, session.get_inputs()), (False, session.get_outputs()))
                for a in tensors
            ],
        )

    def _run(self, graph: str, feeds: Tensors) -> Tensors:
        session = self.sessions[graph]
        return dict(zip((meta.name for meta in session.get_outputs()), session.run(None, feeds)))

    def close(self) -> None:
        """Releases the three sessions (their memory arenas and thread pools)."""
        self.sessions.clear()
