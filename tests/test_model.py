"""The PyTorch model against values computed independently here, and the key padding mask's exactness."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tomp_deploy.model import ToMPNet, preset
from tomp_deploy.model.transformer import sine_position_encoding

FEAT = 18


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def memory_inputs(model: ToMPNet, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(3, 3, 288, 288, generator=generator) * 255
    with torch.no_grad():
        feats = model.backbone(images)
    labels = torch.rand(2, FEAT, FEAT, generator=generator)
    ltrb = torch.rand(2, 4, FEAT, FEAT, generator=generator)
    return feats[:2], labels, ltrb, feats[2:3]


def predict_one(model: ToMPNet, train_feat, labels, ltrb, test_feat, key_padding_mask):
    """The predictor on one target: its memory inputs and mask rows as a batch of one."""
    return model.predictor(train_feat[None], labels[None], ltrb[None], test_feat, key_padding_mask[None])


def mask(rows: list[list[int]], memory_size: int = 2) -> torch.Tensor:
    """rows[i] lists the hidden memory slots of row i; the test frame is never hidden."""
    cells = FEAT * FEAT
    result = torch.zeros(2, (memory_size + 1) * cells, dtype=torch.bool)
    for row, hidden in enumerate(rows):
        for slot in hidden:
            result[row, slot * cells : (slot + 1) * cells] = True
    return result


def test_positional_encoding_matches_formula():
    channels = 16
    depth = channels // 4
    pos = sine_position_encoding(FEAT, channels).numpy()
    for y, x in [(0, 0), (3, 11), (17, 17)]:
        cx, cy = (x + 0.5) / (FEAT + 1e-6), (y + 0.5) / (FEAT + 1e-6)
        expected = []
        for fn in (math.sin, math.cos):
            for i in range(1, depth + 1):
                w = i * FEAT / depth * math.pi
                expected += [fn(w * cx), fn(w * cy)]
        np.testing.assert_allclose(pos[:, y, x], expected, atol=1e-5)


def test_backbone_normalises_and_l2_normalises(tiny_model):
    image = torch.rand(2, 3, 288, 288) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    r = tiny_model.feature_extractor
    with torch.no_grad():
        x = (image / 255 - mean) / std
        x = r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))))
        x = F.conv2d(x, tiny_model.head.feature_extractor[0].weight, padding=1)
        c = x.shape[1]
        expected = x * (math.sqrt(1 / c) * torch.sqrt(c * FEAT * FEAT / ((x * x).sum(dim=(1, 2, 3), keepdim=True) + 1e-5)))
        feat = tiny_model.backbone(image)
    assert feat.shape == (2, c, FEAT, FEAT)
    assert relative_error(feat, expected) < 1e-5
    # The instance norm leaves every sample with mean square 1/C (the scale sqrt(1/(C*1*1))).
    torch.testing.assert_close(feat.pow(2).mean(dim=(1, 2, 3)), torch.full((2,), 1 / c))


def test_l2_norm_is_safe_where_fp16_sums_overflow():
    """Features of magnitude ~100 square-sum far beyond FP16's 65504; the graph's form stays finite."""
    norm = ToMPNet(preset("tomp50")).head.feature_extractor[1]
    x = torch.randn(1, 256, FEAT, FEAT) * 100
    assert (x.half().float() ** 2).sum() > 65504
    reference = x * norm.scale * torch.sqrt(x[0].numel() / ((x * x).sum() + 1e-5))
    assert relative_error(norm(x), reference) < 1e-5
    half = norm(x.half()).float()
    assert torch.isfinite(half).all()
    assert relative_error(half, reference) < 1e-2


def test_empty_slot_hidden_in_both_rows_equals_shorter_memory(tiny_model):
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    with torch.no_grad():
        padded = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[1], [1]]))
        short = predict_one(tiny_model, train_feat[:1], labels[:1], ltrb[:1], test_feat, mask([[], []], memory_size=1))
    for a, b in zip(padded, short):
        assert relative_error(a, b) <= 1e-4


def test_empty_slot_content_is_irrelevant(tiny_model):
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    garbage = train_feat.clone()
    garbage[1] = torch.randn_like(garbage[1]) * 10
    garbage_ltrb = ltrb.clone()
    garbage_ltrb[1] *= 3
    with torch.no_grad():
        a = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[1], [1]]))
        b = predict_one(tiny_model, garbage, labels, garbage_ltrb, test_feat, mask([[1], [1]]))
    for x, y in zip(a, b):
        assert relative_error(x, y) <= 1e-5


def test_row_one_sees_only_the_annotated_frame(tiny_model):
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    with torch.no_grad():
        cls_filter, bbreg_filter, cls_feat, bbreg_feat = predict_one(
            tiny_model, train_feat, labels, ltrb, test_feat, mask([[], [1]])
        )
        only_initial = predict_one(tiny_model, train_feat[:1], labels[:1], ltrb[:1], test_feat, mask([[], []], memory_size=1))
        both = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[], []]))
    assert relative_error(bbreg_filter, only_initial[1]) <= 1e-4
    assert relative_error(bbreg_feat, only_initial[3]) <= 1e-4
    assert relative_error(cls_filter, both[0]) <= 1e-4
    assert relative_error(cls_feat, both[2]) <= 1e-4
    assert relative_error(cls_filter, bbreg_filter) > 1e-3  # the two stages really differ


def test_one_decoder_query_gives_both_target_models(tiny_model):
    """With one memory frame the two stages see the same tokens: both rows are one decoder query's output."""
    predictor = tiny_model.predictor
    assert predictor.query_embed_fg.weight.shape == (1, tiny_model.config.feature_dim)
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    with torch.no_grad():
        cls_filter, bbreg_filter, cls_feat, bbreg_feat = predict_one(
            tiny_model, train_feat, labels, ltrb, test_feat, mask([[1], [1]])
        )
    torch.testing.assert_close(cls_filter, bbreg_filter)
    torch.testing.assert_close(cls_feat, bbreg_feat)


def test_row_one_runs_on_its_visible_tokens_only(tiny_model):
    """The pruned row 1 equals the masked computation over all tokens, and its mask positions of memory
    slot 1 are not read (the box regressor never sees that slot)."""
    from tomp_deploy.model.transformer import Transformer

    predictor = tiny_model.predictor
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    with torch.no_grad():
        tokens = predictor._tokens(train_feat[None], labels[None], ltrb[None], test_feat)
        masked, memory = Transformer.forward(
            predictor.transformer, tokens, predictor.sequence_pos, predictor.query_embed_fg_decoder.weight, mask([[1], [1]])[1:2]
        )
        outputs = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[], [1]]))
        unread = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[], []]))
    assert relative_error(outputs[1], masked[:, 0]) <= 1e-5
    assert relative_error(outputs[3].flatten(2).transpose(1, 2), memory[:, -FEAT * FEAT :]) <= 1e-5
    for a, b in zip(outputs, unread):
        assert torch.equal(a, b)


def test_head_matches_paper_formulas(tiny_model):
    torch.manual_seed(3)
    c = tiny_model.config.feature_dim
    w_cls, w_reg = torch.randn(1, c), torch.randn(1, c)
    feat_cls, feat_reg = torch.randn(1, c, FEAT, FEAT), torch.randn(1, c, FEAT, FEAT)
    head = tiny_model.head
    with torch.no_grad():
        scores, ltrb = head(w_cls, w_reg, feat_cls, feat_reg)

        classifier_weights = w_cls @ head.classifier.linear.weight.T + head.classifier.linear.bias
        expected_scores = (feat_cls[0] * classifier_weights[0].view(c, 1, 1)).sum(0)

        regressor_weights = w_reg @ head.bb_regressor.linear.weight.T + head.bb_regressor.linear.bias
        attention = (feat_reg[0] * regressor_weights[0].view(c, 1, 1)).sum(0)
        x = attention[None, None] * feat_reg
        tower = list(head.bb_regressor.tower)
        for conv, norm in zip(tower[0::3], tower[1::3]):
            x = F.conv2d(x, conv.weight, conv.bias, padding=1)
            mu = x.mean(dim=(1, 2, 3), keepdim=True)
            var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
            x = torch.relu((x - mu) / torch.sqrt(var + norm.eps) * norm.weight.view(1, c, 1, 1) + norm.bias.view(1, c, 1, 1))
        final = head.bb_regressor.bbreg_layer
        expected_ltrb = torch.exp(F.conv2d(x, final.weight, final.bias, padding=1))

    assert scores.shape == (1, FEAT, FEAT) and ltrb.shape == (1, 4, FEAT, FEAT)
    assert relative_error(scores[0], expected_scores) < 1e-5
    assert relative_error(ltrb, expected_ltrb) < 1e-4
    assert (ltrb > 0).all()


def test_predictor_token_order_is_memory_then_test(tiny_model):
    """Swapping the two memory frames (with their labels) leaves row 0 unchanged: the encoder is
    permutation-equivariant, so only the test frame's position in the sequence matters."""
    train_feat, labels, ltrb, test_feat = memory_inputs(tiny_model)
    swap = [1, 0]
    with torch.no_grad():
        a = predict_one(tiny_model, train_feat, labels, ltrb, test_feat, mask([[], []]))
        b = predict_one(tiny_model, train_feat[swap], labels[swap], ltrb[swap], test_feat, mask([[], []]))
        c = predict_one(tiny_model, test_feat.expand(2, -1, -1, -1), labels, ltrb, train_feat[:1], mask([[], []]))
    assert relative_error(a[0], b[0]) < 1e-4 and relative_error(a[2], b[2]) < 1e-4
    assert relative_error(a[2], c[2]) > 1e-2


@pytest.mark.parametrize("name", ["tomp50", "tomp101"])
def test_paper_presets(name):
    config = preset(name)
    assert (config.feature_dim, config.num_heads, config.num_encoder_layers, config.num_decoder_layers) == (256, 8, 6, 6)
    assert (config.dim_feedforward, config.search_size, config.feature_size, config.memory_size) == (2048, 288, 18, 2)
    assert config.backbone_channels == 1024
    assert math.isclose(config.head_norm_scale, math.sqrt(1 / 256))


def test_group_norm_matches_torch_and_survives_fp16():
    from tomp_deploy.model.heads import SingleGroupNorm

    torch.manual_seed(0)
    norm = SingleGroupNorm(256)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(1, 256, FEAT, FEAT) * 300
    expected = F.group_norm(x, 1, norm.weight, norm.bias, norm.eps)
    assert relative_error(norm(x), expected) < 1e-5
    assert not torch.isfinite((x.half() * x.half()).sum())  # the plain variance overflows in FP16
    half = norm.half()(x.half()).float()
    assert relative_error(half, expected) < 1e-2
