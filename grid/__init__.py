"""The grid: a batch planned into chunk tasks, run serially or on Ray, and reduced into tables."""

from ._batch import Batch, ExecutionSettings, HistorySettings, MarketSettings, RiskSettings, load_batch
from ._executor import Executor, RayExecutor, SerialExecutor, TaskFailure
from ._plan import Task, auto_chunk_size, plan_tasks
from ._reduce import reduce_results
from ._store import TaskStore
from ._summary import FamilyPartial, merge_partials, summarise, tail_metrics
from ._run import (AUTO_POSITION_CELLS, MAX_POSITION_CELLS, RunInputs, RunPlan, RunResult, build_manifest, execute, plan_run,
                   position_table_note, prepare_inputs, reduce_run, run_plan, windows_after, write_outputs)
from ._worker import ChunkResult, Payload, run_chunk
from ._submit import RUN_ENTRYPOINT, StagedBatch, stage_batch, submit_batch
from ._api import Progress, Results, run_batch
from ._sections import SECTIONS, Section, SectionContext, SectionOutput
from ._stream import STREAM_TABLES, not_streamed_because
from ._guards import guard_notes
from ._actors import ActorPool, actor_pool

__all__ = [
    "ActorPool",
    "actor_pool",
    "STREAM_TABLES",
    "not_streamed_because",
    "position_table_note",
    "windows_after",
    "guard_notes",
    "Batch",
    "ChunkResult",
    "ExecutionSettings",
    "Executor",
    "HistorySettings",
    "MarketSettings",
    "Payload",
    "RayExecutor",
    "RiskSettings",
    "RunInputs",
    "RunResult",
    "SerialExecutor",
    "Task",
    "auto_chunk_size",
    "FamilyPartial",
    "TaskFailure",
    "TaskStore",
    "RUN_ENTRYPOINT",
    "AUTO_POSITION_CELLS",
    "MAX_POSITION_CELLS",
    "merge_partials",
    "reduce_results",
    "summarise",
    "tail_metrics",
    "execute",
    "load_batch",
    "plan_tasks",
    "prepare_inputs",
    "run_chunk",
    "write_outputs",
    "StagedBatch",
    "stage_batch",
    "submit_batch",
    "Progress",
    "Results",
    "run_batch",
    "SECTIONS",
    "Section",
    "SectionContext",
    "SectionOutput",
    "RunPlan",
    "build_manifest",
    "plan_run",
    "reduce_run",
    "run_plan",
]
