"""Model and tokenizer factory: tiny built-in LLaMAs and real Hugging Face models through one path.

A built-in model is built from config with a fixed seed and saved with `save_pretrained`; every worker then
loads it with `from_pretrained`, exactly as it would load `meta-llama/Llama-2-7b-hf`. Nothing downloads.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    ByT5Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from dynamics.config import BuiltinModelConfig, ModelConfig
from dynamics.io import cache_key, folder_damage, move_aside, temporary_sibling, write_manifest
from dynamics.text.templates import STUDY_A_ROLE_TOKENS, TEMPLATES

BUILTIN_SEED = 1234
BUILTIN_MODEL_VERSION = 2  # bump when the same sizes and seed would build other weights


@dataclass(frozen=True)
class ModelSource:
    """Where workers load a model and its tokenizer from (a local folder or a hub name).

    A built-in model also carries its sizes, so a node that cannot see the driver's folder rebuilds the
    same weights locally (`on_this_node`).
    """

    model: str
    tokenizer: str
    num_parameters: int | None = None
    builtin: BuiltinModelConfig | None = None


def builtin_tokenizer() -> PreTrainedTokenizerBase:
    """Byte-level tokenizer that needs no files; BOS and Study A's role tokens added as special tokens."""
    tokenizer = ByT5Tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<s>", "additional_special_tokens": list(STUDY_A_ROLE_TOKENS)})
    return tokenizer


def builtin_llama_config(config: BuiltinModelConfig, vocab_size: int) -> LlamaConfig:
    """The LLaMA config of a built-in model's sizes (policy and reward models alike)."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def build_builtin_model(config: BuiltinModelConfig, vocab_size: int, seed: int = BUILTIN_SEED) -> LlamaForCausalLM:
    """A randomly initialised LLaMA of the given sizes; the seed makes the weights reproducible."""
    llama_config = builtin_llama_config(config, vocab_size)
    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config)


def _builtin_fingerprint(config: BuiltinModelConfig, seed: int) -> str:
    """Key of a saved built-in model: its sizes and seed decide its weights."""
    return cache_key("builtin-model", BUILTIN_MODEL_VERSION, {"config": config.model_dump(), "seed": seed})


def materialise(key: str, config: ModelConfig, workdir: Path) -> ModelSource:
    """Save a built-in model and tokenizer under `workdir/models` (once) or pass a pretrained name through."""
    if config.pretrained is not None:
        return ModelSource(model=config.pretrained, tokenizer=config.tokenizer or config.pretrained)
    assert config.builtin is not None
    folder = workdir / "models" / f"{key}-{_builtin_fingerprint(config.builtin, BUILTIN_SEED)}"
    return _saved_builtin(config.builtin, folder)


def _write_pretrained(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """The files `from_pretrained` reads (config, generation config, safetensors weights, tokenizer), on any rank.

    `save_pretrained` writes weights and config only on rank 0 once torch.distributed is initialised, as it is
    in a training worker: a node whose first worker to get here is another rank would publish a folder with a
    tokenizer and no model. These library calls write the same files whatever the rank.
    """
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_file(model.state_dict(), str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)


def _saved_builtin(config: BuiltinModelConfig, folder: Path) -> ModelSource:
    marker = folder / "num_parameters.txt"
    if folder.exists():
        damage = folder_damage(folder)
        if damage is not None:  # a cut-short copy or a disk error: rebuilt, never handed to from_pretrained
            move_aside(folder, damage.problem)
    if not marker.exists():
        tokenizer = builtin_tokenizer()
        model = build_builtin_model(config, vocab_size=len(tokenizer))
        # Written beside and renamed into place, so workers saving the same model at once never see half a folder.
        partial = temporary_sibling(folder)
        partial.mkdir(parents=True)
        _write_pretrained(model, tokenizer, partial)
        (partial / marker.name).write_text(str(model.num_parameters()))
        write_manifest(partial)
        try:
            partial.rename(folder)
        except OSError:  # another process got there first with the same weights
            shutil.rmtree(partial, ignore_errors=True)
    return ModelSource(str(folder), str(folder), int(marker.read_text()), builtin=config)


def on_this_node(source: ModelSource) -> ModelSource:
    """`source`, or for a built-in model whose folder this machine cannot see (another node of a cluster),
    the same model rebuilt under the node's temporary directory: same sizes and seed, so the same weights."""
    if source.builtin is None or Path(source.model).is_dir():
        return source
    folder = Path(tempfile.gettempdir()) / "dynamics-models" / Path(source.model).name
    return _saved_builtin(source.builtin, folder)


class TokenizerUnfit(ValueError):
    """A tokenizer lacks a token its chat template cannot do without."""


def load_tokenizer(source: str, template_name: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer by name or path and give it what the template needs (pad, added tokens); a template
    that ends replies with the tokenizer's EOS cannot work with a tokenizer that has none (WordPiece ones)."""
    template = TEMPLATES.get(template_name)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if template.reply_end is None and tokenizer.eos_token is None:
        raise TokenizerUnfit(
            f"tokenizer {source}: template {template_name!r} ends every reply with the tokenizer's EOS token, and "
            "this tokenizer has none (eos_token is None): use a tokenizer with an EOS token, or the study_a "
            "template, which adds its own end marker"
        )
    missing = [token for token in template.added_tokens if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.pad_token is None:
        # Padding is masked out of attention and loss, so any token serves; EOS when there is one.
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return tokenizer


def load_model(source: str, tokenizer: PreTrainedTokenizerBase, dtype: torch.dtype) -> PreTrainedModel:
    """Load a causal LM by name or path; grow its embeddings if the tokenizer gained tokens."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return model
