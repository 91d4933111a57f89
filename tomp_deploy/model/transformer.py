"""DETR-style post-norm Transformer of ToMP's model predictor, batch-first, with key padding masks.

Parameter names and shapes follow the reference implementation (which uses `nn.MultiheadAttention`),
so its checkpoints load unchanged. Attention is `scaled_dot_product_attention` with an additive
0/-inf key bias rather than `nn.MultiheadAttention`: PyTorch runs it as a fused kernel, the exported
graph is plain MatMul/Add/Softmax (parsed by every TensorRT 10 release; the scale is applied to q and k
before their product, which keeps FP16 logits in range), and a hidden key gets exactly zero weight.

In a reduced-precision model the softmax and the LayerNorms run in FP32 (islands): softmax turns small
logit errors into weight errors and LayerNorm's statistics accumulate over the whole embedding. Eager
PyTorch gets the softmax island from its fused fp16 attention kernels, which keep it in FP32 inside;
an export writes it out explicitly, so that the ONNX graph (and every engine built from it) has it too.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiheadAttention(nn.Module):
    """Multi-head attention with the parameter layout of `nn.MultiheadAttention` (packed in-projection)."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query [B,Lq,E], key/value [B,Lk,E], key_bias [B,1,1,Lk]: 0 for a visible key, -inf for a
        hidden one (see `key_padding_bias`)."""
        e = self.embed_dim
        w_q, w_k, w_v = self.in_proj_weight[:e], self.in_proj_weight[e : 2 * e], self.in_proj_weight[2 * e :]
        b_q, b_k, b_v = self.in_proj_bias[:e], self.in_proj_bias[e : 2 * e], self.in_proj_bias[2 * e :]
        q = self._split_heads(F.linear(query, w_q, b_q))
        k = self._split_heads(F.linear(key, w_k, b_k))
        v = self._split_heads(F.linear(value, w_v, b_v))
        if q.dtype != torch.float32 and torch.compiler.is_exporting():
            attended = _attention_with_fp32_softmax(q, k, v, key_bias)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
        batch, _, length, _ = attended.shape
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, self.embed_dim))


def _attention_with_fp32_softmax(q, k, v, key_bias):
    """Attention as the exporter writes SDPA (scale split between q and k), with the softmax in FP32."""
    scale = q.shape[-1] ** -0.25
    logits = (q * scale) @ (k * scale).transpose(-2, -1)
    if key_bias is not None:
        logits = logits.float() + key_bias.float()
    return torch.softmax(logits.float(), dim=-1).to(v.dtype) @ v


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` computed in FP32 whatever the model's precision (an FP32 island in FP16 graphs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


def key_padding_bias(key_padding_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """bool [B,N] (True hides the key) -> additive attention bias [B,1,1,N] of 0 / -inf.

    Computed once per call and broadcast-added to the logits of every layer: a hidden key gets exactly
    zero weight, and an addition is much cheaper than a masked select over [B,heads,N,N] logits.
    `dtype` is the attention's: a bias of the query's dtype keeps the fused fp16/bf16 kernels eligible.
    """
    zeros = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    return zeros.masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        src = self.norm1(src + self.self_attn(q, k, src, key_bias))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads)
        self.multihead_attn = MultiheadAttention(d_model, num_heads)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
        key_bias: torch.Tensor,
    ) -> torch.Tensor:
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, tgt))
        cross = self.multihead_attn(tgt + query_pos, memory + pos, memory, key_bias)
        tgt = self.norm2(tgt + cross)
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class TransformerEncoder(nn.Module):
    def __init__(self, layer: EncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos, key_bias)
        return src


class TransformerDecoder(nn.Module):
    def __init__(self, layer: DecoderLayer, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = LayerNorm(d_model)

    def forward(self, tgt, memory, pos, query_pos, key_bias):
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos, key_bias)
        return self.norm(tgt)


class Transformer(nn.Module):
    """Encoder over all tokens, decoder with the given queries; both see the same key padding mask."""

    def __init__(self, d_model: int, num_heads: int, num_encoder_layers: int, num_decoder_layers: int, dim_feedforward: int):
        super().__init__()
        self.d_model = d_model
        self.encoder = TransformerEncoder(EncoderLayer(d_model, num_heads, dim_feedforward), num_encoder_layers)
        self.decoder = TransformerDecoder(DecoderLayer(d_model, num_heads, dim_feedforward), num_decoder_layers, d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src, pos, query_embed, key_padding_mask):
        """src/pos [B,N,E], query_embed [Q,E], mask [B,N] -> (decoder output [B,Q,E], encoder memory [B,N,E])."""
        query_pos = query_embed.unsqueeze(0).expand(src.shape[0], -1, -1)
        key_bias = key_padding_bias(key_padding_mask, src.dtype)
        memory = self.encoder(src, pos, key_bias)
        decoded = self.decoder(torch.zeros_like(query_pos), memory, pos, query_pos, key_bias)
        return decoded, memory


def sine_position_encoding(feature_size: int, channels: int) -> torch.Tensor:
    """ToMP's positional encoding of an F x F frame, [channels, F, F].

    Cell (y, x) has normalised coordinates ((x+0.5)/F, (y+0.5)/F); with `depth = channels/4` linear
    frequencies `i * F/depth * pi` (i = 1..depth) the channels are sin of every frequency applied to
    (x, y) interleaved, then cos likewise (the reference's 'lin_sine' with anti-aliasing).
    """
    depth = channels // 4
    eps = 1e-6
    coords = (torch.arange(1, feature_size + 1, dtype=torch.float32) - 0.5) / (feature_size + eps)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    xy = torch.stack([x, y], dim=-1)  # [F, F, 2]
    factor = feature_size / depth
    freqs = torch.arange(1, depth + 1, dtype=torch.float32) * factor * math.pi
    angles = (xy[..., None, :] * freqs[:, None]).reshape(feature_size, feature_size, 2 * depth)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).permute(2, 0, 1).contiguous()
