"""The openai_compatible judge against the local OpenAI-style chat endpoint (tests/aws_peers.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.cloud import CloudJudge, CloudState, build_backend
from appliance.cloud.budget import CallBudget
from appliance.cloud.verdict import SYSTEM_PROMPT, USER_PROMPT
from appliance.config.cloud import CloudConfig
from appliance.detector import Detection, Verdict
from appliance.sources import Frame
from tests.aws_peers import CloudPeer, assert_no_secrets_logged, chat_text, http_error, verdict_json

API_KEY = "sk-or-v1-test-key-0123456789abcdef0123456789abcdef"
UNCERTAIN = Detection(score=0.45, verdict=Verdict.UNCERTAIN)


@pytest.fixture
def peer(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "appliance"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = CloudPeer(api_key=API_KEY)
    yield server
    server.close()
    assert_no_secrets_logged(caplog.records, caplog.text, server.all_secrets())


def make_judge(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> tuple[CloudJudge, dict[str, float]]:
    key_file = tmp_path / "judge_api_key"
    key_file.write_text(API_KEY + "\n")
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    plugin = {"base_url": peer.url + "/v1", "model": "test/vision", "api_key_file": str(key_file)}
    plugin.update(overrides.pop("openai_compatible", {}))
    config = CloudConfig.model_validate(
        {"type": "openai_compatible", "timeout_s": 5.0, "openai_compatible": plugin, **overrides}
    )
    telemetry: dict[str, float] = {}
    budget = CallBudget(config.budget, tmp_path / "budget.json")
    return CloudJudge(config, build_backend(config), budget, telemetry), telemetry


def frame() -> Frame:
    image = np.full((480, 640, 3), 90, np.uint8)
    return Frame(image, time.time(), 0)


def test_chat_request_carries_image_and_prompt_and_the_verdict_is_used(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch
):
    judge, telemetry = make_judge(
        tmp_path, peer, monkeypatch, privacy={"max_side_px": 256}, budget={"usd_per_1k_input_tokens": 0.001}
    )
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    (chat,) = peer.of("chat")
    assert chat.path == "/v1/chat/completions"
    assert chat.headers["Authorization"] == f"Bearer {API_KEY}"
    body = chat.json()
    assert set(body) == {"model", "messages", "max_tokens", "temperature"}  # nothing but frame and prompt
    assert body["model"] == "test/vision" and body["temperature"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"][0] == {"type": "text", "text": USER_PROMPT}
    assert user["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    upload = cv2.imdecode(np.frombuffer(chat.image(), np.uint8), cv2.IMREAD_COLOR)
    assert upload.shape == (192, 256, 3)
    assert telemetry["cloud_spend_usd"] == pytest.approx(0.003 + 0.0009)  # per call + 900 input tokens
    assert telemetry["cloud_agreement"] == 0.0  # score 0.45 leaned ok; the judge said failure

    peer.chat.append(chat_text(f"```json\n{verdict_json(False, 0.8)}\n```"))  # a fenced answer is fine
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is False


@pytest.mark.parametrize(
    "answer",
    [
        chat_text("Looks like a normal print."),
        chat_text(None, refusal="I can't help with that."),
        chat_text("", finish="content_filter"),
        chat_text(verdict_json(True, 0.9, kind="unicorn")),
        chat_text(verdict_json(True, 0.9) + " trailing words"),
        http_error(400, "image_url is not supported by this model"),
    ],
    ids=["prose", "refusal", "content-filter", "unknown-kind", "trailing", "400"],
)
def test_malformed_refused_and_rejected_answers_are_no_verdict(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch, answer: Any
):
    judge, telemetry = make_judge(tmp_path, peer, monkeypatch)
    peer.chat.append(answer)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert telemetry["cloud_no_verdict"] == 1 and telemetry["cloud_failures"] == 0
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_503_are_retried_with_growing_waits(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch, status: int
):
    judge, telemetry = make_judge(
        tmp_path, peer, monkeypatch, openai_compatible={"max_attempts": 4, "backoff_base_s": 0.1}
    )
    judge.backend.jitter = lambda: 1.0  # type: ignore[attr-defined]  # the cap itself: 0.1, 0.2, 0.4 s
    peer.chat.extend([http_error(status, "slow down", retry_after="0" if status == 429 else None)] * 3)
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    waits = np.diff([s.at for s in peer.of("chat")])
    assert len(waits) == 3
    assert waits[0] >= 0.09 and waits[1] > 1.4 * waits[0] and waits[2] > 1.4 * waits[1], waits
    assert telemetry["cloud_failures"] == 0


def test_retries_stop_at_the_deadline(tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch):
    judge, telemetry = make_judge(
        tmp_path,
        peer,
        monkeypatch,
        timeout_s=0.5,
        openai_compatible={"max_attempts": 10, "backoff_base_s": 0.2},
    )
    judge.backend.jitter = lambda: 1.0  # type: ignore[attr-defined]
    peer.default_chat = http_error(503)
    started = time.monotonic()
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert time.monotonic() - started < 0.8
    time.sleep(0.3)  # the worker gives up on its own: no wait would end before the deadline
    assert len(peer.of("chat")) <= 3 and telemetry["cloud_failures"] == 1


def test_a_refused_api_key_is_reported_not_retried(
    tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch
):
    judge, telemetry = make_judge(tmp_path, peer, monkeypatch)
    peer.api_key = "sk-or-v1-another-key-that-the-peer-now-wants"
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert len(peer.of("chat")) == 1
    assert telemetry["cloud_state"] == CloudState.CREDENTIALS and telemetry["cloud_skipped"] == 1


def test_budget_stops_calls_when_spent(tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch):
    judge, telemetry = make_judge(tmp_path, peer, monkeypatch, budget={"calls_per_day": 1})
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is True
    assert judge.judge("printer", frame(), UNCERTAIN, "uncertain") is None
    assert len(peer.of("chat")) == 1 and telemetry["cloud_state"] == CloudState.OVER_BUDGET


def test_api_key_from_the_environment(tmp_path: Path, peer: CloudPeer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAYERWATCH_TEST_JUDGE_KEY", API_KEY)
    config = CloudConfig.model_validate(
        {
            "type": "openai_compatible",
            "openai_compatible": {"base_url": peer.url + "/v1", "api_key_env": "LAYERWATCH_TEST_JUDGE_KEY"},
        }
    )
    judge = CloudJudge(config, build_backend(config), CallBudget(config.budget, None), {})
    assert judge.judge("printer", frame(), UNCERTAIN, "burst") is True
    assert peer.of("chat")[0].json()["model"] == "google/gemini-2.5-flash"  # the bridge's default
