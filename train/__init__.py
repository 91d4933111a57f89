"""Training of ToMP: the paper's recipe (sampling, processing, losses, optimiser), from one CPU to many GPUs."""
