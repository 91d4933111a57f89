"""Contract inputs of the tiny model and the check that a backend computes every contract output as the
PyTorch reference does, shared by the export and OpenVINO tests."""

import numpy as np

from tomp_deploy.checks.parity import relative_error

FEAT = 18


def contract_inputs(config, memory_frames: int, seed: int = 0, targets: int = 1) -> tuple[dict, dict]:
    """Random backbone and predictor inputs by name, for `targets` targets; `memory_frames` 1 hides the
    second memory slot."""
    rng = np.random.default_rng(seed)
    c, t, cells = config.feature_dim, config.memory_size, FEAT * FEAT
    mask = np.zeros((targets, 2, config.num_tokens), bool)
    mask[:, 1, cells : t * cells] = True
    if memory_frames == 1:
        mask[:, :, cells : 2 * cells] = True
    return {"image": rng.uniform(0, 255, (targets, 3, 288, 288)).astype(np.float32)}, {
        "train_feat": rng.normal(0, 0.06, (targets, t, c, FEAT, FEAT)).astype(np.float32),
        "train_label": rng.uniform(0, 1, (targets, t, FEAT, FEAT)).astype(np.float32),
        "train_ltrb": rng.uniform(-0.3, 0.5, (targets, t, 4, FEAT, FEAT)).astype(np.float32),
        "test_feat": rng.normal(0, 0.06, (targets, c, FEAT, FEAT)).astype(np.float32),
        "key_padding_mask": mask,
    }


def assert_contract_parity(torch_backend, candidate, memory_frames):
    """Every output of the three graphs within 1e-4 (relative) of torch's; the head runs on torch's
    predictor outputs."""
    backbone_inputs, predictor_inputs = contract_inputs(torch_backend.config, memory_frames)
    predicted = torch_backend.run("predictor", predictor_inputs)
    for graph, inputs in (("backbone", backbone_inputs), ("predictor", predictor_inputs), ("head", predicted)):
        reference, outputs = torch_backend.run(graph, inputs), candidate.run(graph, inputs)
        assert sorted(outputs) == sorted(reference)
        for name, value in reference.items():
            assert relative_error(value, outputs[name])[1] <= 1e-4, (graph, name)
