"""Reward models for Study B's reward-model score: any Hugging Face reward model, and a tiny one built from config.

Two layouts load through one path. A sequence-classification model with one label (what most published reward
models are) scores with its own pooling; UltraRM-13b, Study B's reward model, is a LLaMA body saved under
`model.*` with a bias-free value head `regression_head.weight` read at the last non-pad token, a class that
transformers does not ship, so `LlamaRewardModel` gives it one. Both score the text
"Human: {prompt}\\n\\nAssistant: {response}" with the raw prompt (SPEC §4), never the training template.
The planning step checks a configured source (`check_reward_model_source`) before any training starts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from huggingface_hub import is_offline_mode, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.integrations import deepspeed as hf_deepspeed
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from dynamics.config import BuiltinModelConfig, RewardModelConfig
from dynamics.io import cache_key, folder_damage, move_aside, temporary_sibling, write_manifest
from dynamics.models import builtin_llama_config, builtin_tokenizer

REWARD_SEED = 4321
TINY_REWARD_MODEL_VERSION = 1  # bump when the same sizes and seed would build other weights
CONFIG_KEY = "evaluate.reward_model.pretrained"
LAYOUTS = (
    "a sequence-classification reward model (architectures ending in 'ForSequenceClassification', one label)",
    "UltraRM's layout (architectures ['LlamaRewardModel']: a LLaMA body under model.*, value head regression_head)",
)
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")

Layout = Literal["classification", "ultrarm"]


class RewardModelError(ValueError):
    """A reward model that cannot be found or loaded, or is of a layout we cannot score with."""


class LlamaRewardModel(PreTrainedModel):
    """UltraRM's layout: a LLaMA-family body and a linear value head (hidden → 1) on each row's last non-pad token.

    Its weights are named as UltraRM saves them (`model.*`, `regression_head.weight`), so `from_pretrained` loads
    openbmb/UltraRM-13b as is and `save_pretrained` writes the same layout. The body comes from `AutoModel`, so a
    config of another LLaMA-family type (Mistral, Qwen2, …) gets its own body.
    """

    config_class = LlamaConfig
    base_model_prefix = "model"
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: PreTrainedConfig) -> None:
        super().__init__(config)
        self.model = AutoModel.from_config(config)
        self.regression_head = nn.Linear(config.hidden_size, 1, bias=False)
        self.post_init()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: object
    ) -> SequenceClassifierOutputWithPast:
        """Rewards as `logits` of shape (B, 1), the shape a one-label sequence classifier returns."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        # (B,) position of each row's last 1 in the mask: the first maximum of its running sum (any padding side).
        last = attention_mask.cumsum(dim=1).argmax(dim=1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, d)
        return SequenceClassifierOutputWithPast(logits=self.regression_head(pooled))  # (B, 1)


class RewardModel(NamedTuple):
    """A loaded reward model and the tokenizer it reads, padding agreed between them."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def reward_input(prompt: str, response: str) -> str:
    """The text a reward model scores: the raw prompt (not the training template) and the response."""
    return f"Human: {prompt}\n\nAssistant: {response}"


def _layout(source: str, architectures: Sequence[str] | None, num_labels: int) -> Layout:
    """Which of the two layouts a config describes; anything else is an error naming what was found."""
    found = list(architectures or [])
    if found == [LlamaRewardModel.__name__]:
        return "ultrarm"
    if len(found) == 1 and found[0].endswith("ForSequenceClassification"):
        if num_labels != 1:
            raise RewardModelError(
                f"reward model {source}: {found[0]} has {num_labels} labels; a reward model gives one score "
                "(num_labels 1)"
            )
        return "classification"
    raise RewardModelError(
        f"reward model {source}: config.json lists architectures {found or 'none'}; supported are {LAYOUTS[0]} "
        f"and {LAYOUTS[1]}"
    )


# --- checking a source before any training --------------------------------------------------------------------


def _looks_local(source: str) -> bool:
    """A path rather than a hub name: absolute, relative by `.`/`~`, not a valid hub id, or under a folder that
    exists here (`models/rm` where `models/` does)."""
    if source.startswith(("/", ".", "~")):
        return True
    try:
        validate_repo_id(source)
    except HFValidationError:
        return True
    return Path(source.split("/", 1)[0]).exists()


def _check_folder(source: str, folder: Path) -> None:
    """A saved model's folder: its config names a supported layout and some weight file is beside it."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise RewardModelError(
            f"{CONFIG_KEY}: {source} is a folder without config.json: expected a saved Hugging Face model "
            "(the files save_pretrained writes)"
        )
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RewardModelError(f"{CONFIG_KEY}: {config_file} is unreadable ({error})") from None
    num_labels = len(raw["id2label"]) if raw.get("id2label") else raw.get("num_labels") or 2  # transformers' rule
    _layout(source, raw.get("architectures"), num_labels)
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise RewardModelError(
            f"{CONFIG_KEY}: {source} has config.json but no weights (no {', '.join(WEIGHT_FILES)} in {folder})"
        )


def check_reward_model_source(source: str) -> None:
    """Fail before any training when `source` (a folder or hub name) cannot be loaded as a reward model here.

    Reads config.json only, never weights. A hub name is checked against the local cache when offline; online,
    the download at load time decides.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        _check_folder(source, folder)
        return
    if folder.exists():
        raise RewardModelError(f"{CONFIG_KEY}: {source} is a file; expected a model folder or a hub name")
    if _looks_local(source):
        raise RewardModelError(
            f"{CONFIG_KEY}: no such folder {source} (resolved to {folder.resolve()}); set {CONFIG_KEY} to a saved "
            "reward model's folder or a hub name, or evaluate.reward_model.builtin for a tiny one"
        )
    if not is_offline_mode():
        return
    cached = try_to_load_from_cache(source, "config.json")
    if not isinstance(cached, str):
        raise RewardModelError(
            f"{CONFIG_KEY}: {source} is not available offline: HF_HUB_OFFLINE is set and it is not in the local "
            "Hugging Face cache; download it first or point to a local folder"
        )
    _check_folder(source, Path(cached).parent)


# --- loading and scoring ----------------------------------------------------------------------------------------


@contextmanager
def _whole_model() -> Iterator[None]:
    """Load unpartitioned even in a ZeRO-3 training worker.

    While an `HfDeepSpeedConfig` of stage 3 is alive (the worker keeps one for its policy model), every
    `from_pretrained` partitions the new model's weights across ranks, and a model no DeepSpeed engine owns
    cannot gather them back for its forward pass. transformers reads the setting through a weak reference only.
    """
    reference = hf_deepspeed._hf_deepspeed_config_weak_ref
    live = reference() if reference is not None else None
    if live is None or not live.is_zero3():
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(live)


def _agree_on_padding(source: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """One pad token for both: a sequence classifier pools at the last token that is not `config.pad_token_id`
    (and refuses batches without one), so the tokenizer must pad with exactly that id."""
    config = model.config.get_text_config()
    if config.pad_token_id is not None:
        if tokenizer.pad_token_id != config.pad_token_id:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)
        return
    if tokenizer.pad_token is None:
        # UNK before EOS: a classifier would take a trailing EOS the tokenizer appends for padding, and pool before it.
        fallback = tokenizer.unk_token or tokenizer.eos_token
        if fallback is None:
            raise RewardModelError(f"reward model {source}: its tokenizer has no pad, unk or eos token to pad with")
        tokenizer.pad_token = fallback
    config.pad_token_id = tokenizer.pad_token_id


def load_reward_model(
    source: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> RewardModel:
    """Load a reward model of either layout and its tokenizer by folder or hub name, in eval mode on `device`."""
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise RewardModelError(f"reward model {source}: cannot read its config ({error})") from error
    layout = _layout(source, config.architectures, config.num_labels)
    model_class = LlamaRewardModel if layout == "ultrarm" else AutoModelForSequenceClassification
    with _whole_model():
        model = model_class.from_pretrained(source, config=config, dtype=dtype)
    model.config.get_text_config().use_cache = False  # one forward per batch: a KV cache is only memory
    tokenizer = AutoTokenizer.from_pretrained(source)
    _agree_on_padding(source, model, tokenizer)
    return RewardModel(model.to(device).eval(), tokenizer)


class RewardScorer:
    """Scores (prompt, response) pairs in batches; batched scores equal one-at-a-time ones.

    Texts are sorted by length so a batch holds similar lengths (little padding) and padded on the right with an
    attention mask; one longer than `max_length` (capped at the model's positions) loses its start, since the
    response at its end is what is scored. The scorer sets its tokenizer's padding and truncation sides.
    """

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int, max_length: int = 1024
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        positions = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.max_length = min(max_length, positions) if positions else max_length
        tokenizer.padding_side, tokenizer.truncation_side = "right", "left"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One float per pair, in the order given."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts and {len(responses)} responses: expected one response each")
        texts = [reward_input(prompt, response) for prompt, response in zip(prompts, responses, strict=True)]
        if not texts:
            return []
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda index: len(encoded[index]), reverse=True)
        scores = [0.0] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [encoded[row] for row in rows]}, return_tensors="pt")
                logits = self.model(
                    input_ids=batch["input_ids"].to(self.model.device),
                    attention_mask=batch["attention_mask"].to(self.model.device),
                ).logits  # (b, 1)
                for row, value in zip(rows, logits[:, 0].float().tolist(), strict=True):
                    scores[row] = value
        return scores


# --- a tiny reward model built from config ----------------------------------------------------------------------


def build_tiny_reward_model(config: BuiltinModelConfig, vocab_size: int, seed: int = REWARD_SEED) -> LlamaRewardModel:
    """A randomly initialised reward model of UltraRM's layout with the built-in LLaMA's sizes; seeded."""
    llama_config = builtin_llama_config(config, vocab_size)
    torch.manual_seed(seed)
    return LlamaRewardModel(llama_config)


def _write_reward_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """The files `from_pretrained` reads, on any rank (as `dynamics.models._write_pretrained`, whose docstring says
    why not `save_pretrained`), less the generation config a model that does not generate lacks."""
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    save_file(model.state_dict(), str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)


def save_tiny_reward_model(config: BuiltinModelConfig, folder: Path, seed: int = REWARD_SEED) -> str:
    """Save a tiny reward model and the built-in tokenizer at `folder` (once; an intact one is reused), return it.

    A damaged folder (cut-short copy, disk error) is moved aside and rebuilt, never handed to `from_pretrained`.
    """
    if folder.exists():
        damage = folder_damage(folder)
        if damage is None:
            return str(folder)
        move_aside(folder, damage.problem)
    tokenizer = builtin_tokenizer()
    model = build_tiny_reward_model(config, vocab_size=len(tokenizer), seed=seed)
    # Written beside and renamed into place, so workers saving the same model at once never see half a folder.
    partial = temporary_sibling(folder)
    partial.mkdir(parents=True)
    _write_reward_model(model, tokenizer, partial)
    write_manifest(partial)
    try:
        partial.rename(folder)
    except OSError:  # another process got there first with the same weights
        shutil.rmtree(partial, ignore_errors=True)
    return str(folder)


def _tiny_fingerprint(config: BuiltinModelConfig, seed: int) -> str:
    """Key of a saved tiny reward model: its sizes and seed decide its weights."""
    return cache_key("tiny-reward-model", TINY_REWARD_MODEL_VERSION, {"config": config.model_dump(), "seed": seed})


def materialise_reward_model(config: RewardModelConfig, workdir: Path) -> str:
    """Where workers load `evaluate.reward_model` from: a tiny one saved under `workdir/models` (once), or the
    configured folder or hub name as is."""
    if config.pretrained is not None:
        return config.pretrained
    assert config.builtin is not None
    folder = workdir / "models" / f"reward-{_tiny_fingerprint(config.builtin, REWARD_SEED)}"
    return save_tiny_reward_model(config.builtin, folder)


def reward_model_on_this_node(source: str, config: RewardModelConfig) -> str:
    """`source`, or for a tiny reward model whose folder this machine cannot see (another node of a cluster),
    the same model rebuilt under the node's temporary directory: same sizes and seed, so the same weights."""
    if config.builtin is None or Path(source).is_dir():
        return source
    folder = Path(tempfile.gettempdir()) / "dynamics-models" / Path(source).name
    return save_tiny_reward_model(config.builtin, folder)


def reward_scorer(
    source: str | None, settings: RewardModelConfig | None, dtype: torch.dtype, device: torch.device
) -> RewardScorer | None:
    """The scorer of the `reward` metric where one is configured (None otherwise): `source` as the driver
    materialised it, a tiny one rebuilt here if this node cannot see its folder."""
    if source is None or settings is None:
        return None
    loaded = load_reward_model(reward_model_on_this_node(source, settings), dtype=dtype, device=device)
    return RewardScorer(loaded.model, loaded.tokenizer, settings.batch_size, settings.max_length)
