"""The `predictor` graph: ToMP's Transformer model predictor, two-stage in one batch of two."""

from __future__ import annotations

import torch
from torch import nn

from tomp_deploy.model.transformer import Transformer, sine_position_encoding
from tomp_deploy.runtime.presets import ModelConfig


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
    """Contract `predictor`: memory frames + test frame -> target-model weights and encoded test features,
    for a batch of N targets, each with its own memory.

    Inputs: `train_feat` [N,T,C,F,F], `train_label` [N,T,F,F], `train_ltrb` [N,T,4,F,F], `test_feat`
    [N,C,F,F], `key_padding_mask` bool [N,2,L] with L = (T+1)*F*F tokens (memory frames in order, then the
    test frame, row-major inside a frame; True hides a key). Row 0 of a target's mask yields its classifier
    outputs, row 1 its box-regressor outputs. Outputs: `cls_filter` [N,C], `bbreg_filter` [N,C] (the
    decoder output w, before the heads' linear projections), `cls_feat` [N,C,F,F], `bbreg_feat` [N,C,F,F].
    Targets do not interact: target i's outputs are those of a call on target i alone.

    Row 1 runs on the annotated frame's and the test frame's tokens only ((1 + 1) * F * F instead of
    (T + 1) * F * F): the box regressor sees the annotated frame only, so the other memory slots are
    hidden in row 1 by the contract, and a token hidden as a key in every layer cannot change a visible
    one; the outputs equal the masked computation over all tokens, target by target. Row 1's mask
    positions of memory slots 1..T-1 are therefore not read.
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

    def _tokens(self, train_feat, train_label, train_ltrb, test_feat) -> torch.Tensor:
        """Encoded sequences [B, (T+1)*F*F, C] of B sequences: T memory frames then the test frame.

        train_feat [B,T,C,F,F], train_label [B,T,F,F], train_ltrb [B,T,4,F,F], test_feat [B,C,F,F].
        A memory frame's token is feat + label * e_fg + phi(ltrb); a test token is feat (+ e_test).
        """
        batch, num_train, channels, height, width = train_feat.shape
        cells = height * width
        fg = self.query_embed_fg.weight  # [1, C]
        train_tokens = train_feat.flatten(3).transpose(2, 3)  # [B, T, F*F, C]
        train_tokens = train_tokens + train_label.reshape(batch, num_train, cells, 1) * fg
        ltrb_seq = train_ltrb.flatten(3).permute(0, 2, 1, 3).reshape(batch, 4, num_train * cells)
        ltrb_enc = self.box_encoding(ltrb_seq).reshape(batch, channels, num_train, cells).permute(0, 2, 3, 1)
        train_tokens = (train_tokens + ltrb_enc).reshape(batch, num_train * cells, channels)
        test_tokens = test_feat.flatten(2).transpose(1, 2)  # [B, F*F, C]
        if self.use_test_frame_encoding:
            test_tokens = test_tokens + self.query_embed_test.weight
        return torch.cat([train_tokens, test_tokens], dim=1)

    def _predict(self, tokens: torch.Tensor, key_padding_mask: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformer over [R, N, C] token rows -> target models [R, C] and encoded test features [R,C,F,F]."""
        channels, height, width = shape
        pos = self.sequence_pos[:, : tokens.shape[1]]
        decoded, memory = self.transformer(tokens, pos, self.query_embed_fg_decoder.weight, key_padding_mask)
        test_enc = memory[:, -height * width :, :].transpose(1, 2).reshape(tokens.shape[0], channels, height, width)
        return decoded[:, 0, :], test_enc

    def forward(
        self,
        train_feat: torch.Tensor,
        train_label: torch.Tensor,
        train_ltrb: torch.Tensor,
        test_feat: torch.Tensor,
        key_padding_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self._tokens(train_feat, train_label, train_ltrb, test_feat)
        cells = test_feat.shape[2] * test_feat.shape[3]
        cls_filter, cls_feat = self._predict(tokens, key_padding_mask[:, 0], test_feat.shape[1:])
        annotated_and_test = torch.cat([tokens[:, :cells], tokens[:, -cells:]], dim=1)
        bbreg_mask = torch.cat([key_padding_mask[:, 1, :cells], key_padding_mask[:, 1, -cells:]], dim=1)
        bbreg_filter, bbreg_feat = self._predict(annotated_and_test, bbreg_mask, test_feat.shape[1:])
        return cls_filter, bbreg_filter, cls_feat, bbreg_feat

    def predict_batch(self, train_feat, train_label, train_ltrb, test_feat) -> tuple[torch.Tensor, torch.Tensor]:
        """Training form: one stage over all memory frames for each of B sequences, no mask.

        Shapes as in `_tokens`; returns the target models [B, C] and encoded test features [B, C, F, F].
        """
        tokens = self._tokens(train_feat, train_label, train_ltrb, test_feat)
        visible = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self._predict(tokens, visible, test_feat.shape[1:])
