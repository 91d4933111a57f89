"""Contract inputs of the tiny model and the check that a backend computes every contract output as the
PyTorch reference does, shared by the export and OpenVINO tests."""

import numpy as np

from tomp_deploy.parity import relative_error

FEAT = 18


def contract_inputs(config, memory_frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    c, t, cells = config.feature_dim, config.memory_size, FEAT * FEAT
    image = rng.uniform(0, 255, (1, 3, 288, 288)).astype(np.float32)
    train_feat = rng.normal(0, 0.06, (t, c, FEAT, FEAT)).astype(np.float32)
    labels = rng.uniform(0, 1, (t, FEAT, FEAT)).astype(np.float32)
    ltrb = rng.uniform(-0.3, 0.5, (t, 4, FEAT, FEAT)).astype(np.float32)
    test_feat = rng.normal(0, 0.06, (1, c, FEAT, FEAT)).astype(np.float32)
    mask = np.zeros((2, config.num_tokens), bool)
    mask[1, cells:t * cells] = True
    if memory_frames == 1:
        mask[:, cells:2 * cells] = True
    return image, (train_feat, labels, ltrb, test_feat, mask)


def assert_contract_parity(torch_backend, ort_backend, memory_frames):
    image, predictor_inputs = contract_inputs(torch_backend.config, memory_frames)
    assert relative_error(torch_backend.backbone(image), ort_backend.backbone(image))[1] <= 1e-4
    reference = torch_backend.predictor(*predictor_inputs)
    candidate = ort_backend.predictor(*predictor_inputs)
    for a, b in zip(reference, candidate):
        assert relative_error(a, b)[1] <= 1e-4
    head_inputs = (reference[0], reference[2], reference[1], reference[3])
    for a, b in zip(torch_backend.head(*head_inputs), ort_backend.head(*head_inputs)):
        assert relative_error(a, b)[1] <= 1e-4
