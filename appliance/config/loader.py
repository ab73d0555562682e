"""Load the configuration: TOML file, then systemd credentials, then environment variables.

Precedence, lowest first:

1. ``/etc/layerwatch/layerwatch.toml`` (or ``--config``),
2. files in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``), one secret per file,
3. the environment variables of the earlier systems: the RTSP+Bedrock detector's (``RTSP_URL``,
   ``MQTT_BROKER_URL``, ``INFERENCE_PROFILE_ARN``, ...), the monitoring system's
   (``MQTT_USERNAME``, ``MQTT_PASSWORD``, ``ROUGHNESS_THRESHOLD``) and the bridge's (``OPENROUTER_API_KEY``,
   ``AI_MODEL``, ``TELEGRAM_BOT_TOKEN``, ``PROGRESS_STEP``, ``IMAGES_DIR``, ``TIMELAPSE_*``, ...).

A variable that only makes sense with a judge also picks that judge when the file leaves
``cloud.type`` unset (or ``"off"``): ``INFERENCE_PROFILE_ARN`` turns Bedrock on,
``OPENROUTER_API_KEY`` the OpenAI-compatible judge, as those systems did.

Overrides are applied to the raw tree before validation, so every error names the key path
(``cameras.0.source.url``) and, where an override set it, the variable or credential it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.error_text import explain, tree_secrets
from appliance.config.file_checks import file_problems
from appliance.config.model import DEFAULT_CONFIG_PATH, LayerwatchConfig
from appliance.config.reference import suggestion
from appliance.config.settings_file import merge_settings
from appliance.errors import ConfigError

EX_CONFIG = 78  # sysexits.h: configuration error

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError([(f"env {name}", f"must be true or false, got {raw!r}")])


def _first_camera(tree: dict[str, Any]) -> dict[str, Any]:
    cameras = tree.setdefault("cameras", [])
    if not isinstance(cameras, list):
        raise ConfigError([("cameras", "must be a list of [[cameras]] tables")])
    if not cameras:
        cameras.append({"name": "printer"})
    if not isinstance(cameras[0], dict):
        raise ConfigError([("cameras.0", "must be a table")])
    return cameras[0]


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    node = tree
    *parents, leaf = path.split(".")
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError([(key, "must be a table")])
        node = child
    node[leaf] = value


def _set_rtsp_url(tree: dict[str, Any], url: str) -> None:
    camera = _first_camera(tree)
    source = camera.get("source")
    if isinstance(source, dict) and source.get("type", "rtsp") == "rtsp":
        source["url"] = url
        source["type"] = "rtsp"
    else:
        camera["source"] = {"type": "rtsp", "url": url}


def _broker_url(name: str, raw: str) -> str:
    """``10.0.0.3:1883`` as the RTSP+Bedrock detector's users wrote it means ``mqtt://10.0.0.3:1883``."""
    raw = raw.strip()
    return raw if "://" in raw else f"mqtt://{raw}"


# name -> (config path it sets, how the raw string becomes the value)
ENV_OVERRIDES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "DISCORD_WEBHOOK_URL": ("notify.discord.webhook_url", lambda n, v: v),
    "AWS_REGION": ("cloud.bedrock.region", lambda n, v: v),
    "AWS_ROLE_ARN": ("cloud.bedrock.role_arn", lambda n, v: v),
    "INFERENCE_PROFILE_ARN": ("cloud.bedrock.model_id", lambda n, v: v),
    "APP_AWS_PROFILE": ("cloud.bedrock.profile", lambda n, v: v),
    "TEST_MODE": ("service.test_mode", _env_bool),
    "VERBOSE_LOGGING": ("service.log_level", lambda n, v: "debug" if _env_bool(n, v) else "info"),
    "ANALYSIS_INTERVAL": ("service.analysis_interval_s", lambda n, v: v),
    "MQTT_BROKER_URL": ("mqtt.broker_url", _broker_url),
    "MQTT_USERNAME": ("mqtt.username", lambda n, v: v),
    "MQTT_PASSWORD": ("mqtt.password", lambda n, v: v),
    "OPENROUTER_API_KEY": ("cloud.openai_compatible.api_key", lambda n, v: v),
    "OPENROUTER_BASE_URL": ("cloud.openai_compatible.base_url", lambda n, v: v),
    "AI_MODEL": ("cloud.openai_compatible.model", lambda n, v: v),
    "AI_CONFIDENCE_THRESHOLD": ("cloud.min_confidence", lambda n, v: v),
    "MQTT_TOPIC": ("mqtt.status_topic", lambda n, v: v),
    "LAYERWATCH_STATE_DIR": ("service.state_dir", lambda n, v: v),
    # printer-realtime-bridge (Telegram, job notifications, frames, timelapse)
    "TELEGRAM_BOT_TOKEN": ("notify.telegram.bot_token", lambda n, v: v),
    "TELEGRAM_CHAT_ID": ("notify.telegram.chat_id", lambda n, v: v),
    "TELEGRAM_THREAD_ID": ("notify.telegram.message_thread_id", lambda n, v: v),
    "PROGRESS_STEP": ("history.notify.progress_step", lambda n, v: v),
    "PHOTO_INTERVAL_SECONDS": ("history.notify.photo_interval_s", lambda n, v: v),
    "IMAGES_DIR": ("history.images_dir", lambda n, v: v),
    "IMAGE_RETENTION_DAYS": ("history.image_retention_days", lambda n, v: v),
    "TIMELAPSE_MAX_BYTES": ("history.timelapse.max_bytes", lambda n, v: v),
    "TIMELAPSE_TARGET_DURATION_SECONDS": ("history.timelapse.target_duration_s", lambda n, v: v),
    "TIMELAPSE_MAX_WIDTH": ("history.timelapse.max_width", lambda n, v: v),
    "TIMELAPSE_FPS_CAP": ("history.timelapse.fps_cap", lambda n, v: v),
    # the MQTT quality-monitoring system's quality threshold: the roughness signal's upper limit
    "ROUGHNESS_THRESHOLD": ("telemetry.signals.roughness.max", lambda n, v: v),
    "LAYERWATCH_API_LISTEN": ("api.listen", lambda n, v: v),
    # printer-realtime-bridge: its API port (it listened on every address)
    "PORT": ("api.listen", lambda n, v: f"0.0.0.0:{v}"),
}

# the bridge's variables: any of them switches [history] on when the file does not set history.enabled
# (the bridge sent job messages and kept frames whenever it ran)
HISTORY_SWITCHES = (
    "TELEGRAM_BOT_TOKEN", "PROGRESS_STEP", "PHOTO_INTERVAL_SECONDS", "IMAGES_DIR", "IMAGE_RETENTION_DAYS",
    "TIMELAPSE_MAX_BYTES", "TIMELAPSE_TARGET_DURATION_SECONDS", "TIMELAPSE_MAX_WIDTH", "TIMELAPSE_FPS_CAP",
)  # fmt: skip

# credential file name -> config path (secrets never need to sit in the TOML file)
CREDENTIAL_FILES: dict[str, str] = {
    "discord_webhook_url": "notify.discord.webhook_url",
    "mqtt_username": "mqtt.username",
    "mqtt_password": "mqtt.password",
    "aws_credentials": "cloud.bedrock.credentials_file",
    "telegram_bot_token": "notify.telegram.bot_token",
    "printer_api_key": "printer.api_key",
    "octoprint_api_key": "printer.api_key",
    "moonraker_api_key": "printer.api_key",
    "api_token": "api.token",
}


def apply_overrides(
    tree: dict[str, Any], environ: Mapping[str, str], origins: dict[str, str]
) -> dict[str, Any]:
    """Layer credentials and environment variables onto a raw config tree (in place)."""
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        for name, path in CREDENTIAL_FILES.items():
            file = Path(cred_dir) / name
            # an empty file is a placeholder (LoadCredential= needs the file to exist): skip it
            if file.is_file() and file.stat().st_size > 0:
                value: Any = str(file) if name == "aws_credentials" else file.read_text().strip()
                _set(tree, path, value)
                origins[path] = f"credential {name}"
        rtsp_cred = Path(cred_dir) / "rtsp_url"
        if rtsp_cred.is_file() and rtsp_cred.stat().st_size > 0:
            _set_rtsp_url(tree, rtsp_cred.read_text().strip())
            origins["cameras.0.source.url"] = "credential rtsp_url"
    if environ.get("RTSP_URL"):
        _set_rtsp_url(tree, environ["RTSP_URL"])
        origins["cameras.0.source.url"] = "env RTSP_URL"
    for name, (path, convert) in ENV_OVERRIDES.items():
        raw = environ.get(name)
        if raw is None or (raw == "" and name not in ("TEST_MODE", "VERBOSE_LOGGING")):
            continue
        _set(tree, path, convert(name, raw))
        origins[path] = f"env {name}"
    _pick_judge(tree, environ, origins)
    _switch_history(tree, environ, origins)
    _always_mode_interval(tree)
    return tree


ALWAYS_MODE_INTERVAL_S = 10.0  # the RTSP+Bedrock detector's ANALYSIS_INTERVAL default


def _always_mode_interval(tree: dict[str, Any]) -> None:
    """With ``cloud.mode = "always"`` and no interval set (file or ``ANALYSIS_INTERVAL``), analyse
    every 10 s, as the RTSP+Bedrock detector did, instead of the local model's 2 s."""
    cloud, service = tree.get("cloud"), tree.get("service")
    if not isinstance(cloud, dict) or cloud.get("mode") != "always":
        return
    if isinstance(service, dict) and "analysis_interval_s" in service:
        return
    _set(tree, "service.analysis_interval_s", ALWAYS_MODE_INTERVAL_S)


# variable -> the judge it switches on when the file does not choose one
JUDGE_SWITCHES = {"INFERENCE_PROFILE_ARN": "bedrock", "OPENROUTER_API_KEY": "openai_compatible"}


def _pick_judge(tree: dict[str, Any], environ: Mapping[str, str], origins: dict[str, str]) -> None:
    cloud = tree.get("cloud")
    chosen = cloud.get("type", "off") if isinstance(cloud, dict) else "off"
    if chosen != "off":
        return
    for name, judge in JUDGE_SWITCHES.items():
        if environ.get(name):
            _set(tree, "cloud.type", judge)
            origins["cloud.type"] = f"env {name}"
            return


def _switch_history(tree: dict[str, Any], environ: Mapping[str, str], origins: dict[str, str]) -> None:
    """``history.enabled`` (by the bridge's variables) and ``telemetry.enabled`` (by ROUGHNESS_THRESHOLD)
    switched on when the file does not set them."""
    for table, switches in (("history", HISTORY_SWITCHES), ("telemetry", ("ROUGHNESS_THRESHOLD",))):
        section = tree.get(table)
        if isinstance(section, dict) and "enabled" in section and f"{table}.enabled" not in origins:
            continue
        for name in switches:
            if environ.get(name):
                _set(tree, f"{table}.enabled", True)
                origins[f"{table}.enabled"] = f"env {name}"
                break


DETECTOR_DEFAULT_TAG = "prototype"  # the [detector] union's tag for tables whose type names a backend


def _key_path(loc: tuple[Any, ...], tree: Any) -> str:
    """The user's key path for a pydantic error location. A discriminated union (any table picked
    by its ``type``) adds the tag (``rtsp``, ``octoprint``) to the location although the user
    never wrote it as a key: walk the raw tree alongside and leave such tags out."""
    parts: list[str] = []
    node = tree
    for item in loc:
        if isinstance(node, dict) and item not in node and item in (node.get("type"), DETECTOR_DEFAULT_TAG):
            continue
        parts.append(str(item))
        if isinstance(node, dict):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        else:
            node = None
    return ".".join(parts) or "(top level)"


def validation_problems(
    exc: ValidationError, origins: Mapping[str, str], tree: Any = None
) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        path = _key_path(tuple(error["loc"]), tree)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            hint = suggestion(path)
            message = f"unknown key ({hint})" if hint else "unknown key"
        origin = origins.get(path)
        problems.append((path, f"{message} (from {origin})" if origin else message))
    return problems


def cross_field_problems(tree: Any) -> list[tuple[str, str]]:
    """The cross-field rules (unique camera names, ``votes <= window``, ``verify_min_agree <=
    verify_frames``) checked on the raw tree wherever those fields parsed as plain values, so they
    are reported in the same pass as field errors elsewhere: pydantic runs a model's own
    cross-field validator only once all of that model's fields (and, at the top, all) are valid.
    Messages match the validators' (``appliance.config.model``) so each problem appears once."""
    problems: list[tuple[str, str]] = []
    cameras = tree.get("cameras") if isinstance(tree, dict) else None
    if not isinstance(cameras, list):
        return problems
    names = [c.get("name", "printer") for c in cameras if isinstance(c, dict)]
    dupes = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    if dupes:
        problems.append(("(top level)", f"camera names must be unique, repeated: {', '.join(dupes)}"))
    for index, camera in enumerate(cameras):
        decision = camera.get("decision") if isinstance(camera, dict) else None
        if not isinstance(decision, dict):
            continue
        votes, window = decision.get("votes", 3), decision.get("window", 5)
        if isinstance(votes, int) and isinstance(window, int) and votes > window:
            problems.append((f"cameras.{index}.decision", f"votes ({votes}) cannot exceed window ({window})"))
        agree, frames = decision.get("verify_min_agree", 2), decision.get("verify_frames", 4)
        if isinstance(agree, int) and isinstance(frames, int) and frames and agree > frames:
            problems.append(
                (
                    f"cameras.{index}.decision",
                    f"verify_min_agree ({agree}) cannot exceed verify_frames ({frames})",
                )
            )
    return problems


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([("(file)", f"{path} does not exist")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(file)", f"{path} is not valid TOML: {exc}")]) from None
    except OSError as exc:
        raise ConfigError([("(file)", f"{path} cannot be read: {exc.strerror}")]) from None


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> LayerwatchConfig:
    """Read, override and validate the configuration, or raise :class:`ConfigError` naming each key.

    With ``path`` None the default file is read if it exists; otherwise the environment alone
    must describe a camera (as the RTSP+Bedrock detector's ``RTSP_URL`` does). Every problem is shown
    with its camera's name, the nearest key for a typo and no credential (:mod:`.error_text`).
    """
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    try:
        return _load(path, environ, tree)
    except ConfigError as exc:
        read = {n: environ[n] for n in (*ENV_OVERRIDES, "RTSP_URL") if environ.get(n)}
        raise ConfigError(explain(exc.problems, tree, tree_secrets(tree, read))) from None


def _load(path: Path | None, environ: Mapping[str, str], tree: dict[str, Any]) -> LayerwatchConfig:
    """:func:`load_config`'s work; ``tree`` is filled with the raw tree as it is merged."""
    if path is None:
        env_path = environ.get("LAYERWATCH_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG_PATH
        tree.update(read_toml(path) if path.exists() else {})
    else:
        tree.update(read_toml(path))
    origins: dict[str, str] = {}
    apply_overrides(tree, environ, origins)
    settings_problems = merge_settings(tree, origins)  # the console's settings.json (issue 32)
    try:
        config = LayerwatchConfig.model_validate(tree)
    except ValidationError as exc:
        problems = validation_problems(exc, origins, tree)
        known = {message for _, message in problems}
        problems += [p for p in cross_field_problems(tree) if p[1] not in known]
        raise ConfigError(problems) from None
    if not config.cameras:
        if not path.exists():
            raise ConfigError([("(file)", f"{path} does not exist (and no env RTSP_URL names a camera)")])
        raise ConfigError([("cameras", "at least one [[cameras]] table (or env RTSP_URL) is needed")])
    problems = settings_problems + file_problems(config)
    if problems:
        raise ConfigError(problems)
    return config
