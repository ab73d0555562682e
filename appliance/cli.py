"""The ``layerwatch`` command.

Subcommands: ``run`` (the service), ``demo`` (the service on the bundled clip), ``check-config``,
``calibrate``, ``test`` (analyse one frame and exit; also ``TEST_MODE=true layerwatch run``; with
``--hardware`` only the GPIO parts, once each: :mod:`appliance.hardware.walk`),
``bench`` (speed and memory figures), ``eval`` (accuracy on a manifest of labelled frames), ``fan``
(the fan service) and ``status-light`` (the LED code for "unconfigured" / "config_error").

Exit codes: 0 success, 1 runtime failure, 2 usage error, 78 invalid configuration (EX_CONFIG).
"""

from __future__ import annotations

import os

# One BLAS thread: the per-frame matrix products are small, and extra BLAS threads only fight the
# inference thread for the Pi's cores (measured: 10x slower scoring under load). Must be set
# before numpy is first imported.
for _blas_threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas_threads, "1")

import argparse
import json
import logging
import sys
from pathlib import Path

from appliance import __version__
from appliance.config import EX_CONFIG, LayerwatchConfig, load_config
from appliance.config.error_text import mask
from appliance.config.model import DetectorConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.errors import ConfigError, LayerwatchError
from appliance.service.logging_setup import setup_logging

logger = logging.getLogger("appliance.cli")


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None,
        help="TOML file (default: $LAYERWATCH_CONFIG or /etc/layerwatch/layerwatch.toml)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerwatch", description="Watch a 3D printer; stop failed prints.")
    parser.add_argument("--version", action="version", version=f"layerwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service")
    _add_config_arg(run)
    run.add_argument("--print-decisions", action="store_true", help="print one line per analysed frame")
    run.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="run on the bundled replay clip with the shipped model")
    demo.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="clip frames per second (0: as fast as possible; 1: a minute)",
    )
    demo.add_argument("--loop", action="store_true", help="play the clip again and again until Ctrl-C")
    demo.add_argument(
        "--port", type=int, default=8080, help="the console's port on 127.0.0.1 (0: no console)"
    )

    check = sub.add_parser("check-config", help="validate the configuration and exit (78 if invalid)")
    _add_config_arg(check)
    check.add_argument("--schema", action="store_true", help="print the JSON schema of the config file")

    calibrate = sub.add_parser("calibrate", help="learn a camera's normal look (and failures)")
    _add_config_arg(calibrate)
    calibrate.add_argument("--camera", help="camera name (default: the first)")
    calibrate.add_argument("--frames", type=int, help="frames to capture (default: calibration.frames)")
    calibrate.add_argument("--from-folder", type=Path, help="read normal frames from this folder instead")
    calibrate.add_argument("--failures", type=Path, help="folder of failure frames from this camera")
    calibrate.add_argument(
        "--reset",
        action="store_true",
        help="forget the camera's calibration and every answer it was given, then exit",
    )

    test = sub.add_parser(
        "test",
        help="analyse one frame per camera, print JSON, exit (--hardware: the GPIO parts instead)",
        description="Without --hardware: analyse one frame per camera and print JSON. With --hardware: no "
        "camera analysis; drive each configured [hardware] part once (status LED, buzzer, relay, fan, "
        "then read the button), one line per part and a JSON summary; exit 1 if a part failed.",
    )
    _add_config_arg(test)
    test.add_argument(
        "--hardware", action="store_true",
        help="walk the GPIO parts only: LED lit, one beep, relay clicked (after a warning), fan at 100 %%, "
        "button read; stop layerwatch.service and layerwatch-fan.service first (they hold the pins)",
    )  # fmt: skip
    test.add_argument(
        "--step-s", type=float, default=1.0, metavar="SECONDS",
        help="with --hardware: how long the LED (each colour), the relay and the fan stay on (default 1)",
    )  # fmt: skip
    test.add_argument(
        "--button-s", type=float, default=5.0, metavar="SECONDS",
        help="with --hardware: how long to wait for a button press (default 5)",
    )  # fmt: skip
    test.add_argument(
        "--skip", action="append", default=[], choices=("status_led", "buzzer", "relay", "fan", "button"),
        help="with --hardware: leave this part out (repeatable), e.g. --skip relay while printing",
    )  # fmt: skip

    bench = sub.add_parser(
        "bench",
        help="measure per-stage time, frame rate, memory, start-up and the service's CPU share",
        description="Budget: <= 40 ms per analysed frame on one core (pipeline_ms), <= 5 % of one core "
        "for the service at default settings (service_cpu_share_pct, one frame every 2 s), peak RSS "
        "<= 150 MB (default_settings_peak_rss_mb).",
    )
    bench.add_argument("--model", type=Path, help="model manifest or file (default: shipped)")
    bench.add_argument("--frames", type=int, default=300, help="frames to time")
    bench.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    bench.add_argument(
        "--config", type=Path, help="measure `layerwatch run` on this config (stop the service)"
    )
    bench.add_argument("--rtsp", help="measure `layerwatch run` on this RTSP camera URL (fresh state)")
    bench.add_argument("--mqtt", help="with --rtsp: MQTT broker URL (mqtt://host:1883)")
    bench.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="seconds the service runs after READY: the default-settings CPU-share window, or with "
        "--config/--rtsp the run (default 60)",
    )
    bench.add_argument(
        "--api", choices=("on", "off"), default="on", help="service with the HTTP API (default, as installed)"
    )

    evaluate = sub.add_parser("eval", help="accuracy on a labelled manifest (path,label,camera,role)")
    evaluate.add_argument(
        "--manifest", type=Path, required=True,
        help="CSV with columns path (image, relative to the CSV), label (ok or failure), camera (rows of "
        "one camera go together, in time order) and role (calibrate or test); optional sequence, time_s",
    )  # fmt: skip
    evaluate.add_argument("--model", type=Path, help="model manifest or file (default: shipped)")
    evaluate.add_argument(
        "--config", type=Path, help='use this configuration file\'s [detector] table (e.g. type = "yolo")'
    )
    evaluate.add_argument(
        "--feedback",
        nargs="?",
        const="asked",
        default=None,
        choices=("asked", "all"),
        help="stream test rows in CSV order; after a frame is scored its label is given to the learner: "
        "`asked` (also a bare --feedback) if the appliance would have asked (failure or uncertain), "
        "`all` for every frame (the capacity protocol)",
    )
    evaluate.add_argument(
        "--prints",
        action="store_true",
        help="replay each print (column `sequence`, rows in time order, optional `time_s`) through the "
        "decision engine: prints caught, time to alert, false alarms per print and per printing hour",
    )
    evaluate.add_argument(
        "--interval",
        type=float,
        default=None,
        help="with --prints: seconds between rows without `time_s` (default: service.analysis_interval_s, 2)",
    )

    fan = sub.add_parser("fan", help="run the fan control service (layerwatch-fan)")
    _add_config_arg(fan)
    fan.add_argument("--once", action="store_true", help="one reading: set the fan, print JSON, exit")

    light = sub.add_parser(
        "status-light", help="show 'unconfigured' or 'config_error' on the status LEDs until stopped"
    )
    light.add_argument("state", choices=("unconfigured", "config_error"))
    _add_config_arg(light)
    light.add_argument("--leds", type=Path, default=Path("/sys/class/leds"), help=argparse.SUPPRESS)
    return parser


def _load(path: Path | None) -> LayerwatchConfig:
    return load_config(path)


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(LayerwatchConfig.model_json_schema(), indent=2))
        return 0
    config = _load(args.config)
    from appliance.config.file_checks import file_warnings

    for key, message in file_warnings(config):
        print(f"layerwatch: warning: {key}: {message}", file=sys.stderr)
    cameras = ", ".join(f"{c.name} ({c.source.type})" for c in config.cameras)
    print(f"configuration OK: {len(config.cameras)} camera(s): {cameras}; MQTT "
          f"{'on' if config.mqtt.enabled else 'off'}")  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.service.runner import Service

    config = _load(args.config)
    setup_logging(config.service.log_level)
    service = Service(config, print_decisions=args.print_decisions, max_frames=args.max_frames)
    service.install_signal_handlers()
    return service.run()  # with service.test_mode it waits for manual triggers (SIGUSR1)


def cmd_test(args: argparse.Namespace) -> int:
    if args.hardware:
        return cmd_test_hardware(args)
    from appliance.service.runner import Service, dumps

    config = _load(args.config)
    setup_logging(config.service.log_level)
    service = Service(config)
    service.install_signal_handlers()
    results = service.test_once()
    print(dumps(results))
    return 1 if any("error" in r for r in results) else 0


def cmd_test_hardware(args: argparse.Namespace) -> int:
    """``layerwatch test --hardware``: the configuration is checked (78) before any pin is touched."""
    config = _load(args.config)
    setup_logging("warning")  # the steps' own lines say what happens
    from appliance.hardware.walk import WalkTimes, run_walk

    if args.step_s <= 0 or args.button_s <= 0:
        print("layerwatch: --step-s and --button-s must be more than 0", file=sys.stderr)
        return 2
    times = WalkTimes(step_s=args.step_s, beep_s=min(0.2, args.step_s), button_s=args.button_s,
                      relay_warning_s=3 * args.step_s)  # fmt: skip
    code, summary = run_walk(config.hardware, times, skip=args.skip)
    print(json.dumps(summary), flush=True)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.demo import run_demo

    return run_demo(args.rate, args.loop, args.port or None)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from appliance.calibrate import reset_camera, run_calibration

    config = _load(args.config)
    setup_logging(config.service.log_level)
    if args.reset:
        removed = reset_camera(config, args.camera)
        print(f"reset: removed {', '.join(map(str, removed)) or 'nothing (no calibration, no answers)'}")
        return 0
    path = run_calibration(config, args.camera, args.frames, args.from_folder, args.failures)
    print(f"calibration saved: {path} (used on the next start)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from appliance.bench import run_bench, user_figures

    setup_logging("warning")
    if args.config or args.rtsp:
        figures = user_figures(args.config, args.rtsp, args.mqtt, args.seconds)
    else:
        figures = run_bench(args.model, args.frames, api=args.api == "on", seconds=args.seconds)
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    if args.json:
        print(json.dumps(figures))
    return 0


def _detector_table(path: Path) -> DetectorConfig | YoloDetectorConfig:
    """Only the ``[detector]`` table of a configuration file (``eval`` needs no cameras)."""
    import tomllib

    from pydantic import ValidationError

    from appliance.config.loader import validation_problems

    try:
        tree = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot read: {exc}")]) from exc
    wrapped = {"detector": tree.get("detector", {})}
    try:
        return LayerwatchConfig.model_validate(wrapped).detector
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, {}, wrapped)) from exc


def cmd_eval(args: argparse.Namespace) -> int:
    from appliance.evaluate import run_eval

    setup_logging("warning")
    detector = _detector_table(args.config) if args.config else None
    result = run_eval(
        args.manifest,
        args.model,
        feedback=args.feedback,
        detector_config=detector,
        prints=args.prints,
        interval_s=args.interval,
    )
    print(json.dumps(result))
    return 0


def cmd_fan(args: argparse.Namespace) -> int:
    import signal
    import threading

    from appliance.fan.service import load_hardware_config, run_fan

    hardware = load_hardware_config(args.config)
    setup_logging("info")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.once:
        from appliance.fan.backends import open_backend
        from appliance.fan.service import FanController

        backend = open_backend(hardware)
        if backend is None:
            print(json.dumps({"backend": "none"}))
            return 0
        try:
            controller = FanController(hardware.fan, hardware.thermal.sensor_path, backend)
            controller.step()
            print(json.dumps(controller.last.to_json(backend.name) if controller.last else {}))
        finally:
            backend.close()
        return 0
    return run_fan(hardware, stop)


def cmd_status_light(args: argparse.Namespace) -> int:
    import signal
    import threading

    from appliance.config.loader import DEFAULT_CONFIG_PATH
    from appliance.hardware.setup_light import run_status_light

    setup_logging("info")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    path = args.config or Path(os.environ.get("LAYERWATCH_CONFIG") or DEFAULT_CONFIG_PATH)
    return run_status_light(args.state, stop, config_path=path, leds_root=args.leds)


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "check-config": cmd_check_config,
    "calibrate": cmd_calibrate,
    "test": cmd_test,
    "bench": cmd_bench,
    "eval": cmd_eval,
    "fan": cmd_fan,
    "status-light": cmd_status_light,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:  # masked by the loader; mask() again for errors raised elsewhere
        print(f"layerwatch: {mask(str(exc), [])}", file=sys.stderr)
        return EX_CONFIG
    except LayerwatchError as exc:
        print(f"layerwatch: error: {mask(str(exc), [])}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`layerwatch check-config --schema | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
