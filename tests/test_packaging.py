"""Packaging and release files (packaging/, resources/, the lock files): they refer only
to things that exist, they parse where a validator is at hand, and the version lives
in one place. The bundle itself is built and run by ``make package``
(packaging/check-bundle.sh), which is too slow for the test suite.
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app import __version__
from app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "server" / "tacit-server.service"
CONTAINERFILE = PACKAGING / "server" / "Containerfile"
DESKTOP = PACKAGING / "linux" / "tacit.desktop"
METAINFO = PACKAGING / "linux" / "tacit.metainfo.xml"
LOCKS = [
    ROOT / "requirements.lock",
    PACKAGING / "requirements-package.lock",
    PACKAGING / "server" / "requirements-server.lock",
]


# What /etc/tacit/server.env or the container's environment would hold.
SAMPLE_ENV = {
    "TACIT_DB_URL": "postgresql://tacit@127.0.0.1:5432/tacit",
    "TACIT_ORIGIN": "https://sync.example.org",
    "TACIT_PORT": "8443",
    "TACIT_WORKERS": "2",
}


def expand(text: str) -> str:
    """``${VAR}`` / ``$VAR`` replaced by a sample value (an unknown one is a KeyError)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: SAMPLE_ENV[m.group(1)], text)


def parses_as_cli(argv: list[str]) -> None:
    """``tacit ARGS`` is a command line our own parser accepts (raises UsageError)."""
    build_parser().parse_args(argv)


# -- the systemd unit ---------------------------------------------------------------------
def unit_sections() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in UNIT.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value))
    return sections


def test_unit_is_hardened_and_runs_real_commands() -> None:
    sections = unit_sections()
    assert set(sections) == {"Unit", "Service", "Install"}
    service = dict(sections["Service"])
    for key, value in {
        "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes", "LimitCORE": "0",
    }.items():  # fmt: skip
        assert service.get(key) == value, key
    # ExecStart/ExecStartPre are `tacit server …` lines our CLI accepts, on loopback.
    for key in ("ExecStartPre", "ExecStart"):
        argv = shlex.split(expand(service[key]))
        assert argv[0] == "/opt/tacit/bin/tacit"
        parses_as_cli(argv[1:])
    assert "--host 127.0.0.1" in service["ExecStart"]
    assert "--insecure" not in service["ExecStart"]
    # No secret on a command line or in the unit: the password comes from a credential.
    assert re.search(r"://[^/@\s]*:[^/@\s]*@", UNIT.read_text()) is None
    assert "PGPASSWORD" not in UNIT.read_text()
    assert service["Environment"] == "PGPASSFILE=%d/pgpass"
    # Several workers by default (the env file may say otherwise).
    assert ("Environment", "TACIT_WORKERS=2") in sections["Service"]
    assert "--workers ${TACIT_WORKERS}" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_verifies(tmp_path: Path) -> None:
    # /opt/tacit does not exist here: verify a copy whose programs do.
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/tacit/bin/tacit", "/bin/true"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warnings there


# -- the container file --------------------------------------------------------------------
def container_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_containerfile_uses_real_files_and_commands() -> None:
    steps = container_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    for word, rest in steps:
        if word == "COPY":
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "--require-hashes -r /src/requirements-server.lock" in runs
    users = [rest for word, rest in steps if word == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    # The command is a `tacit server run` our CLI accepts.
    (cmd,) = [rest for word, rest in steps if word == "CMD"]
    import json

    shell = json.loads(cmd)
    assert shell[:2] == ["sh", "-c"]
    argv = shlex.split(expand(shell[2]).removeprefix("exec "))
    assert argv[:3] == ["tacit", "server", "run"]
    parses_as_cli(argv[1:])
    # The health check asks the route the server really has.
    (health,) = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert "/v1/health" in health
    routes = (ROOT / "app" / "sync" / "server" / "auth_routes.py").read_text()
    assert '@router.get("/health"' in routes


# -- desktop entry, AppStream, icons ---------------------------------------------------------
def test_desktop_entry() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(DESKTOP)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"] == "tacit gui"
    parses_as_cli(desktop["Exec"].split()[1:])
    assert (ROOT / "resources" / "icons" / f"{desktop['Icon']}.svg").is_file()
    for size in (48, 128, 256):
        assert (ROOT / "resources" / "icons" / f"{desktop['Icon']}-{size}.png").is_file()
    if shutil.which("desktop-file-validate"):
        done = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


def test_appstream_metadata() -> None:
    root = ET.parse(METAINFO).getroot()  # noqa: S314 - our own file
    assert root.get("type") == "desktop-application"
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("project_license") == "AGPL-3.0-or-later"
    newest = root.find("releases/release")
    assert newest is not None and newest.get("version") == __version__
    if shutil.which("appstreamcli"):
        done = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        issues = [line for line in done.stdout.splitlines() if re.match(r"^[EWI]: ", line)]
        # The id is not reverse-DNS until the project has a domain (packaging/linux/README.md).
        assert [i for i in issues if "cid-desktopapp-is-not-rdns" not in i] == [], done.stdout


# -- the PyInstaller spec and the bundle check -------------------------------------------------
def test_specs_refer_to_what_exists() -> None:
    config = (PACKAGING / "bundle_config.py").read_text()
    texts = [config, *(p.read_text() for p in PACKAGING.rglob("*.spec"))]
    paths = [m for t in texts for m in re.findall(r'ROOT((?: / "[^"]+")+)', t)]
    assert len(paths) >= 6
    for chain in paths:
        path = ROOT.joinpath(*re.findall(r'"([^"]+)"', chain))
        assert path.exists(), path
    for spec in ("tacit.spec", "windows/tacit-windows.spec", "macos/tacit-macos.spec"):
        text = (PACKAGING / spec).read_text()
        assert "import bundle_config as config" in text
        assert "config.hiddenimports()" in text and "config.datas(" in text
        for icon in re.findall(r'SPECPATH\) / "([^"]+)"', text):
            assert (PACKAGING / spec).parent.joinpath(icon).is_file(), icon
    body = config.split("def hiddenimports", 1)[1].split("\ndef ", 1)[0]
    names = re.findall(r'^\s+"([A-Za-z_][\w.]*)",$', body, re.M)
    names += re.findall(r'collect_submodules\("([\w.]+)"\)', body)
    assert "sqlcipher3" in names and "keyring.backends" in names
    for name in names:
        assert importlib.util.find_spec(name.split(".")[0]) is not None, name
    assert (PACKAGING / "tacit_main.py").is_file()


def test_bundle_check_and_make_target() -> None:
    for script in ("check-bundle.sh", "linux/install.sh"):
        done = subprocess.run(["bash", "-n", str(PACKAGING / script)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\npackage:", 1)[1].split("\n\n", 1)[0]
    assert "packaging/tacit.spec" in target and "packaging/check-bundle.sh" in target
    check = (PACKAGING / "check-bundle.sh").read_text()
    assert "selftest" in check and "--version" in check and "TACIT_SMOKE_QUIT=1" in check
    assert "TACIT_INSECURE_TEST_KDF=1" not in check


# -- release hygiene ----------------------------------------------------------------------------
def test_version_lives_in_one_place() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    allowed = {ROOT / "app" / "__init__.py", METAINFO}  # the source; the release history
    text_files = [
        *ROOT.joinpath("app").rglob("*.py"),
        *(p for p in PACKAGING.rglob("*") if p.suffix in {".py", ".spec", ".sh", ".xml",
                                                          ".desktop", ".service", ""}),
        ROOT / "pyproject.toml",
        ROOT / "Makefile",
    ]  # fmt: skip
    literal = re.compile(r"(?<![\d.])" + re.escape(__version__) + r"(?![\d.])")
    found = [
        p for p in text_files
        if p.is_file() and "node_modules" not in p.parts and p not in allowed
        and literal.search(p.read_text(errors="ignore"))
    ]  # fmt: skip
    assert found == []
    assert literal.search((ROOT / "app" / "__init__.py").read_text())
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_licence() -> None:
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()[:200]
    assert 'license = "AGPL-3.0-or-later"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_lock_files_pin_everything_with_hashes(lock: Path) -> None:
    text = lock.read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)(==|>=|<=|~=|@| )?(\S*)", text, re.M)
    assert requirements
    for name, op, version in requirements:
        assert op == "==" and version.rstrip(" \\"), name
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    for block in blocks:
        if block.strip() and not block.startswith("#"):
            assert "--hash=sha256:" in block, block.splitlines()[0]
    pinned = {re.split(r"[=\[]", n)[0].lower().replace("_", "-") for n, _, _ in requirements}
    assert {"sqlcipher3", "argon2-cffi", "cryptography", "keyring"} <= pinned
    if lock.name != "requirements-server.lock":
        assert "pyside6-essentials" in pinned
    if lock.name != "requirements.lock":
        assert ("pyinstaller" in pinned) == (lock.name == "requirements-package.lock")
    assert "fastapi" in pinned and "psycopg" in pinned
    # Every dependency pyproject.toml names for these extras is in the lock (a stale lock
    # after a new dependency fails here: run `make lock`).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {"requirements.lock": ("gui", "server", "dev"),
              "requirements-package.lock": ("gui", "server", "package"),
              "requirements-server.lock": ("server",)}[lock.name]  # fmt: skip
    wanted = [
        *project["dependencies"],
        *(d for e in extras for d in project["optional-dependencies"][e]),
    ]
    for requirement in wanted:
        name = re.split(r"[\s\[<>=~!;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in {lock.name}: run make lock"


def test_platform_notes_are_honest() -> None:
    for system in ("windows", "macos"):
        notes = (PACKAGING / system / "README.md").read_text()
        assert "not been built" in notes
    assert sys.version_info >= (3, 11)
