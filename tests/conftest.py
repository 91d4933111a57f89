import pytest
import torch

from tomp_deploy.model import ToMPNet, preset


@pytest.fixture(scope="session")
def tiny_model() -> ToMPNet:
    torch.manual_seed(0)
    model = ToMPNet(preset("tiny")).eval()
    # Non-trivial BatchNorm statistics so that eval-mode normalisation matters in every comparison.
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return model
