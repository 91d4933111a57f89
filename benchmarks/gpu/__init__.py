"""`python -m benchmarks.gpu`: everything a GPU can show about this toolkit, measured in one command within a
wall-time budget (five minutes by default), for the rare days a GPU is lent.

    python -m benchmarks.gpu                         # on a CUDA GPU: ToMP-50/101 and the shipped tiny model
    python -m benchmarks.gpu --device cpu --quick    # the smoke mode the default test suite runs
    python -m benchmarks.gpu --plot benchmarks/results/gpu-nvidia-h200.json   # redraw a run's plot

Four parts, each given a share of the budget and stopped between measurements when it runs out:
1. parity: torch-cuda FP16, BF16 and FP32 against the torch CPU FP32 reference, per contract output and over
   a 100-frame tracked sequence (IoU per frame, AUC difference);
2. speed: FPS end to end and per stage, per precision, CUDA graphs on and off;
3. batching: one batched tracker against one tracker per target, 1..32 targets, and 4 streams of 4 targets;
4. training: iterations per second of the tiny and ToMP-50 recipes (AMP on CUDA) and a resume check.

It needs only what a stock GPU image holds (torch, numpy, OpenCV, rich; `pip install --no-deps -e .`):
scenes are drawn with numpy, and what is missing (matplotlib for the plot) is skipped with a one-line reason.
Results are written after every measurement to benchmarks/results/gpu-<device>.json and .md, so a run that
is killed keeps what it measured.
"""
