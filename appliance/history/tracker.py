"""The linked printer's polled state (``printer_state`` events: state, active, progress, file) turned
into job happenings, as printer-realtime-bridge reported them.

:meth:`JobTracker.update` returns, in order, what changed since the last poll:

* ``started``: a job became active (or the file changed while one was: the old job ends first);
* ``state``: the printer's state word changed (``printing`` -> ``paused``);
* ``error``: the new state is an error state;
* ``progress``: progress crossed the next multiple of ``progress_step`` percent (one message for the
  highest crossed step, never a burst);
* ``ended``: the job is not active any more, with its outcome (see :func:`outcome_of`).

An unreachable printer changes nothing. Pure logic: no threads, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from appliance.actions.printers import job_end

ACTIVE_WORDS = ("printing", "paused", "pausing", "resuming")
ERROR_WORDS = ("error",)


@dataclass
class Happening:
    kind: str  # started, state, error, progress, ended
    file: str | None = None
    state: str | None = None
    previous: str | None = None
    progress: float | None = None
    outcome: str | None = None


def outcome_of(last_state: str | None, state: str, progress: float | None, paused_by_layerwatch: bool,
               final_progress: float | None = None) -> str:  # fmt: skip
    """completed (the last or final progress reached ``COMPLETED_PERCENT`` or the server says complete),
    failed (error state), else paused_by_layerwatch (Layerwatch paused it before it ended) or cancelled
    (:func:`appliance.actions.printers.job_end`, the rule the printer link uses too)."""
    outcome, _ = job_end(last_state, state, progress, final_progress)
    if outcome == "cancelled" and paused_by_layerwatch:
        return "paused_by_layerwatch"
    return outcome


@dataclass
class JobTracker:
    progress_step: float = 5.0
    active: bool = False
    file: str | None = None
    state: str | None = None
    progress: float | None = None
    paused_by_layerwatch: bool = False
    _step: int = 0
    _seen: bool = field(default=False, repr=False)

    def update(self, payload: dict[str, Any]) -> list[Happening]:
        state = str(payload.get("state") or "unknown").lower()
        if state == "unreachable":
            return []
        active = bool(payload["active"]) if "active" in payload else state.startswith(ACTIVE_WORDS)
        progress = payload.get("progress")
        progress = float(progress) if isinstance(progress, int | float) else None
        file = payload.get("file") if isinstance(payload.get("file"), str) else None
        out: list[Happening] = []
        previous_state, self.state = self.state, state
        if self._seen and previous_state is not None and state != previous_state:
            out.append(Happening("state", file=file or self.file, state=state, previous=previous_state))
            if any(word in state for word in ERROR_WORDS):
                out.append(Happening("error", file=file or self.file, state=state, previous=previous_state))
        self._seen = True
        if self.active and active and file and self.file and file != self.file:
            out.append(self._end(previous_state, "cancelled-file-change"))
        if self.active and not active:
            out.append(self._end(previous_state, state, final_progress=progress))
        elif active and not self.active:
            self.active, self.file, self.progress = True, file, progress
            self.paused_by_layerwatch = False
            self._step = self._step_of(progress)
            out.append(Happening("started", file=file, state=state, progress=progress))
        elif active:
            self.file = file or self.file
            if progress is not None:
                self.progress = progress
                step = self._step_of(progress)
                if step > self._step:
                    self._step = step
                    out.append(
                        Happening(
                            "progress",
                            file=self.file,
                            state=state,
                            progress=round(step * self.progress_step, 1),
                        )
                    )
        return out

    def _step_of(self, progress: float | None) -> int:
        return 0 if progress is None else math.floor(progress / self.progress_step + 1e-9)

    def _end(self, last_state: str | None, state: str, final_progress: float | None = None) -> Happening:
        if state == "cancelled-file-change":
            outcome = outcome_of(last_state, last_state or "", self.progress, self.paused_by_layerwatch)
        else:
            outcome = outcome_of(last_state, state, self.progress, self.paused_by_layerwatch, final_progress)
        progress = max((p for p in (self.progress, final_progress) if p is not None), default=None)
        happening = Happening("ended", file=self.file, state=state, progress=progress, outcome=outcome)
        self.active, self.file, self.progress, self._step = False, None, None, 0
        return happening
