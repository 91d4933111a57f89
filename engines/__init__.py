"""ONNX -> FP16 TensorRT engines: optimisation profiles, precision pinning, the builder, manifests."""
