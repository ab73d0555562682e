"""The console's alert panel: each camera's open alert, what will happen to the print and what did.

An alert stays open (answerable on the page) until it is answered "false alarm", acknowledged, or the
print it was about ends ("print ended unanswered"); a countdown that ran out does not close it. What
the panel says comes from what the other sinks report on the event hub, never from a guess:

* ``printer_countdown`` (:mod:`appliance.actions.printer_control`, emitted before this sink sees the
  alert): the print will be paused or cancelled at ``deadline`` unless someone answers;
* ``printer_countdown_cancelled``: an acknowledge stopped it;
* ``printer_action``: the pause (cancel) was sent (``done``), refused or failed, with the error;
* the relay (``hardware.relay``) has no event: with one configured the plan says what it will do and
  when; it acts unless acknowledged, so after the deadline the panel says it acted.

Without a printer countdown or a relay the plan is ``none``: the page says that nothing will happen to
the print by itself. :meth:`ActiveAlerts.view` is the JSON the page and ``GET /api/status`` get.
"""

from __future__ import annotations

import threading
import time
from typing import Any

CLOSED_REASONS = ("false_alarm", "acknowledged", "print_ended_unanswered", "replaced")


class ActiveAlerts:
    def __init__(self, relay_action: str | None, countdown_s: float):
        self.relay_action = relay_action  # cut_power | pulse_pause | None (no relay)
        self.countdown_s = countdown_s
        self._open: dict[str, dict[str, Any]] = {}  # camera -> the open alert
        self._countdowns: dict[str, dict[str, Any]] = {}  # alert id -> printer_countdown payload
        self._lock = threading.Lock()

    def open(self, camera: str, alert_id: str, score: float | None, cause: str | None,
             telemetry: dict[str, Any] | None = None,
             reason: dict[str, Any] | None = None) -> str | None:  # fmt: skip
        """A new alert of ``camera``; returns the id of an older open alert it replaces, if any."""
        now = time.time()
        with self._lock:
            countdown = self._countdowns.pop(alert_id, None)
            previous = self._open.get(camera)
            plan: dict[str, Any]
            if countdown is not None:
                plan = {"kind": "printer", "action": countdown.get("action"), "phase": "counting",
                        "countdown_s": countdown.get("countdown_s", self.countdown_s),
                        "deadline": now + float(countdown.get("countdown_s", self.countdown_s))}  # fmt: skip
            elif self.relay_action is not None and cause is None:
                plan = {"kind": "relay", "action": self.relay_action, "phase": "counting",
                        "countdown_s": self.countdown_s, "deadline": now + self.countdown_s}  # fmt: skip
            else:
                plan = {"kind": "none", "action": None, "phase": "none"}
            self._open[camera] = {
                "alert": alert_id, "camera": camera, "score": score, "cause": cause, "telemetry": telemetry,
                "reason": reason, "created": round(now, 3),
                "plan": plan, "answer": None, "answer_ids": [], "learner": None,
            }  # fmt: skip
        return previous["alert"] if previous is not None and previous["alert"] != alert_id else None

    def countdown_started(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._countdowns[str(payload.get("alert"))] = dict(payload)
            while len(self._countdowns) > 20:
                self._countdowns.pop(next(iter(self._countdowns)))

    def _printer_plans(self, camera: str | None) -> list[dict[str, Any]]:
        return [
            entry["plan"]
            for name, entry in self._open.items()
            if camera in (None, name) and entry["plan"]["kind"] == "printer"
        ]

    def countdown_cancelled(self, payload: dict[str, Any]) -> None:
        with self._lock:
            for plan in self._printer_plans(payload.get("camera")):
                if plan["phase"] == "counting":
                    plan.update(phase="cancelled", at=round(time.time(), 3))

    def printer_acted(self, payload: dict[str, Any]) -> None:
        """``printer_action``: done / refused / failed, after the countdown or at a person's request."""
        with self._lock:
            for name, entry in self._open.items():
                if payload.get("camera") not in (None, "", name):
                    continue
                plan = entry["plan"]
                plan.update(kind="printer", action=payload.get("action"), phase=str(payload.get("outcome")),
                            at=round(time.time(), 3), error=payload.get("error"),
                            reason=payload.get("reason"))  # fmt: skip

    def answered(self, camera: str, alert_id: str | None, label: str, answer_ids: list[str],
                 learner: dict[str, int] | None) -> None:  # fmt: skip
        with self._lock:
            entry = self._open.get(camera)
            if entry is None or alert_id not in (None, entry["alert"]):
                return
            entry.update(answer="false_alarm" if label == "ok" else "real_failure",
                         answer_ids=list(answer_ids), learner=learner)  # fmt: skip

    def withdrawn(self, camera: str, key: str, learner: dict[str, int] | None) -> None:
        with self._lock:
            entry = self._open.get(camera)
            if entry is not None and (key == entry["alert"] or key in entry["answer_ids"]):
                entry.update(answer=None, answer_ids=[], learner=learner)

    def close(self, camera: str | None) -> list[tuple[str, bool]]:
        """Close the open alerts of ``camera`` (None: every camera); returns (id, answered) of each."""
        with self._lock:
            names = [c for c in self._open if camera in (None, c)]
            closed = [self._open.pop(name) for name in names]
        return [(str(entry["alert"]), entry["answer"] is not None) for entry in closed]

    def alert_of(self, camera: str) -> str | None:
        with self._lock:
            entry = self._open.get(camera)
            return None if entry is None else str(entry["alert"])

    def view(self, camera: str) -> dict[str, Any] | None:
        """The open alert as the page shows it: ``plan.remaining_s`` while counting; a relay whose
        deadline passed has acted (nothing but an acknowledge stops it)."""
        now = time.time()
        with self._lock:
            entry = self._open.get(camera)
            if entry is None:
                return None
            plan = dict(entry["plan"])
            view = {**entry, "plan": plan}
        if plan["phase"] == "counting":
            remaining = max(0.0, plan["deadline"] - now)
            plan["remaining_s"] = round(remaining, 1)
            if plan["kind"] == "relay" and remaining <= 0:
                plan.update(phase="done", at=round(plan["deadline"], 3))
        # the fields the page had before (kept for scripts): alert, countdown_s, remaining_s, deadline
        view["countdown_s"] = plan.get("countdown_s")
        view["remaining_s"] = plan.get("remaining_s")
        view["deadline"] = plan.get("deadline")
        return view
