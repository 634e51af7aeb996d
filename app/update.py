"""The update check: is a newer Tacit out? Off by default, and anonymous when on.

What it owns: the update setting (``UpdateSettings``: on/off, the release feed's URL,
when it last looked) in its own small file in the user's config folder, the request for
the release feed, the feed's parser and the version comparison.

Invariants:
- nothing is requested unless the user turned the check on (``tacit update enable`` or
  Settings ▸ Updates): ``check()`` on a disabled setting raises ``UsageError`` before
  any network code runs;
- the request carries nothing that identifies the user, the device or the installation:
  a bare GET of the feed URL as configured (no query string of ours, so not even the
  version), a fixed generic User-Agent, no cookies, no credentials (``.netrc`` and the
  proxy environment are not read: ``trust_env`` off), redirects not followed;
- the answer is a small JSON document (at most ``MAX_FEED_BYTES``), parsed defensively;
  the comparison with the running version happens here, on the device;
- the setting holds no personal data, so it lives outside the vault (the CLI and the
  app both read it without unlocking anything). A feed URL is something a practice
  configures, not something about a client.

Feed format (docs/DEPLOY.md, "Release feed")::

    {"latest": {"version": "0.2.0", "published": "2027-01-15",
                "url": "https://…/releases/0.2.0", "security": false}}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import platformdirs

from app import __version__
from app.errors import InvalidInputError, OfflineError, TlsError, UsageError
from app.vault.fsutil import atomic_write

USER_AGENT = "Tacit-Update-Check"  # the same for every user and version
TIMEOUT_S = 10.0
MAX_FEED_BYTES = 64 * 1024
CHECK_INTERVAL_S = 24 * 3600  # automatic checks (the app): at most once a day
SETTINGS_FILE = "update.json"
FEED_URL_ENV = "TACIT_UPDATE_FEED"  # a packager's default feed, if the setting has none

_VERSION = re.compile(r"^(\d{1,6})(?:\.(\d{1,6}))?(?:\.(\d{1,6}))?(?:\.(\d{1,6}))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def settings_path() -> Path:
    """``update.json`` in the user's config folder (``XDG_CONFIG_HOME`` on Linux)."""
    return Path(platformdirs.user_config_dir("tacit", appauthor=False)) / SETTINGS_FILE


@dataclass(frozen=True, slots=True)
class UpdateSettings:
    enabled: bool = False
    feed_url: str | None = None
    last_checked: float | None = None  # seconds since the epoch, of the last request

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "feed_url": self.feed_url,
            "last_checked": self.last_checked,
        }

    def feed(self) -> str | None:
        return self.feed_url or os.environ.get(FEED_URL_ENV) or None

    def due(self, now: float) -> bool:
        """Whether an automatic check is due (enabled, and none in the last day)."""
        if not self.enabled:
            return False
        if self.last_checked is None:
            return True
        elapsed = now - self.last_checked
        return elapsed < 0 or elapsed >= CHECK_INTERVAL_S  # a clock set back: look again


def load_settings(path: Path | None = None) -> UpdateSettings:
    """The setting; a missing or unreadable file means the default (off)."""
    try:
        data = json.loads((path or settings_path()).read_text("utf-8"))
    except (OSError, ValueError):
        return UpdateSettings()
    if not isinstance(data, dict):
        return UpdateSettings()
    url = data.get("feed_url")
    last = data.get("last_checked")
    return UpdateSettings(
        enabled=data.get("enabled") is True,
        feed_url=url if isinstance(url, str) and _valid_url(url) else None,
        last_checked=float(last) if isinstance(last, int | float) else None,
    )


def save_settings(settings: UpdateSettings, path: Path | None = None) -> None:
    """Write the setting (atomically; the folder is created). Raises OSError."""
    target = path or settings_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, (json.dumps(settings.to_dict(), indent=2) + "\n").encode("utf-8"))


def set_enabled(
    enabled: bool, *, feed_url: str | None = None, path: Path | None = None
) -> UpdateSettings:
    """Turn the check on or off (and set the feed URL). Raises UsageError on a URL that
    is not http(s), OSError when the file cannot be written."""
    if feed_url is not None and not _valid_url(feed_url):
        raise UsageError("the release feed URL must start with https:// (or http://)")
    current = load_settings(path)
    updated = replace(current, enabled=enabled, feed_url=feed_url or current.feed_url)
    save_settings(updated, path)
    return updated


def _valid_url(url: str) -> bool:
    return bool(re.match(r"^https?://[^\s/?#]+", url)) and not _CONTROL.search(url)


# -- versions and the feed ----------------------------------------------------------------
def parse_version(text: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2, 0)``. Raises InvalidInputError on anything else."""
    m = _VERSION.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidInputError("the release feed names a version that is not N.N.N")
    return tuple(int(part or 0) for part in m.groups())


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    published: str | None
    url: str | None
    security: bool


def parse_feed(data: bytes) -> Release:
    """The feed's latest release. Raises InvalidInputError on a feed we cannot read."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInputError("the release feed is not JSON") from None
    latest = doc.get("latest") if isinstance(doc, dict) else None
    if not isinstance(latest, dict) or not isinstance(latest.get("version"), str):
        raise InvalidInputError("the release feed has no latest version")
    version = latest["version"].strip()
    parse_version(version)
    url = latest.get("url")
    published = latest.get("published")
    return Release(
        version=version,
        published=_clean(published) if isinstance(published, str) else None,
        url=url if isinstance(url, str) and _valid_url(url) else None,
        security=latest.get("security") is True,
    )


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)[:40]


@dataclass(frozen=True, slots=True)
class UpdateResult:
    current: str
    latest: str
    newer: bool
    published: str | None
    url: str | None
    security: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "latest": self.latest,
            "newer": self.newer,
            "published": self.published,
            "url": self.url,
            "security": self.security,
        }

    def message(self) -> str:
        if not self.newer:
            return f"Tacit {self.current} is up to date (the newest release is {self.latest})."
        kind = "A security update" if self.security else "A newer version"
        where = f": {self.url}" if self.url else ""
        return f"{kind} of Tacit is available: {self.latest} (you have {self.current}){where}"


def compare(release: Release, current: str = __version__) -> UpdateResult:
    return UpdateResult(
        current=current,
        latest=release.version,
        newer=parse_version(release.version) > parse_version(current),
        published=release.published,
        url=release.url,
        security=release.security,
    )


# -- the request ------------------------------------------------------------------------
def fetch_feed(url: str) -> bytes:
    """GET the feed with nothing identifying (module doc). Raises OfflineError,
    TlsError, InvalidInputError (an HTTP error status, a redirect, too large)."""
    import httpx  # imported on use: the check is rare and off by default

    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        with (
            httpx.Client(
                headers=headers, timeout=TIMEOUT_S, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidInputError(
                    f"the release feed answered HTTP {response.status_code}",
                    status=response.status_code,
                )
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise InvalidInputError("the release feed is too large")
            return body
    except httpx.ConnectError as exc:
        if "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
            raise TlsError("the release feed's certificate did not verify") from None
        raise OfflineError("the release feed cannot be reached") from None
    except (httpx.TimeoutException, httpx.NetworkError):
        raise OfflineError("the release feed cannot be reached") from None
    except httpx.HTTPError:
        raise InvalidInputError("the release feed answered with something unreadable") from None


def check(
    *, url: str | None = None, path: Path | None = None, now: float | None = None
) -> UpdateResult:
    """One check, as the user asked for it (``tacit update check``, the app once a day).
    Raises UsageError when checks are off or no feed is set (nothing is requested),
    else what ``fetch_feed`` and ``parse_feed`` raise. Records the time of the request."""
    settings = load_settings(path)
    if not settings.enabled:
        raise UsageError(
            "update checks are off; turn them on with 'tacit update enable' "
            "(or Settings ▸ Updates in the app)",
            reason="disabled",
        )
    feed = url or settings.feed()
    if feed is None or not _valid_url(feed):
        raise UsageError(
            "no release feed is set; give one with 'tacit update enable --url URL'",
            reason="no_feed",
        )
    try:
        data = fetch_feed(feed)
    finally:
        # Not being able to note the time must not hide the answer.
        with contextlib.suppress(OSError):
            save_settings(replace(settings, last_checked=now or time.time()), path)
    return compare(parse_feed(data))


def check_if_due(*, path: Path | None = None, now: float | None = None) -> UpdateResult | None:
    """The app's automatic check: None (and no request) unless enabled and due."""
    moment = now or time.time()
    settings = load_settings(path)
    if not settings.due(moment) or settings.feed() is None:
        return None
    return check(path=path, now=moment)
