"""The torch-free runtime: everything a video pipeline embeds to track with an exported model.

The tracker and its one frame loop, geometry and localisation, the split-graph contract, frame sources,
the export and engine manifests, and the ONNX Runtime, OpenVINO and TensorRT backends. It imports numpy,
OpenCV and the chosen inference library only, and nothing else of tomp-deploy.
"""
