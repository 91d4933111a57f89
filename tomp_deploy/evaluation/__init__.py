"""Benchmarks and their scores: dataset readers, synthetic scene families, metrics, scoring, and the
evaluation runner (local workers or Ray). Torch-free; it runs trackers through the runtime."""
