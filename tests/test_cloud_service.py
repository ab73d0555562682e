"""The real service (in process) with the bedrock judge on the local peer: uncertain frames vote as
the judge says. The detector is forced to call every frame ``uncertain`` (threshold 0.5, band 0.5)
and ``uncertain_counts_as_failure`` stays false, so any failure vote can only come from the judge.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.cloud import CloudState
from appliance.config.loader import load_config
from appliance.service.runner import Service
from tests.aws_peers import CloudPeer, assert_no_secrets_logged, bedrock_text, verdict_json, write_credentials
from tests.service_harness import write_config

pytestmark = pytest.mark.usefixtures("shipped_model")

MODEL = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.amazon.nova-lite-v1:0"


@pytest.mark.parametrize("judge_says_failure", [True, False], ids=["judge-failure", "judge-ok"])
def test_uncertain_frames_vote_as_the_judge_says(
    tmp_path: Path, synthetic_clip: Path, caplog: pytest.LogCaptureFixture, judge_says_failure: bool
):
    caplog.set_level(logging.INFO)
    peer = CloudPeer()
    peer.default_converse = bedrock_text(verdict_json(judge_says_failure, 0.9))
    try:
        credentials = write_credentials(
            tmp_path / "credentials", {"layerwatch": ("AKIALAYERWATCH000001", "s" * 40)}, peer
        )
        config_path = write_config(
            tmp_path,
            synthetic_clip,
            interval=0.05,
            extra=(
                "[cameras.decision]\nwindow = 3\nvotes = 2\nverify_frames = 2\nverify_min_agree = 2\n"
                "verify_interval_s = 0\n"
                "[detector]\nthreshold = 0.5\nuncertain_band = 0.5\n"
                '[cloud]\ntype = "bedrock"\n'
                f'[cloud.bedrock]\nendpoint_url = "{peer.url}"\nsts_endpoint_url = "{peer.url}"\n'
                f'credentials_file = "{credentials}"\n'
            ),
        )
        environ = {
            "APP_AWS_PROFILE": "layerwatch",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/layerwatch",
            "INFERENCE_PROFILE_ARN": MODEL,
        }
        service = Service(load_config(config_path, environ), max_frames=8)
        alert_results = []

        class AlertRecorder:
            def on_frame(self, result):
                pass

            def on_transition(self, camera, transition, detail):
                pass

            def on_alert(self, camera, alert, result, evidence_jpeg):
                alert_results.append(result)

        build = service.build

        def build_and_record():
            build()
            service.sinks.append(AlertRecorder())  # the pipelines share this list

        service.build = build_and_record  # type: ignore[method-assign]
        assert service.run() == 0
    finally:
        peer.close()

    (pipeline,) = service.pipelines
    assert pipeline.analysed == 8
    asked = peer.of("converse")
    assert len(asked) == 8 and all(s.signature_ok for s in asked)  # every (uncertain) frame was put to it
    telemetry = service.context.telemetry
    assert telemetry["cloud_calls"] == 8 and telemetry["cloud_verdicts"] == 8
    assert telemetry["cloud_state"] == CloudState.READY
    alerts = tmp_path / "state" / "cameras" / "printer" / "alerts"
    if judge_says_failure:
        assert any(alerts.glob("*.jpg")), "the judge's failure votes must confirm an alert"
        cloud = alert_results[0].cloud  # the alert carries the cloud's own words
        assert cloud is not None and cloud["failure"] is True and cloud["description"]
    else:
        assert not alerts.exists() or not any(alerts.glob("*.jpg"))
    assert_no_secrets_logged(caplog.records, caplog.text, peer.all_secrets())
