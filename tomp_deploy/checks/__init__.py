"""Checks of one backend against another: contract parity, `bench`, and the FP16 layer report.
Torch-free; the torch reference is opened by name through the backend registry."""
