"""OpenVINO backend over an export folder (torch-free): the CPU's own units for BF16 and INT8.

`precision` is the compute precision of the CPU plugin: `fp32`; `bf16` (AMX or AVX512-BF16, which OpenVINO
reports as the BF16 capability); `int8`, which runs an INT8 export made by `tomp-deploy quantize` (QDQ
graphs, which OpenVINO executes with integer kernels); `auto`, the best of these the export and the CPU
allow. Compiled graphs are cached beside the export, one folder per precision, or in the user cache when the
export folder is read-only, so a second start skips compilation. The cache is the project's own
(`cache_files`: OpenVINO's export/import with a hash checked before every import), not OpenVINO's CACHE_DIR,
whose blobs are imported unchecked: a blob damaged on disk gave boxes 100 px off, on every later run.
"""

from __future__ import annotations

from pathlib import Path

import openvino as ov

from tomp_deploy.runtime.backends.base import ExportedGraphs, thread_budget
from tomp_deploy.runtime.cache_files import read_entry, user_cache, write_entry
from tomp_deploy.runtime.contract import DYNAMIC, GRAPHS, GraphTensor, Tensors
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import COMPILE_CACHE_FOLDER, ExportFolder, read_export

COMPUTE_PRECISIONS = ("auto", "fp32", "bf16", "int8")
"""What `--precision` may ask the openvino backend to compute in (`auto`: `choose_precision` decides)."""
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""OpenVINO's inference precision hint per precision: an INT8 graph's quantised layers run in INT8 and
the layers it keeps in float (softmax, LayerNorm, the mask path) in FP32."""
OPENVINO_DTYPES = {"f32": "float32", "f16": "float16", "boolean": "bool"}
"""OpenVINO's element type names -> the contract's dtypes."""


def cpu_capabilities(core: ov.Core) -> list[str]:
    """What OpenVINO's CPU plugin reports it can compute in (FP32, BF16, INT8, ...)."""
    return list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def choose_precision(requested: str, export_precision: str, capabilities: list[str]) -> str:
    """The precision to compile for, or a ToMPError saying why the requested one cannot run here."""
    if requested not in COMPUTE_PRECISIONS:
        raise ToMPError(f"--precision {requested!r}: the openvino backend runs {', '.join(COMPUTE_PRECISIONS)}.")
    if export_precision == "int8":
        if requested not in ("auto", "int8"):
            raise ToMPError(
                f"The export is quantised to INT8; run it with --precision int8 (or auto), or give the "
                f"FP32 export for --precision {requested}."
            )
        return "int8"
    if requested == "int8":
        raise ToMPError(
            "--precision int8 needs an INT8 export: make one with 'tomp-deploy quantize EXPORT --out DIR "
            "--calibration DATASET' and give DIR."
        )
    if requested == "bf16" and "BF16" not in capabilities:
        raise ToMPError(
            f"This CPU has no BF16 units OpenVINO can use (it reports {', '.join(capabilities)}); use --precision fp32."
        )
    if requested == "auto":
        return "bf16" if "BF16" in capabilities and export_precision == "fp32" else "fp32"
    return requested


def cache_folder(export_folder: Path, precision: str) -> Path:
    """`.openvino-cache/<precision>` inside the export where it can be written (and is not a link out of it),
    else a folder of the user's cache.

    One folder per precision because OpenVINO 2026.4's cache key leaves out INFERENCE_PRECISION_HINT: a
    model compiled for FP32 was imported for a BF16 compile of the same graph and gave NaN (or crashed) on
    an AMX Xeon, and a BF16 blob would silently serve an FP32 request.
    """
    beside = export_folder / COMPILE_CACHE_FOLDER / precision
    try:
        beside.mkdir(parents=True, exist_ok=True)
        if not beside.resolve().is_relative_to(export_folder.resolve()):
            raise OSError("the cache folder is a link out of the export")
        return beside
    except OSError:
        folder = user_cache("openvino", export_folder.resolve().as_posix().strip("/").replace("/", "_"), precision)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _reason(error: RuntimeError) -> str:
    """The informative line of an OpenVINO error (its first lines only name the source files it passed)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith("Exception from")), lines[0] if lines else "")
    return reason[:300]


class OpenVinoBackend(ExportedGraphs):
    """Runs the three exported graphs with OpenVINO's CPU plugin under the latency hint; numpy in and out.

    `threads` sets the plugin's inference threads (the thread budget: one per physical core by default);
    `precision` is described in the module docstring, and `self.precision` says which one `auto` chose.
    """

    name = "openvino"

    def __init__(
        self, export: str | Path | ExportFolder, device: str = "cpu", precision: str = "auto", threads: int | None = None
    ):
        if device != "cpu":
            raise ToMPError(f"The openvino backend runs on the CPU; --device {device} is for torch-cuda or tensorrt.")
        self.threads = thread_budget(threads)
        self.exported = export if isinstance(export, ExportFolder) else read_export(export)
        self.config = self.exported.config
        self.tracker_params = self.exported.tracker
        core = ov.Core()
        self.capabilities = cpu_capabilities(core)
        self.precision = choose_precision(precision, self.exported.manifest.precision, self.capabilities)
        self.cache = cache_folder(self.exported.folder, self.precision)
        properties = {
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
        }
        compiled_for = {
            "precision": self.precision,
            "openvino": ov.__version__,
            "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"),
            "capabilities": self.capabilities,
        }
        self.requests = {}
        for graph in GRAPHS:
            compiled = self._compiled(core, graph, properties, compiled_for)
            self._check_io(graph, compiled)
            self.requests[graph] = compiled.create_infer_request()

    def _compiled(self, core: ov.Core, graph: str, properties: dict, compiled_for: dict):
        """The graph compiled for this CPU and precision (`compiled_for`): imported from the verified cache,
        else compiled and cached."""
        entry = self.cache / f"{graph}.blob"
        made_from = {"graph": graph, "onnx_sha256": self.exported.manifest.graphs[graph].sha256, **compiled_for}
        blob = read_entry(entry, made_from)
        if blob is not None:
            try:
                return core.import_model(blob, "CPU", properties)
            except RuntimeError:
                pass  # a blob this OpenVINO cannot import although it wrote it: compile afresh below
        try:
            compiled = core.compile_model(str(self.exported.graph_path(graph)), "CPU", properties)
        except RuntimeError as exc:
            advice = (
                "quantise the FP32 export again with the default --quantizer nncf"
                if self.precision == "int8"
                else "export the model again"
            )
            raise ToMPError(
                f"OpenVINO cannot compile the {graph} graph of {self.exported.folder} ({_reason(exc)}); {advice}."
            ) from None
        write_entry(entry, compiled.export_model().getvalue(), made_from)
        return compiled

    def _check_io(self, graph: str, compiled) -> None:
        def tensor(port, is_input: bool) -> GraphTensor:
            shape = tuple(d.get_length() if d.is_static else DYNAMIC for d in port.get_partial_shape())
            return GraphTensor(
                port.get_any_name(), is_input, shape, OPENVINO_DTYPES.get(port.get_element_type().get_type_name(), "other")
            )

        self._check_graph_io(
            graph, [tensor(port, True) for port in compiled.inputs] + [tensor(port, False) for port in compiled.outputs]
        )

    def _run(self, graph: str, feeds: Tensors) -> Tensors:
        request = self.requests[graph]
        request.infer(feeds)
        return {port.get_any_name(): request.get_tensor(port).data.copy() for port in request.model_outputs}

    def close(self) -> None:
        """Releases the infer requests and their compiled models."""
        self.requests.clear()
