"""DoIT, the data of Study A (SPEC §1.2): JSON Lines files, one per ability, grouped in pool folders.

Layout under the root folder (or the hub dataset `ChiyuSONG/dynamics-of-instruction-tuning`):
`curated/{1000,full,valid,test}/<ability>_<suffix>.json` and `synthetic/40960/<name>_<suffix>.json`.
The ability is the file name without its last `_` part (`role_play_valid.json` → `role_play`); synthetic
records carry no ability, so their task and category are `synthetic`.

Each record has `messages` ({role, content}), and in evaluation files `question_format` (0 = generate,
1 = rank `choices` by perplexity, the first one gold), `type` (the scorer's ability) and sometimes `answer`.
Ids are `doit/<pool>/<ability>/<line>`, so they never depend on the order in which files are listed.
A file without records is an error in a valid or test pool (its ability would silently drop out of the
evaluation) and is left out and reported in a training pool.

Config: `data: {source: doit, path: <root or hub name>, options: {pools: [curated/1000, curated/test]}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dynamics.data.formats import LoadRequest, SourcedRow, checked_row, register_format, require
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.records import JSON_SUFFIXES, read_json_records
from dynamics.data.schema import ROLES, SPLITS

SYNTHETIC = "synthetic"
DEFAULT_SPLIT_OF_POOL = {
    "curated/full": "train",
    "curated/1000": "train",
    "synthetic/40960": "train",
    "curated/valid": "valid",
    "curated/test": "test",
}


class DoitOptions(BaseModel):
    """Which DoIT pools to read and the split each one feeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Declared before `pools` so that the `pools` check can see it.
    split_of_pool: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SPLIT_OF_POOL),
        description="Split (train/valid/test) of each pool folder; replaces the default mapping when given.",
    )
    pools: list[str] = Field(
        default_factory=lambda: ["curated/full", "curated/test"],
        min_length=1,
        description="Pool folders to read, relative to the root, e.g. 'curated/1000' or 'synthetic/40960'.",
    )

    @field_validator("split_of_pool")
    @classmethod
    def _known_splits(cls, mapping: dict[str, str]) -> dict[str, str]:
        bad = {pool: split for pool, split in mapping.items() if split not in SPLITS}
        if bad:
            raise ValueError(f"splits must be one of {list(SPLITS)}; got {bad}")
        return mapping

    @field_validator("pools")
    @classmethod
    def _known_pools(cls, pools: list[str], info: ValidationInfo) -> list[str]:
        mapping = info.data.get("split_of_pool")
        if mapping is None:  # split_of_pool itself failed; that error is reported already
            return pools
        unknown = [pool for pool in pools if pool not in mapping]
        if unknown:
            raise ValueError(
                f"unknown pool(s) {unknown}; options.split_of_pool names {sorted(mapping)} "
                "(add a pool there to say which split it feeds)"
            )
        repeated = sorted({pool for pool in pools if pools.count(pool) > 1})
        if repeated:
            raise ValueError(f"pool(s) listed twice: {repeated}")
        return pools


def _root(request: LoadRequest, pools: list[str]) -> Path:
    """The local root folder; a hub name is downloaded first (only the requested pools)."""
    path = Path(request.location)
    if path.exists():
        if not path.is_dir():
            message = "expected the DoIT root folder (holding curated/, synthetic/)"
            raise DataError(DataProblem(str(path), "", "", message))
        return path
    if path.is_absolute() or request.location.startswith(".") or "/" not in request.location:
        raise DataError(DataProblem(request.location, "", "", "no such folder (and not a hub dataset name)"))
    if request.hub_config:
        message = "DoIT has no hub configurations; choose files with options.pools"
        raise DataError(DataProblem(request.location, "", "hub_config", message))
    # Whole files, not `datasets.load_dataset`: the ability lives in each file's name, which a merged
    # dataset would lose. The files are then read by the same line-precise reader as local copies.
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(request.location, repo_type="dataset", allow_patterns=[f"{p}/*" for p in pools])
    except Exception as error:  # offline, unknown repo, auth: all mean "cannot get it"
        message = f"not a local folder and not downloadable from the hub ({error})"
        raise DataError(DataProblem(request.location, "", "", message)) from None
    return Path(local)


def _pool_files(root: Path, pool: str) -> list[Path]:
    folder = root / pool
    if not folder.is_dir():
        raise DataError(DataProblem(str(folder), "", "", f"pool folder {pool!r} (options.pools) not found"))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in JSON_SUFFIXES)
    if not files:
        raise DataError(DataProblem(str(folder), "", "", f"pool folder {pool!r} holds no .json/.jsonl files"))
    return files


def _ability_of(file: Path) -> str:
    ability, _, suffix = file.stem.rpartition("_")
    if not ability or not suffix:
        raise DataError(DataProblem(str(file), "", "", "file name must be <ability>_<suffix>.json"))
    return ability


def _number(where: str) -> int:
    """The number in a record's id: its 1-based line in JSON Lines ("line 7" → 7), its 0-based index in a
    JSON list file ("row 1" → 0, as ids were numbered before places counted from 1; ids must not change)."""
    kind, number = where.split()
    return int(number) - 1 if kind == "row" else int(number)


class _Place:
    """File and line of the record being read, to name problems."""

    def __init__(self, file: Path, where: str):
        self.file, self.where = str(file), where

    def error(self, field: str, message: str) -> DataError:
        return DataError(DataProblem(self.file, self.where, field, message))


def _turns(record: dict[str, Any], place: _Place) -> list[dict[str, str]]:
    messages = require(record, "messages", list, place.file, place.where)
    turns = []
    for index, turn in enumerate(messages):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            got = turn.get("role") if isinstance(turn, dict) else turn
            raise place.error(f"messages[{index}].role", f"expected one of {list(ROLES)}, got {got!r}")
        if not isinstance(turn.get("content"), str):
            raise place.error(f"messages[{index}].content", f"expected a string, got {turn.get('content')!r}")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def _question_format(record: dict[str, Any], place: _Place) -> int:
    value = record.get("question_format")
    if value is None:
        return 0
    if isinstance(value, bool) or value not in (0, 1):
        raise place.error("question_format", f"expected 0 (generate) or 1 (choices), got {value!r}")
    return int(value)


def _choices(record: dict[str, Any], question_format: int, place: _Place) -> list[str] | None:
    choices = record.get("choices")
    if choices is None and question_format == 0:
        return None
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise place.error("choices", f"expected a list of strings, got {choices!r}")
    if question_format == 1 and len(choices) != 3:
        raise place.error("choices", f"question_format 1 needs exactly 3 choices (first gold), got {len(choices)}")
    return choices


def _optional_string(record: dict[str, Any], field: str, place: _Place) -> str | None:
    value = record.get(field)
    if value is not None and not isinstance(value, str):
        raise place.error(field, f"expected a string, got {type(value).__name__}")
    return value


def _canonical(
    record: dict[str, Any], place: _Place, pool: str, split: str, label: str, row_id: str, source: str
) -> dict[str, Any]:
    turns = _turns(record, place)
    question_format = _question_format(record, place)
    choices = _choices(record, question_format, place)
    answer = _optional_string(record, "answer", place) or None
    ability = _optional_string(record, "type", place) or None
    gold = choices[0] if question_format == 1 else answer
    if turns and turns[-1]["role"] == "user":
        # Evaluation prompts may come without their reply; the gold answer stands in for it.
        if split == "train":
            raise place.error("messages", f"ends with a user turn: nothing to train on in train pool {pool!r}")
        if not gold:
            raise place.error(
                "messages", "ends with a user turn and has no 'answer' (or 'choices' when question_format is 1)"
            )
        turns.append({"role": "assistant", "content": gold})
    last_reply = next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), None)
    reference = gold if gold else last_reply
    return {
        "id": row_id,
        "source": source,
        "task": label,
        "category": label,
        "split": split,
        "messages": turns,
        "references": [reference] if reference else [],
        "choices": choices,
        "answer": answer,
        "question_format": question_format,
        "ability": ability,
    }


@register_format("doit", DoitOptions, disjoint_tasks=False)
def load_doit(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options: DoitOptions = request.options  # type: ignore[assignment]
    root = _root(request, options.pools)
    rows: list[SourcedRow] = []
    for pool in options.pools:
        split = options.split_of_pool[pool]
        for file in _pool_files(root, pool):
            ability = _ability_of(file)
            label = SYNTHETIC if pool.split("/")[0] == SYNTHETIC else ability
            records, skipped = 0, len(log.skipped)
            for where, record in read_json_records(file, log):
                records += 1
                place = _Place(file, where)
                row_id = f"doit/{pool}/{ability}/{_number(where):06d}"
                try:
                    row = _canonical(record, place, pool, split, label, row_id, request.name)
                except DataError as error:
                    log.report(error.problem or DataProblem(place.file, where, "", str(error)))
                    continue
                checked = checked_row(row, place.file, where, log)
                if checked is not None:
                    rows.append((place.file, where, checked))
            if records == 0 and len(log.skipped) == skipped:  # empty, not emptied by lenient skips
                _no_records(file, pool, split, ability, log)
    return rows


def _no_records(file: Path, pool: str, split: str, ability: str, log: ProblemLog) -> None:
    """An empty file: an evaluation pool must not lose an ability unnoticed; a training pool reports it."""
    if split != "train":
        message = f"no records: ability {ability!r} would be missing from the {split} pool {pool!r}"
        raise DataError(DataProblem(str(file), "", "", message))
    log.leave_out(DataProblem(str(file), "", "", f"no records: ability {ability!r} of pool {pool!r} left out"))
