"""What the run measures on: the GPU (name, clocks, memory) or the CPU, and the libraries."""

from __future__ import annotations

import re
import shutil
import subprocess

import torch

from tomp_deploy.evaluation.host_facts import host_facts

CLOCK_QUERIES = ("clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem", "power.limit", "temperature.gpu", "driver_version")


def nvidia_smi_facts(index: int) -> dict[str, str]:
    """Clocks, power limit and temperature as nvidia-smi reports them (empty without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        listed = subprocess.run(
            ["nvidia-smi", f"--id={index}", f"--query-gpu={','.join(CLOCK_QUERIES)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(zip(CLOCK_QUERIES, (value.strip() for value in listed.strip().split(","))))


def device_facts(device: str) -> dict:
    """The device, the host and the libraries; cuDNN's version as torch reports it (92400 is 9.24.0)."""
    facts = {
        "device": device,
        "host": host_facts(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        properties = torch.cuda.get_device_properties(index)
        facts.update(
            name=properties.name,
            compute_capability=f"{properties.major}.{properties.minor}",
            memory_gib=round(properties.total_memory / 2**30, 1),
            multiprocessors=properties.multi_processor_count,
            nvidia_smi=nvidia_smi_facts(index),
        )
    else:
        facts["name"] = facts["host"]["cpu"]
    return facts


def device_slug(facts: dict) -> str:
    """The device's name in a file name: 'NVIDIA H200' -> 'nvidia-h200'; a CPU run is 'cpu'."""
    if not facts["device"].startswith("cuda"):
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", facts["name"].lower()).strip("-") or "gpu"
