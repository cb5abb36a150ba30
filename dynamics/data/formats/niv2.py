"""Natural Instructions v2 (SPEC §1.2): one JSON file per task, split files, Study B's prompt.

Local layout (the upstream one, or the flat one of our samples):

    <folder>/tasks/<task>.json          (or <folder>/<task>.json)
    <folder>/splits/default/train_tasks.txt, test_tasks.txt    (or directly in <folder>)

Split files list one task name per line (a leading UTF-8 BOM is ignored); a `valid_tasks.txt` beside them
is read too. Only listed tasks are loaded, split file by split file (train, valid, test), tasks in listing
order, instances in file order, so the result never depends on how the folder lists. A listed task whose
`Instances` is empty is an error when it is a held-out (test or valid) task, as the evaluation would
silently lose it; a training task without instances is left out and reported (`ProblemLog.leave_out`).

Each instance becomes one row: the user turn is Study B's prompt (`build_prompt`), the assistant turn the
first reference, `references` all of the instance's outputs. Sampling (20 per train task, ...) is a later
stage's job: every instance is loaded.

Hub: a name that is not a local path is loaded with `datasets.load_dataset(name, hub_config)` and read in
the flat layout of e.g. "Muennighoff/natural-instructions": one row per instance with `task_name`, `id`,
`definition`, `inputs`, `targets` (a string or a list), split by the hub split (train / validation / test).
That layout has no positive examples or categories, so prompts carry none and `category` is the task.
This path needs network; offline tests cover only its row mapping (through a fake `load_dataset`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dynamics.data.formats import LoadRequest, SourcedRow, checked_row, register_format, require
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.records import read_json_document, read_text_lines
from dynamics.data.schema import SPLITS

# Hub split names -> canonical splits.
HUB_SPLITS = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}


class Niv2Options(BaseModel):
    """How NIV2 task files become prompts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split_dir: str | None = Field(
        None, description="Folder holding <split>_tasks.txt; relative paths are taken from the data folder."
    )
    split_files: dict[str, str] = Field(
        {}, description="Split name -> task-list file, overriding split_dir for that split (relative as above)."
    )
    max_source_tokens: int = Field(
        1024, ge=1, description="Prompt budget (definition + positive examples + input); examples dropped to fit."
    )
    num_positive_examples: int = Field(2, ge=0, description="At most this many positive examples in each prompt.")
    tokenizer: str | None = Field(
        None, description="HF tokenizer name/path to count prompt tokens; null = whitespace words (approximate)."
    )
    reference: Literal["first"] = Field("first", description="Which output is the training target (Study B: first).")

    @field_validator("split_files")
    @classmethod
    def _known_splits(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {', '.join(map(repr, unknown))}; expected one of {', '.join(SPLITS)}")
        return value


def build_prompt(definition: str, examples: Sequence[tuple[str, str]], instance_input: str) -> str:
    """Study B's user turn; every field is stripped (inner whitespace kept), so the separators below are the
    only whitespace added, and no punctuation is added (Tk-Instruct appended a period; we leave text as is).

    "Definition: {definition}\\n\\n", then per example "Positive Example {k} -\\nInput: {input}\\nOutput:
    {output}\\n\\n" (k from 1), then "Now complete the following example -\\nInput: {input}\\nOutput: " (the
    trailing space is kept: the reply follows it).
    """
    parts = [f"Definition: {definition.strip()}\n\n"]
    for k, (example_input, example_output) in enumerate(examples, start=1):
        parts.append(f"Positive Example {k} -\nInput: {example_input.strip()}\nOutput: {example_output.strip()}\n\n")
    parts.append(f"Now complete the following example -\nInput: {instance_input.strip()}\nOutput: ")
    return "".join(parts)


LengthCounter = Callable[[list[str]], list[int]]  # lengths of a batch of texts


def count_words(texts: list[str]) -> list[int]:
    """Whitespace-separated words: a tokenizer-free approximation of the token count."""
    return [len(text.split()) for text in texts]


@functools.lru_cache(maxsize=4)
def tokenizer_counter(name: str) -> LengthCounter:
    """Exact token counts with an HF tokenizer (special tokens such as BOS not counted: the template adds them)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count


def fit_prompts(
    definition: str,
    examples: Sequence[tuple[str, str]],
    inputs: Sequence[str],
    count: LengthCounter,
    budget: int,
) -> list[str]:
    """One prompt per input: examples are added in order while the whole prompt fits `budget`; never cut.

    The first example that does not fit stops the adding. An input too long even without examples keeps
    its full text (and no examples): truncation is the trainer's decision, not the loader's.
    """
    if not inputs:
        return []
    prompts = [build_prompt(definition, [], text) for text in inputs]
    open_ = list(range(len(inputs)))  # inputs whose prompt may still take another example
    # One batched count per example count: a fast tokenizer then works through a whole task at once.
    for k in range(1, len(examples) + 1):
        candidates = [build_prompt(definition, examples[:k], inputs[i]) for i in open_]
        fits = [length <= budget for length in count(candidates)] if candidates else []
        still_open = []
        for index, candidate, fit in zip(open_, candidates, fits, strict=True):
            if fit:
                prompts[index] = candidate
                still_open.append(index)
        open_ = still_open
    return prompts


def _canonical_row(
    request: LoadRequest, instance_id: str, task: str, category: str, split: str, prompt: str, references: list[str]
) -> dict[str, Any]:
    return {
        "id": instance_id,
        "source": request.name,
        "task": task,
        "category": category,
        "split": split,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": references[0]}],
        "references": references,
        "answer": references[0],
        "question_format": 0,
    }


@dataclass(frozen=True)
class _ListedTask:
    name: str
    split: str
    split_file: Path
    line: int


def _resolve(root: Path, given: str) -> Path:
    path = Path(given).expanduser()
    return path if path.is_absolute() else root / path


def _split_files(root: Path, options: Niv2Options) -> dict[str, Path]:
    """Split name -> task-list file: options.split_files, then split_dir, else the folder or splits/default."""
    if options.split_dir is not None:
        folder = _resolve(root, options.split_dir)
        if not folder.is_dir():
            raise DataError(DataProblem(str(folder), "", "", "options.split_dir: no such folder"))
        candidates = [folder]
    else:
        candidates = [root, root / "splits" / "default"]
    found: dict[str, Path] = {}
    for folder in candidates:
        found = {split: folder / f"{split}_tasks.txt" for split in SPLITS if (folder / f"{split}_tasks.txt").is_file()}
        if found:
            break
    for split, given in options.split_files.items():
        path = _resolve(root, given)
        if not path.is_file():
            raise DataError(DataProblem(str(path), "", "", f"options.split_files.{split}: no such file"))
        found[split] = path
    if not found:
        where = " or ".join(str(folder) for folder in candidates)
        raise DataError(
            DataProblem(
                str(root),
                "",
                "",
                f"no train_tasks.txt / test_tasks.txt in {where}; set options.split_dir or options.split_files",
            )
        )
    return {split: found[split] for split in SPLITS if split in found}


def _listed_tasks(split_files: Mapping[str, Path]) -> list[_ListedTask]:
    """Every listed task once; a task listed twice (in one file or two splits) is an error naming both lines."""
    listed: dict[str, _ListedTask] = {}
    for split, path in split_files.items():
        for number, line in enumerate(read_text_lines(path), start=1):
            name = line.strip()
            if not name:
                continue
            first = listed.get(name)
            if first is not None:
                raise DataError(
                    DataProblem(
                        str(path),
                        f"line {number}",
                        "",
                        f"task {name!r} is listed again (first in "
                        f"{first.split_file}: line {first.line}, split '{first.split}')",
                    )
                )
            listed[name] = _ListedTask(name, split, path, number)
    return list(listed.values())


def _task_folder(root: Path) -> Path:
    tasks = root / "tasks"
    return tasks if tasks.is_dir() else root


def _definition(document: Mapping[str, Any], file: str) -> str:
    """The first definition: upstream lists paraphrases of one definition (usually one), and Study B's prompt
    code, like Tk-Instruct's, uses the first."""
    definition = require(document, "Definition", list, file, "")
    if not definition or not all(isinstance(text, str) for text in definition):
        raise DataError(DataProblem(file, "", "Definition", "expected a non-empty list of strings"))
    return definition[0]


def _category(document: Mapping[str, Any], file: str, task: str) -> str:
    """The first of `Categories`; the task name when a file has none."""
    if document.get("Categories") is None:
        return task
    categories = require(document, "Categories", list, file, "")
    if not all(isinstance(name, str) for name in categories):
        raise DataError(DataProblem(file, "", "Categories", "expected a list of strings"))
    return categories[0] if categories and categories[0].strip() else task


def _positive_examples(document: Mapping[str, Any], file: str, limit: int) -> list[tuple[str, str]]:
    """(input, output) of the first `limit` positive examples; only those are checked, as only they are used."""
    if limit == 0 or document.get("Positive Examples") is None:
        return []
    examples = require(document, "Positive Examples", list, file, "")
    pairs = []
    for number, example in enumerate(examples[:limit], start=1):
        where = f"positive example {number}"
        if not isinstance(example, Mapping):
            raise DataError(DataProblem(file, where, "", f"expected an object, got {type(example).__name__}"))
        pairs.append((require(example, "input", str, file, where), require(example, "output", str, file, where)))
    return pairs


def _instance(instance: Any, file: str, where: str) -> tuple[str, str, list[str]]:
    """(id, input, outputs) of one instance, or a DataError naming its field."""
    if not isinstance(instance, Mapping):
        raise DataError(DataProblem(file, where, "", f"expected an object, got {type(instance).__name__}"))
    instance_id = require(instance, "id", str, file, where)
    text = require(instance, "input", str, file, where)
    outputs = require(instance, "output", list, file, where)
    for index, output in enumerate(outputs):
        if not isinstance(output, str):
            raise DataError(DataProblem(file, where, f"output[{index}]", f"expected str, got {type(output).__name__}"))
    if not outputs:
        raise DataError(DataProblem(file, where, "output", "empty list: no reply to train on or score against"))
    if not outputs[0].strip():
        raise DataError(DataProblem(file, where, "output[0]", "empty reference: no reply to train on"))
    return instance_id, text, list(outputs)


def _no_instances(listed: _ListedTask, file: str, log: ProblemLog) -> None:
    """A task with `"Instances": []`: a held-out task must not vanish from the evaluation, so that raises (in
    lenient mode too: it is the file, not a row); a training task is left out and reported."""
    listing = f"listed in {listed.split_file}: line {listed.line}"
    if listed.split != "train":
        message = f"empty list: {listed.split} task {listed.name!r} ({listing}) has no instances to evaluate on"
        raise DataError(DataProblem(file, "", "Instances", message))
    message = f"empty list: training task {listed.name!r} ({listing}) has no instances; left out"
    log.leave_out(DataProblem(file, "", "Instances", message))


def _task_rows(
    listed: _ListedTask, path: Path, request: LoadRequest, count: LengthCounter, log: ProblemLog
) -> Iterator[SourcedRow]:
    options: Niv2Options = request.options  # type: ignore[assignment]
    file = str(path)
    document = read_json_document(path)  # NaN tokens (upstream quirk) parse as float('nan')
    if not isinstance(document, Mapping):
        raise DataError(DataProblem(file, "", "", f"expected a task object, got {type(document).__name__}"))
    definition = _definition(document, file)
    category = _category(document, file, listed.name)
    examples = _positive_examples(document, file, options.num_positive_examples)
    instances = require(document, "Instances", list, file, "")
    if not instances:
        _no_instances(listed, file, log)
        return
    usable = []
    for number, instance in enumerate(instances, start=1):
        where = f"instance {number}"
        try:
            usable.append((where, *_instance(instance, file, where)))
        except DataError as error:
            log.report(error.problem or DataProblem(file, where, "", str(error)))
    prompts = fit_prompts(definition, examples, [text for _, _, text, _ in usable], count, options.max_source_tokens)
    for (where, instance_id, _, outputs), prompt in zip(usable, prompts, strict=True):
        row = _canonical_row(request, instance_id, listed.name, category, listed.split, prompt, outputs)
        if checked_row(row, file, where, log) is not None:
            yield file, where, row


def _load_folder(root: Path, request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options: Niv2Options = request.options  # type: ignore[assignment]
    listed = _listed_tasks(_split_files(root, options))
    folder = _task_folder(root)
    paths = {}
    for task in listed:
        path = folder / f"{task.name}.json"
        if not path.is_file():
            message = f"task {task.name!r} has no task file {path}"
            raise DataError(DataProblem(str(task.split_file), f"line {task.line}", "", message))
        paths[task.name] = path
    count = count_words if options.tokenizer is None else tokenizer_counter(options.tokenizer)
    return [row for task in listed for row in _task_rows(task, paths[task.name], request, count, log)]


def _load_hub(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    import datasets

    try:
        loaded = datasets.load_dataset(request.location, request.hub_config)
    except Exception as error:  # network, missing dataset, bad config: all mean "cannot load this name"
        message = f"not a local folder and not loadable from the hub ({error})"
        raise DataError(DataProblem(request.location, "", "", message)) from None
    rows = []
    for hub_split, dataset in loaded.items():
        file = f"{request.location}[{hub_split}]"
        if hub_split not in HUB_SPLITS:
            raise DataError(DataProblem(file, "", "", f"unknown split; expected one of {', '.join(HUB_SPLITS)}"))
        for number, record in enumerate(dataset, start=1):
            where = f"row {number}"
            try:
                task = require(record, "task_name", str, file, where)
                definition = require(record, "definition", str, file, where)
                text = require(record, "inputs", str, file, where)
                targets = require(record, "targets", (str, list), file, where)
                instance_id = require(record, "id", str, file, where)
            except DataError as error:
                log.report(error.problem or DataProblem(file, where, "", str(error)))
                continue
            references = [targets] if isinstance(targets, str) else list(targets)
            if not references:
                log.report(DataProblem(file, where, "targets", "empty list: no reply to train on or score against"))
                continue
            prompt = build_prompt(definition, [], text)
            row = _canonical_row(request, instance_id, task, task, HUB_SPLITS[hub_split], prompt, references)
            if checked_row(row, file, where, log) is not None:
                rows.append((file, where, row))
    return rows


@register_format("niv2", Niv2Options)
def load_niv2(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    """Canonical rows of a local NIV2 folder or a hub dataset in the flat layout (see the module doc)."""
    path = Path(request.location)
    if path.is_dir():
        return _load_folder(path, request, log)
    if path.exists() or path.is_absolute() or request.location.startswith("."):
        raise DataError(DataProblem(request.location, "", "", "expected an NIV2 folder (tasks/ and split files)"))
    return _load_hub(request, log)
