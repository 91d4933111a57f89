"""PyTorch -> split ONNX graphs (`backbone`, `predictor`, `head`), graph checks and FP16 checks."""
