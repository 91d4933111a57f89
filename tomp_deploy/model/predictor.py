"""The `predictor` graph: ToMP's Transformer model predictor, two-stage in one batch of two."""

from __future__ import annotations

import torch
from torch import nn

from tomp_deploy.model.transformer import Transformer, sine_position_encoding
from tomp_deploy.presets import ModelConfig


def box_encoding_mlp(d_model: int) -> nn.Sequential:
    """phi: 1x1 convs 4 -> d/4 -> d -> d with BatchNorm+ReLU between (the reference's indices 0..6)."""
    return nn.Sequential(
        nn.Conv1d(4, d_model // 4, kernel_size=1),
        nn.BatchNorm1d(d_model // 4),
        nn.ReLU(),
        nn.Conv1d(d_model // 4, d_model, kernel_size=1),
        nn.BatchNorm1d(d_model),
        nn.ReLU(),
        nn.Conv1d(d_model, d_model, kernel_size=1),
    )


class FilterPredictor(nn.Module):
    """Contract `predictor`: memory frames + test frame -> target-model weights and encoded test features.

    Inputs: `train_feat` [T,C,F,F], `train_label` [T,F,F], `train_ltrb` [T,4,F,F], `test_feat` [1,C,F,F],
    `key_padding_mask` bool [2,N] with N = (T+1)*F*F tokens (memory frames in order, then the test frame,
    row-major inside a frame; True hides a key). Row 0 of the batch yields the classifier outputs,
    row 1 the box-regressor outputs. Outputs: `cls_filter` [1,C], `bbreg_filter` [1,C] (the decoder
    output w, before the heads' linear projections), `cls_feat` [1,C,F,F], `bbreg_feat` [1,C,F,F].
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.feature_dim
        self.transformer = Transformer(
            d, config.num_heads, config.num_encoder_layers, config.num_decoder_layers, config.dim_feedforward
        )
        self.box_encoding = box_encoding_mlp(d)
        self.query_embed_fg = nn.Embedding(1, d)
        if config.use_test_frame_encoding:
            self.query_embed_test = nn.Embedding(1, d)
        # The reference registers the same embedding twice; both names appear in its checkpoints.
        self.query_embed_fg_decoder = self.query_embed_fg
        self.use_test_frame_encoding = config.use_test_frame_encoding
        frame_pos = sine_position_encoding(config.feature_size, d).flatten(1).transpose(0, 1)  # [F*F, C]
        # Every frame has the same encoding; precomputed for the longest sequence, sliced per call.
        self.register_buffer("sequence_pos", frame_pos.repeat(config.memory_size + 1, 1)[None], persistent=False)

    def forward(
        self,
        train_feat: torch.Tensor,
        train_label: torch.Tensor,
        train_ltrb: torch.Tensor,
        test_feat: torch.Tensor,
        key_padding_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        num_train, channels, height, width = train_feat.shape
        cells = height * width
        fg = self.query_embed_fg.weight  # [1, C]

        train_tokens = train_feat.flatten(2).transpose(1, 2)  # [T, F*F, C]
        train_tokens = train_tokens + train_label.reshape(num_train, cells, 1) * fg
        ltrb_seq = train_ltrb.flatten(2).permute(1, 0, 2).reshape(1, 4, num_train * cells)
        ltrb_enc = self.box_encoding(ltrb_seq).reshape(channels, num_train, cells).permute(1, 2, 0)
        train_tokens = (train_tokens + ltrb_enc).reshape(num_train * cells, channels)

        test_tokens = test_feat.flatten(2).transpose(1, 2).reshape(cells, channels)
        if self.use_test_frame_encoding:
            test_tokens = test_tokens + self.query_embed_test.weight

        tokens = torch.cat([train_tokens, test_tokens], dim=0)
        src = tokens.unsqueeze(0).expand(2, -1, -1)
        pos = self.sequence_pos[:, : tokens.shape[0]]

        decoded, memory = self.transformer(src, pos, self.query_embed_fg_decoder.weight, key_padding_mask)
        filters = decoded[:, 0, :]  # [2, C]
        test_enc = memory[:, num_train * cells:, :].transpose(1, 2).reshape(2, channels, height, width)
        return filters[0:1], filters[1:2], test_enc[0:1], test_enc[1:2]
