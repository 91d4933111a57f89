"""Facts about the host a benchmark or training run ran on (CPU, GPUs, package versions), recorded with its figures."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


CPU_FEATURES = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
"""The /proc/cpuinfo flags that decide which precisions a CPU backend can run fast (AMX, BF16, FP16, VNNI)."""


def cpu_features() -> list[str]:
    """Which of CPU_FEATURES this CPU has (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [feature for feature in CPU_FEATURES if feature in flags]


def gpu_names() -> list[str]:
    """The NVIDIA GPUs the driver reports (empty without a driver); asked of nvidia-smi so that a
    torch-free runtime can record them too."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [
        f"{name.strip()} (driver {driver.strip()})"
        for name, _, driver in (line.partition(",") for line in listed.splitlines() if line.strip())
    ]


def host_facts() -> dict:
    versions = {}
    for package in (
        "torch",
        "torchvision",
        "onnxruntime",
        "onnxruntime-gpu",
        "openvino",
        "onnx",
        "numpy",
        "opencv-python",
        "opencv-python-headless",
        "tensorrt",
        "pycuda",
        "cuda-python",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_features": cpu_features(),
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
