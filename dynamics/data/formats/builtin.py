"""The `builtin` data source: our generated multi-task data (`dynamics.data.builtin`), no files, no download.

Config:

    data: {source: builtin, options: {per_train_task: 40, per_test_task: 8}}
    data: {source: builtin, options: {per_train_task: 40, synthetic: 2000}}   # with a synthetic pool (Study A)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.builtin import SOURCE, generate_builtin
from dynamics.data.formats import ArrowRows, LoadRequest, register_format
from dynamics.data.problems import ProblemLog


class BuiltinOptions(BaseModel):
    """How many examples the generator writes per task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_train_task: int = Field(40, ge=1, strict=True, description="Examples per training task (36 tasks).")
    per_test_task: int = Field(8, ge=1, strict=True, description="Examples per held-out test task (11 tasks).")
    synthetic: int = Field(
        0, ge=0, strict=True, description="Rows of a synthetic pool (category 'synthetic', Zipf over the train tasks)."
    )


@register_format(SOURCE, BuiltinOptions, disjoint_tasks=True, reads_files=False)
def load_builtin(request: LoadRequest, log: ProblemLog) -> ArrowRows:
    """Every built-in task's rows for the request's seed (held-out tasks by construction)."""
    options = request.options
    assert isinstance(options, BuiltinOptions)
    table = generate_builtin(options.per_train_task, options.per_test_task, request.seed, synthetic=options.synthetic)
    return ArrowRows(table, [(SOURCE, 0)])
