"""One camera's labelled frames (its support set) and the learner fitted on them, stored in the state folder.

Every label the camera gets is an :class:`Answer`: its calibration frames (``source = "calibration"``), the
user's "real failure" / "false alarm" on an alert or any recent frame (``"user"``), the cloud judge's verdict
(``"judge"``), a finished or cancelled print (``"print"``). An answer keeps what the learner needs (the
frame's features ``phi`` and prior logit ``s0``, :mod:`appliance.detector.learner`), a 64 x 48 JPEG thumbnail
for review, the time and the frame id it was given for; never the full frame.

**Bounds.** At most ``MAX_PER_CLASS`` answers per label (so the refit stays in milliseconds and the file
small: about 5 kB an answer, under 2 MB a camera). When a label is over its cap the most redundant answer
goes: of the two most alike answers of that label (cosine of ``phi``), the older one, calibration frames
last. The camera's variety is kept; a hundred near-identical frames of one print are not.

**Undo.** :meth:`CameraLearner.withdraw` takes an answer back by its id or by the frame id it was given for;
``layerwatch calibrate --reset`` removes the file (:func:`reset`).

**Storage.** ``<state_dir>/cameras/<name>/learner.npz``, format ``VERSION``, with the model fingerprint:
written atomically after every change (:mod:`appliance.state_files`); a file of another model or format is
ignored with a warning (the embedding space differs), a file that cannot be read is set aside.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.detector.learner import LearnerFit, LearnerParams, fit
from appliance.state_files import atomic_write_bytes, set_aside

logger = logging.getLogger(__name__)

LEARNER_FILE = "learner.npz"
VERSION = 2  # 2: phi is the max-pooled embedding alone (third design); a format-1 file is ignored, said
MAX_PER_CLASS = 120
LABELS = ("ok", "failure")
SOURCES = ("calibration", "user", "judge", "print")


@dataclass(eq=False)
class Answer:
    """One labelled frame of a camera."""

    label: str  # ok | failure
    source: str  # calibration | user | judge | print
    phi: np.ndarray  # (2 D,) features
    s0: float  # the generic model's logit
    frame_id: str = ""
    thumbnail: bytes = b""
    time: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"answer label must be one of {LABELS}, got {self.label!r}")
        if self.source not in SOURCES:
            raise ValueError(f"answer source must be one of {SOURCES}, got {self.source!r}")


def learner_path(state_dir: Path, camera: str) -> Path:
    return state_dir / "cameras" / camera / LEARNER_FILE


class CameraLearner:
    """The camera's support set and its fitted learner; ``score`` is what the detector calls per frame."""

    def __init__(self, camera: str, fingerprint: str, params: LearnerParams | None = None):
        self.camera = camera
        self.fingerprint = fingerprint
        self.params = params or LearnerParams()
        self.answers: list[Answer] = []
        self.model: LearnerFit = LearnerFit(band_logit=self.params.band_logit)

    # -- the support set -------------------------------------------------------------------------------
    def add(self, answers: list[Answer] | Answer, refit: bool = True) -> None:
        """Add answers (a frame answered again replaces its earlier answer), keep the caps, refit."""
        for answer in [answers] if isinstance(answers, Answer) else answers:
            if answer.frame_id:
                self.answers = [a for a in self.answers if a.frame_id != answer.frame_id]
            self.answers.append(answer)
        for label in LABELS:
            self._cap(label)
        if refit:
            self.refit()

    def withdraw(self, key: str) -> int:
        """Take back the answers with this answer id or frame id; returns how many went."""
        before = len(self.answers)
        self.answers = [a for a in self.answers if key not in (a.id, a.frame_id)]
        removed = before - len(self.answers)
        if removed:
            self.refit()
        return removed

    def _cap(self, label: str) -> None:
        while True:
            mine = [i for i, a in enumerate(self.answers) if a.label == label]
            if len(mine) <= MAX_PER_CLASS:
                return
            phi = np.stack([self.answers[i].phi for i in mine]).astype(np.float32)
            phi /= np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-9)
            sims = phi @ phi.T
            np.fill_diagonal(sims, -2.0)
            a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
            first, second = self.answers[mine[a]], self.answers[mine[b]]

            # the older of the two most alike goes; a calibration frame only if both are
            def rank(x: Answer) -> tuple[bool, float]:
                return (x.source == "calibration", x.time)

            drop = first if rank(first) <= rank(second) else second
            self.answers.remove(drop)

    def counts(self) -> dict[str, int]:
        return {label: sum(a.label == label for a in self.answers) for label in LABELS}

    # -- fitting and scoring ---------------------------------------------------------------------------
    def refit(self) -> LearnerFit:
        if not self.answers:
            self.model = LearnerFit(band_logit=self.params.band_logit)
            return self.model
        phi = np.stack([a.phi for a in self.answers]).astype(np.float32)
        s0 = np.array([a.s0 for a in self.answers], np.float64)
        y = np.array([a.label == "failure" for a in self.answers], np.float64)
        self.model = fit(phi, s0, y, self.params)
        logger.debug(
            "camera %s: learner %s on %d answers (%d failure) in %.1f ms",
            self.camera, self.model.mode, self.model.examples, self.model.failures, self.model.refit_ms,
        )  # fmt: skip
        return self.model

    def logit(self, phi: np.ndarray, s0: float) -> float:
        return float(self.model.logit(phi, s0))

    def reason(self, phi: np.ndarray, s0: float) -> dict[str, object]:
        """Why the camera scores a frame as it does, in terms a user can check: the generic model's logit
        (``prior_logit``) and, of each label, the labelled frame it most resembles (``nearest_ok``,
        ``nearest_failure``: the answer's id, source, frame id, time and cosine ``similarity``). Shown on an
        alert; computed only then."""
        out: dict[str, object] = {"prior_logit": round(float(s0), 3), "learner": self.model.mode}
        x = np.asarray(phi, np.float32).reshape(-1)
        x = x / max(float(np.linalg.norm(x)), 1e-9)
        for label in LABELS:
            mine = [a for a in self.answers if a.label == label and a.phi.shape == x.shape]
            if not mine:
                continue
            feats = np.stack([a.phi for a in mine]).astype(np.float32)
            sims = feats @ x / np.maximum(np.linalg.norm(feats, axis=1), 1e-9)
            best = mine[int(np.argmax(sims))]
            out[f"nearest_{label}"] = {
                "answer_id": best.id, "source": best.source, "frame_id": best.frame_id,
                "time": round(best.time, 3), "similarity": round(float(sims.max()), 3),
            }  # fmt: skip
        return out

    def summary(self) -> dict[str, object]:
        return {
            **self.counts(),
            "mode": self.model.mode,
            "band_logit": round(self.model.band_logit, 3),
            "threshold_logit": round(self.model.shift, 3),
            "refit_ms": round(self.model.refit_ms, 2),
        }

    # -- storage ----------------------------------------------------------------------------------------
    def stored_answers(self) -> list[Answer]:
        """The answers the learner file keeps: all but the calibration frames (``calibration.npz`` holds
        those, and ``layerwatch calibrate`` replaces them without touching the answers)."""
        return [a for a in self.answers if a.source != "calibration"]

    def to_bytes(self) -> bytes:
        answers = self.stored_answers()
        thumbs = [a.thumbnail for a in answers]
        offsets = np.cumsum([0, *[len(t) for t in thumbs]]).astype(np.int64)
        dim = answers[0].phi.shape[0] if answers else 0
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            version=np.array(VERSION),
            camera=np.array(self.camera),
            fingerprint=np.array(self.fingerprint),
            ids=np.array([a.id for a in answers], dtype="U32"),
            labels=np.array([a.label for a in answers], dtype="U16"),
            sources=np.array([a.source for a in answers], dtype="U16"),
            frame_ids=np.array([a.frame_id for a in answers], dtype="U64"),
            times=np.array([a.time for a in answers], np.float64),
            s0=np.array([a.s0 for a in answers], np.float32),
            phi=(np.stack([a.phi for a in answers]) if answers else np.zeros((0, dim))).astype(np.float16),
            thumbs=np.frombuffer(b"".join(thumbs), np.uint8),
            thumb_offsets=offsets,
        )
        return buffer.getvalue()

    def save(self, state_dir: Path) -> Path:
        """Write the answers (not the calibration frames) atomically."""
        return atomic_write_bytes(learner_path(state_dir, self.camera), self.to_bytes())

    @classmethod
    def load(
        cls,
        state_dir: Path,
        camera: str,
        fingerprint: str,
        params: LearnerParams | None = None,
        report: Callable[[str], None] | None = None,
        feature_dim: int | None = None,
    ) -> CameraLearner | None:
        """The camera's stored answers (not yet refitted), or None: no file, another model or format
        (warned), or a file that cannot be read (set aside)."""
        path = learner_path(state_dir, camera)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                version, stored = int(npz["version"]), str(npz["fingerprint"])
                if version != VERSION or stored != fingerprint:
                    logger.warning(
                        "camera %s: ignoring %s (format %s, model %s; this is format %s, model %s): "
                        "its answers are kept in the file but not used; calibrate again",
                        camera, path, version, stored, VERSION, fingerprint,
                    )  # fmt: skip
                    return None
                learner = cls(camera, fingerprint, params)
                offsets, blob = npz["thumb_offsets"], npz["thumbs"].tobytes()
                columns = zip(
                    npz["ids"], npz["labels"], npz["sources"], npz["frame_ids"], npz["times"],
                    npz["s0"], npz["phi"], strict=True,
                )  # fmt: skip
                for n, (id_, label, source, frame_id, t, s0, phi) in enumerate(columns):
                    learner.answers.append(
                        Answer(
                            label=str(label),
                            source=str(source),
                            phi=phi.astype(np.float32),
                            s0=float(s0),
                            frame_id=str(frame_id),
                            thumbnail=blob[offsets[n] : offsets[n + 1]],
                            time=float(t),
                            id=str(id_),
                        )
                    )
            dims = {a.phi.shape for a in learner.answers}
            expected = {(feature_dim,)} if feature_dim is not None else {d for d in dims if len(d) == 1}
            if not dims <= expected or len(dims) > 1:  # another model's features, or mis-shaped arrays
                raise ValueError(f"answers' features have shapes {sorted(dims)}, not ({feature_dim},)")
        except Exception as exc:  # any damage: truncated zip, bad CRC, missing or mis-shaped arrays
            moved = set_aside(path, f"cannot read the camera's answers: {exc!r}")
            if report is not None:
                name = moved.name if moved else path.name
                report(f"answers of {camera} unreadable ({type(exc).__name__}); set aside as {name}")
            return None
        return learner


def reset(state_dir: Path, camera: str) -> bool:
    """Forget every answer of the camera (``layerwatch calibrate --reset``); True if there was a file."""
    path = learner_path(state_dir, camera)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
