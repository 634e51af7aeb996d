"""Desktop-app responsiveness on a large vault: ``python -m bench.ui --notes N --json``.

1. Populate (in a child process, so its memory does not count): a vault with N notes,
   all on the first client in the list (the worst case: the client the main window opens
   on) plus 19 clients without notes; bodies are ~120 words drawn from a clinical-ish
   vocabulary so the FTS index is realistic. Notes go in through ``VaultService`` one by
   one (a transaction each), which takes a few minutes for 100,000; ``--dir`` keeps the
   vault for later runs.
2. Measure, in this process, offscreen, the real windows:
   - ``start_to_unlock_window_ms``: QApplication created → unlock window shown and painted;
   - ``unlock_to_main_window_ms``: the KDF finished (``service.unlock`` returned in the
     worker) → main window shown with the first client's first page of notes, rendered.
     The app builds the empty main window while the unlock screen waits for the
     passphrase (the bench pauses 0.3 s as a user would); ``..._cold_ms`` is an unlock
     straight after a lock, when the window is built after the KDF;
   - ``search_keystroke_ms``: median keystroke in the search field → highlighted results
     rendered (includes the 150 ms debounce, reported as ``search_debounce_ms``);
     ``search_ui_block_ms_max`` is the longest the UI thread itself was busy for it;
   - ``scroll_page_ms_max``: the slowest "scroll to the bottom → next page fetched and
     rendered" of 20;
   - ``rss_mb``: resident memory at the end (``rss_peak_mb``: the peak).
The insecure test KDF is used (the KDF's own ~1 s is excluded from the figures by
design); no keychain. Figures are printed as one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["TACIT_INSECURE_TEST_KDF"] = "1"

PASSPHRASE = "bench passphrase, long enough, 42 lanterns"
FIRST_CLIENT = "Aaron Bench"
_COMMON = (
    "the a and to of in is was that with for on as at by from this it be has had but not "
    "they she he we her his their there about more less than when after before during "
    "session week today reports reported said feels felt says noted discussed also very"
)
_CLINICAL = (
    "anxiety sleep routine therapy worry stress family mood affect breathing exercise "
    "homework relapse coping skills trauma grief panic avoidance exposure motivation "
    "goals progress assessment appetite energy concentration rumination relationship "
    "boundaries anger mindfulness journaling medication adherence referral safety "
    "supports school partner conflict insight resistance alliance transference hopeful"
)
_SYLLABLES = "ka lo mi nu pe ra si to vu be do fa gi ho ju ke li mo"


def vocabulary(rng: random.Random) -> tuple[list[str], list[str]]:
    """Function words, and ~3,000 content terms (clinical words first, then made-up
    ones) drawn with a skewed distribution, so a term matches a realistic share of
    notes rather than all of them."""
    syllables = _SYLLABLES.split()
    made_up = {
        "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(4000)
    }
    return _COMMON.split(), _CLINICAL.split() + sorted(made_up)[:3000]


def note_body(rng: random.Random, common: list[str], terms: list[str]) -> str:
    words = []
    for _ in range(120):
        if rng.random() < 0.6:
            words.append(rng.choice(common))
        else:
            words.append(terms[int(len(terms) * rng.random() ** 3)])
    return " ".join(words)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MiB."""
    current = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        current = peak
    return round(current, 1), round(peak, 1)


# -- populate (child process) ----------------------------------------------------------
def populate(directory: Path, notes: int) -> dict[str, Any]:
    from app.vault.crypto import Passphrase
    from app.vault.keychain import NoKeychain
    from app.vault.service import VaultService

    service = VaultService(directory, keychain=NoKeychain())
    if service.exists():
        service.unlock(Passphrase.from_str(PASSPHRASE))
    else:
        service.create(Passphrase.from_str(PASSPHRASE), clinician="Bench Clinician")
    clients = service.list_clients()
    if not clients:
        first = service.add_client(FIRST_CLIENT)
        for i in range(19):
            service.add_client(f"Client {i:02d} Example")
    else:
        first = next(c for c in clients if c.name == FIRST_CLIENT)
    have = service.count_notes(first.id)
    rng = random.Random(1234 + have)
    common, terms = vocabulary(random.Random(99))
    templates = ("soap", "dap", "birp", "girp", "process", "intake", "mse")
    started = time.perf_counter()
    for i in range(have, notes):
        body = note_body(rng, common, terms)
        day = f"{2000 + i // 336:04d}-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}"
        service.create_note(first.id, templates[i % len(templates)], body=body, session_date=day)
    seconds = time.perf_counter() - started
    total = service.count_notes(first.id)
    service.lock()
    return {"notes": total, "populate_s": round(seconds, 1), "inserted": max(0, notes - have)}


# -- measure (this process) ------------------------------------------------------------
def _spin(app: Any, predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the expected state")
        app.processEvents()
        time.sleep(0.0005)


def _unlock(app: Any, controller: Any, kdf_done: list[float]) -> tuple[float, Any]:
    """Unlock through the unlock window; ms from the KDF's end to the main window shown
    with its first page of notes and rendered once."""
    kdf_done.clear()
    controller.unlock_window.passphrase.setText(PASSPHRASE)
    controller.unlock_window.unlock()
    _spin(app, lambda: controller.main_window is not None)
    main = controller.main_window
    app.processEvents()
    main.grab()
    return (time.perf_counter() - kdf_done[0]) * 1000, main


def measure(directory: Path) -> dict[str, Any]:
    t_start = time.perf_counter()
    from app.ui.application import create_application
    from app.ui.controller import AppController
    from app.ui.prefs import PreferenceStore
    from app.ui.qt import QSettings, QTimer
    from app.vault.keychain import NoKeychain
    from app.vault.service import VaultService

    import_ms = (time.perf_counter() - t_start) * 1000
    t0 = time.perf_counter()
    app = create_application([])
    settings = QSettings(str(directory / "bench-settings.ini"), QSettings.Format.IniFormat)
    service = VaultService(directory, keychain=NoKeychain())
    kdf_done: list[float] = []
    real_unlock = service.unlock

    def timed_unlock(passphrase: Any) -> None:
        real_unlock(passphrase)
        kdf_done.append(time.perf_counter())

    service.unlock = timed_unlock  # type: ignore[method-assign]
    controller = AppController(app, service, PreferenceStore(settings), install_hooks=False)
    controller.start()
    unlock_window = controller.unlock_window
    app.processEvents()
    unlock_window.grab()  # one full render
    start_to_unlock = (time.perf_counter() - t0) * 1000

    # The user takes a moment to type the passphrase; meanwhile the app builds the
    # (empty) main window it will show, as it does for real during the ~1 s KDF.
    pause = time.monotonic() + 0.3
    _spin(app, lambda: time.monotonic() > pause)
    unlock_to_main, main = _unlock(app, controller, kdf_done)
    loaded_rows = main.notes_model.rowCount()

    # Search as you type: one word, a keystroke at a time (after the first two).
    latencies: list[float] = []
    blocks: list[float] = []
    ticks: list[float] = []  # a 5 ms heartbeat on the UI thread: gaps are stalls
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    heartbeat.start()
    field = main.search_field
    field.setFocus()
    for word in ("therapy", "sleep routine", "mindful"):
        field.clear()
        app.processEvents()
        for ch in word:
            done: list[int] = []
            main.search.results_ready.connect(done.append)
            t_key = time.perf_counter()
            field.insert(ch)
            blocks.append((time.perf_counter() - t_key) * 1000)
            if len(field.text().strip()) < 3:
                main.search.results_ready.disconnect(done.append)
                continue
            _spin(app, lambda d=done: bool(d))
            t_deliver = time.perf_counter()
            app.processEvents()
            main.search_view.viewport().grab()
            blocks.append((time.perf_counter() - t_deliver) * 1000)
            latencies.append((time.perf_counter() - t_key) * 1000)
            main.search.results_ready.disconnect(done.append)
    field.clear()
    app.processEvents()
    heartbeat.stop()
    stall = max((b - a) * 1000 for a, b in itertools.pairwise(ticks))

    # Scrolling: jump to the bottom of what is loaded; the view fetches the next page.
    scroll: list[float] = []
    view = main.notes_view
    for _ in range(20):
        before = main.notes_model.rowCount()
        t_scroll = time.perf_counter()
        view.scrollToBottom()
        _spin(app, lambda b=before: main.notes_model.rowCount() > b or not main.notes_model
              .canFetchMore())  # fmt: skip
        view.viewport().grab()
        scroll.append((time.perf_counter() - t_scroll) * 1000)
    rows_after_scroll = main.notes_model.rowCount()

    # Cold: unlock right after a lock, before the spare window is built.
    controller.lock()
    unlock_cold, main = _unlock(app, controller, kdf_done)

    current, peak = rss_mb()
    controller.shutdown()
    return {
        "qt_import_ms": round(import_ms, 1),
        "start_to_unlock_window_ms": round(start_to_unlock, 1),
        "unlock_to_main_window_ms": round(unlock_to_main, 1),
        "unlock_to_main_window_cold_ms": round(unlock_cold, 1),
        "first_page_rows": loaded_rows,
        "search_keystroke_ms": round(statistics.median(latencies), 1),
        "search_keystroke_ms_max": round(max(latencies), 1),
        "search_debounce_ms": main.search.timer.interval(),
        "search_ui_block_ms_max": round(max(blocks), 1),
        "ui_max_stall_while_searching_ms": round(stall, 1),
        "scroll_page_ms_max": round(max(scroll), 1),
        "rows_after_scroll": rows_after_scroll,
        "rss_mb": current,
        "rss_peak_mb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tacit desktop-app benchmark")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the populated vault here")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--populate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.populate_only:
        print(json.dumps(populate(args.dir, args.notes)))
        return 0

    with tempfile.TemporaryDirectory(prefix="tacit-bench-ui-") as scratch:
        directory = args.dir or Path(scratch) / "vault"
        child = subprocess.run(
            [sys.executable, "-m", "bench.ui", "--populate-only", "--dir", str(directory),
             "--notes", str(args.notes)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        populated = json.loads(child.stdout.strip().splitlines()[-1])
        result = {**populated, **measure(directory)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
