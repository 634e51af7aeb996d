"""What every PyInstaller spec of Tacit bundles (packaging/tacit.spec for Linux,
packaging/windows/tacit-windows.spec, packaging/macos/tacit-macos.spec): the hidden
imports, data files and exclusions, in one place so the platforms cannot drift apart.

Invariants: the bundle carries every module of ``app`` (the CLI imports the desktop
app, the PDF export and the sync server lazily), the data files the code looks up under
``sys._MEIPASS`` (resources/, the sync server's web page), and nothing from the dev
tools. Imported by the specs only, at build time (PyInstaller is not a run-time
dependency).
"""

from __future__ import annotations

import ctypes.util
import sys
from pathlib import Path

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "packaging" / "tacit_main.py")


def hiddenimports() -> list[str]:
    """Modules PyInstaller cannot find by reading imports."""
    return [
        *collect_submodules("app"),
        # keyring finds its backends through entry points at run time; SecretService
        # talks D-Bus through secretstorage and jeepney.
        *collect_submodules("keyring.backends"),
        "secretstorage",
        "jeepney",
        "jeepney.io.blocking",
        "sqlcipher3",
        "sqlcipher3.dbapi2",
        "_argon2_cffi_bindings",
        "_cffi_backend",
        # uvicorn names its protocol and loop modules as strings.
        *collect_submodules("uvicorn"),
        "psycopg_binary",
        "zxcvbn",
    ]


def datas(*, linux_desktop_files: bool = False) -> list[tuple[str, str]]:
    """Data files as (source, folder in the bundle)."""
    found = [
        (str(ROOT / "resources"), "resources"),
        (str(ROOT / "app" / "sync" / "server" / "web"), "app/sync/server/web"),
        (str(ROOT / "LICENSE"), "."),
        *copy_metadata("keyring"),  # its backends' entry points
    ]
    if linux_desktop_files:  # for packaging/linux/install.sh (icons come with resources/)
        found += [
            (str(ROOT / "packaging" / "linux" / "tacit.desktop"), "share"),
            (str(ROOT / "packaging" / "linux" / "tacit.metainfo.xml"), "share"),
        ]
    return found


def binaries() -> list[tuple[str, str]]:
    """Libraries loaded with dlopen() that PyInstaller cannot see: on Linux, Qt's xcb
    plugin needs libxcb-cursor (Qt >= 6.5) and finds it only at run time."""
    if not sys.platform.startswith("linux"):
        return []
    name = ctypes.util.find_library("xcb-cursor")
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                   "/usr/lib"):  # fmt: skip
        if name and (Path(folder) / name).exists():
            return [(str(Path(folder) / name), ".")]
    return []


EXCLUDES = [
    "tkinter",
    "pytest",
    "hypothesis",
    "playwright",
    "mypy",
    "IPython",
    # Build tools PyInstaller would otherwise pull in (cffi's build helper imports
    # setuptools), costing every start a runtime hook that imports setuptools.
    "setuptools",
    "pkg_resources",
    "distutils",
    "pip",
    # The server's speed-ups (uvicorn falls back to h11 and asyncio without them): 15 MB
    # a desktop install does not need; servers install from the server lock instead.
    "uvloop",
    "httptools",
    # Qt modules Tacit never uses (PySide6-Essentials ships them).
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.QtQuickControls2",
    "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtNetwork",
    "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtDesigner",
    "PySide6.QtUiTools",
    "PySide6.QtConcurrent",
    "PySide6.QtXml",
]


def drop_translations(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Qt's own translations (7 MB) out: Tacit's interface is English only."""
    return [e for e in entries if "/translations/" not in e[0].replace("\\", "/")]
