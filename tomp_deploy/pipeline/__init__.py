"""Steps that combine the runtime with export and engine building (the forms a model is needed in),
shared by the CLI and the recorded benchmarks."""

from tomp_deploy.pipeline.model_forms import ModelForms, model_for_backend

__all__ = ["ModelForms", "model_for_backend"]
