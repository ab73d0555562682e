"""AWS credentials the way the RTSP+Bedrock detector documents them.

1. A credentials file in the shared-credentials format is mounted at a path (default
   ``/creds/credentials``); it may hold several profiles.
2. The profile is the one named by ``APP_AWS_PROFILE`` (``cloud.bedrock.profile``), never
   ``AWS_PROFILE``: the botocore session built here pins its profile, credentials file and region,
   and ignores ``~/.aws/config``, so a stray ``AWS_PROFILE`` can neither pick other keys nor make
   client creation fail with ``ProfileNotFound``.
3. With ``AWS_ROLE_ARN`` set, the profile's keys call ``sts:AssumeRole`` and Bedrock is called
   with the role's temporary credentials. They are botocore
   :class:`~botocore.credentials.DeferredRefreshableCredentials`: fetched on first use and fetched
   again before they expire (botocore refreshes 15 minutes ahead, and insists 10 minutes ahead).
   Every fetch re-reads the file, so a rotated file (``write-temp-creds.sh``) is picked up.
   Without a role the profile's keys are used directly (re-read every hour).

Region from ``AWS_REGION`` (``cloud.bedrock.region``, default us-west-2). Every key and token
read or issued is registered with :mod:`appliance.service.log_redaction`, so no log line shows it.
boto3/botocore are imported only here and in :mod:`.bedrock`, i.e. only when Bedrock is configured.
"""

from __future__ import annotations

import configparser
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config.cloud import BedrockConfig
from appliance.errors import CloudCredentialsError
from appliance.service.log_redaction import register_secret

logger = logging.getLogger(__name__)

#: without a role, the file's keys are re-read this often (seconds)
STATIC_REREAD_S = 3600
#: error codes that mean "these credentials are not (or no longer) good"
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)


@dataclass(frozen=True)
class ProfileKeys:
    """One profile's keys from the credentials file (never printed: ``repr`` hides them)."""

    profile: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def read_profile(path: Path, profile: str) -> ProfileKeys:
    """The keys of ``profile`` in the credentials file at ``path``; :class:`CloudCredentialsError`
    naming the file and the profiles it has (names only) when they are not there."""
    parser = configparser.RawConfigParser()
    try:
        with path.open() as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise CloudCredentialsError(f"credentials file {path} does not exist") from None
    except (OSError, configparser.Error) as exc:
        raise CloudCredentialsError(f"credentials file {path} cannot be read: {type(exc).__name__}") from None
    if not parser.has_section(profile):
        names = ", ".join(parser.sections()) or "none"
        raise CloudCredentialsError(f"profile {profile!r} not in {path} (profiles: {names})")
    section = parser[profile]
    access_key = section.get("aws_access_key_id", "").strip()
    secret_key = section.get("aws_secret_access_key", "").strip()
    token = section.get("aws_session_token", "").strip() or None
    if not access_key or not secret_key:
        raise CloudCredentialsError(
            f"profile {profile!r} in {path} lacks aws_access_key_id/aws_secret_access_key"
        )
    for secret in (access_key, secret_key, token):
        register_secret(secret)
    return ProfileKeys(profile, access_key, secret_key, token)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


class AwsCredentialSource:
    """Builds pinned botocore sessions whose credentials refresh themselves.

    ``fetch_count`` counts credential fetches (file reads plus AssumeRole calls), for telemetry and
    tests; ``last_expiry`` is the expiry of the newest credentials.
    """

    def __init__(self, config: BedrockConfig, request_timeout_s: float):
        self.config = config
        self.request_timeout_s = request_timeout_s
        self.fetch_count = 0
        self.last_expiry: dt.datetime | None = None
        self._loader: Any = None  # botocore's model loader, shared: parsing the models once is enough
        self._sts: Any = None
        self._sts_keys: ProfileKeys | None = None

    def session(self) -> Any:
        """A fresh botocore session: profile, credentials file and region pinned, credentials that
        fetch themselves on first use (so building it never touches the network or the file)."""
        import botocore.session
        from botocore.credentials import (
            CredentialProvider,
            CredentialResolver,
            DeferredRefreshableCredentials,
        )

        session = botocore.session.Session()
        # pin what botocore would otherwise take from AWS_PROFILE, AWS_CONFIG_FILE, ~/.aws/config ...
        session.set_config_variable("credentials_file", str(self.config.credentials_file))
        session.set_config_variable("config_file", os.devnull)  # not a regular file: no profiles
        session.set_config_variable("profile", self.config.profile)
        session.set_config_variable("region", self.config.region)
        session.set_config_variable("ignore_configured_endpoint_urls", True)
        self._check_profile(session)
        if self._loader is None:
            self._loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", self._loader)
        method = "sts-assume-role" if self.config.role_arn else "layerwatch-credentials-file"
        credentials = DeferredRefreshableCredentials(refresh_using=self._fetch, method=method)

        class _Pinned(CredentialProvider):  # type: ignore[misc]
            METHOD = method

            def load(self) -> Any:
                return credentials

        session.register_component("credential_provider", CredentialResolver(providers=[_Pinned()]))
        return session

    def _check_profile(self, session: Any) -> None:
        """botocore refuses a session whose pinned profile is in neither file (``ProfileNotFound``, as
        with ``APP_AWS_PROFILE=vault-user`` and no credentials file): :class:`CloudCredentialsError`
        saying whether the file or the profile is missing, so the judge turns off and the cameras go on."""
        from botocore.exceptions import ProfileNotFound

        try:
            session.get_scoped_config()
        except ProfileNotFound:
            try:
                read_profile(self.config.credentials_file, self.config.profile)
            except CloudCredentialsError as exc:
                raise CloudCredentialsError(f"AWS profile {self.config.profile!r}: {exc}") from None
            raise CloudCredentialsError(
                f"AWS profile {self.config.profile!r} not found in {self.config.credentials_file}"
            ) from None

    def _fetch(self) -> dict[str, str]:
        """botocore's ``refresh_using``: the metadata dict of fresh credentials."""
        self.fetch_count += 1
        keys = read_profile(self.config.credentials_file, self.config.profile)
        if not self.config.role_arn:
            expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=STATIC_REREAD_S)
            self.last_expiry = expiry
            logger.info(
                "cloud: using the keys of profile %s from %s", keys.profile, self.config.credentials_file
            )
            return {
                "access_key": keys.access_key,
                "secret_key": keys.secret_key,
                "token": keys.token or "",
                "expiry_time": _iso(expiry),
            }
        return self._assume_role(keys)

    def _sts_client(self, keys: ProfileKeys) -> Any:
        """An STS client signing with ``keys``; rebuilt only when the file's keys changed."""
        from botocore.config import Config

        if self._sts is None or self._sts_keys != keys:
            if self._sts is not None:
                self._sts.close()
            self._sts = self.session().create_client(
                "sts",
                region_name=self.config.region,
                endpoint_url=self.config.sts_endpoint_url,
                aws_access_key_id=keys.access_key,
                aws_secret_access_key=keys.secret_key,
                aws_session_token=keys.token,
                config=Config(
                    connect_timeout=min(5.0, self.request_timeout_s),
                    read_timeout=self.request_timeout_s,
                    retries={"mode": "standard", "total_max_attempts": 2},
                ),
            )
            self._sts_keys = keys
        return self._sts

    def _assume_role(self, keys: ProfileKeys) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        sts = self._sts_client(keys)
        try:
            answer = sts.assume_role(
                RoleArn=self.config.role_arn,
                RoleSessionName=self.config.role_session_name,
                DurationSeconds=self.config.session_duration_s,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            raise CloudCredentialsError(
                f"sts:AssumeRole into {self.config.role_arn} with profile {keys.profile} failed: "
                f"{code} {message}"
            ) from None
        except BotoCoreError as exc:
            raise CloudCredentialsError(f"sts:AssumeRole could not reach STS: {type(exc).__name__}") from None
        issued = answer["Credentials"]
        for secret in (issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]):
            register_secret(secret)
        expiry: dt.datetime = issued["Expiration"]
        self.last_expiry = expiry
        logger.info(
            "cloud: assumed role %s with profile %s (credentials expire %s)",
            self.config.role_arn, keys.profile, _iso(expiry),
        )  # fmt: skip
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": _iso(expiry),
        }
