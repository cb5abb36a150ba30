"""The sizes of a tiny LLaMA built from config: the offline models, policy and reward alike, need no download."""

from __future__ import annotations

from pydantic import Field, model_validator

from dynamics.config.base import Section


class BuiltinModelConfig(Section):
    """A tiny LLaMA built from config (no download)."""

    hidden_size: int = Field(..., ge=8, description="Width of the residual stream.")
    intermediate_size: int = Field(..., ge=8, description="Width of each MLP's hidden layer.")
    num_hidden_layers: int = Field(..., ge=1, description="Transformer blocks.")
    num_attention_heads: int = Field(..., ge=1, description="Attention heads per block (divides hidden_size).")
    max_position_embeddings: int = Field(512, ge=16, description="Longest sequence the rotary positions cover.")

    @model_validator(mode="after")
    def _heads_divide(self) -> BuiltinModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self
