"""What runs for each endpoint: the applier's own state (nobody else edits it), and its read-only view."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelhost.controller.planner import ExitedInstance, VariantView
from modelhost.controller.preparation import PreparedModel
from modelhost.resources.endpoint import VariantSpec
from modelhost.scheduler.launchers.base import Worker


@dataclass(slots=True)
class VariantRun:
    """One variant's fleet: its prepared model and its healthy workers, oldest first."""

    spec: VariantSpec
    prepared: PreparedModel
    serving: list[Worker] = field(default_factory=list)
    starting: int = 0  # instances being started and health-checked
    next_index: int = 0  # numbers instance logs: <variant>-<n>.log
    failures: int = 0  # consecutive instance failures (exits, failed starts)
    retry_after: float = 0.0  # monotonic time before which no replacement starts
    lost_nodes: set[str] = field(default_factory=set)  # Ray nodes whose loss counted once in `failures` already

    def groups(self) -> list[str]:
        """The SageMaker instances serving, in the order they were started (workers are their model copies)."""
        return list(dict.fromkeys(w.group_id for w in self.serving))

    def workers_of(self, group_ids: set[str]) -> list[Worker]:
        return [w for w in self.serving if w.group_id in group_ids]

    def view(self, exited: tuple[ExitedInstance, ...]) -> VariantView:
        return VariantView(
            instances=tuple(self.groups()),
            starting=self.starting,
            failures=self.failures,
            retry_after=self.retry_after,
            exited=exited,
        )


Fleet = dict[str, VariantRun]  # variant name -> its run
