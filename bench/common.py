"""Helpers for the benchmarks: interleaved timing, statistics, machine facts; the engine
side of the vault benchmark (connections set up as db.connect sets them up, the SQL the
store runs, and the raw baselines that execute it); and a deterministic synthetic
corpus of clinical-ish notes with a search-as-you-type query mix.

Invariants:
- timing uses ``time.perf_counter_ns`` with the garbage collector off inside timed loops
  (as ``timeit`` does), and the contenders of one comparison run alternately, in an order
  that rotates every repetition, so drift (thermal, page cache, neighbours on a VM) hits
  all of them alike;
- the corpus is a pure function of the seed: the same seed gives the same clients, notes,
  ids and query mix, so every backend gets identical data and identical queries.

The corpus is synthetic (no real clinical text exists here, nor should it): words are
drawn from a Zipf-Mandelbrot distribution over a ranked vocabulary of function words,
clinical words and a long tail of generated rare words (names, places, medications one
client mentions), so term frequencies look like natural text: a few terms occur in most
notes, most terms in very few.
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from app.vault import store
from app.vault.crypto import DbKey
from app.vault.db import CONNECTION_PRAGMAS, key_pragma, memory_security_wanted
from app.vault.models import MARK_END, MARK_START, Note, NoteSummary
from app.vault.schema import MIGRATIONS

# -- timing ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress goes to stderr so ``--json`` leaves stdout to the one JSON document."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interleave(
    contenders: dict[str, Callable[[int], object]], reps: int, *, warmup: int = 0
) -> dict[str, list[int]]:
    """Run each contender ``reps`` times with the input index i = 0..reps-1, alternating
    between contenders within every repetition (rotating who goes first). Returns the
    nanoseconds of every timed call, per contender. Warm-up calls are not timed."""
    names = list(contenders)
    times: dict[str, list[int]] = {name: [] for name in names}
    for i in range(warmup):
        for name in names:
            contenders[name](i)
    clock = time.perf_counter_ns
    gc_was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(reps):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                call = contenders[name]
                start = clock()
                call(i)
                times[name].append(clock() - start)
    finally:
        if gc_was_on:
            gc.enable()
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (0 < pct < 100) of at least one value."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * pct / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


# -- engines and baselines --------------------------------------------------------------
PAGE = 50  # notes per list page
SEARCH_LIMIT = 20  # VaultService.search's default
# The statements RecordStore runs (app/vault/store.py), built from its column lists so
# the baselines select and insert exactly the columns the service does (a column the
# store's INSERT leaves out, like signed_at, is bound as NULL: the same row results).
# The f-strings only splice in those constant column lists; values are bound parameters.
# GET_NOTE, SEARCH and the AUDIT_* statements are copies of the store's text: keep them
# in step.
CLIENT_COLS = [c.strip() for c in store._CLIENT_COLS.split(",")]
NOTE_COLS = [c.strip() for c in store._NOTE_COLS.split(",")]
SUMMARY_COLS = [c.strip() for c in store._SUMMARY_COLS.split(",")]
INSERT_CLIENT = (
    f"INSERT INTO clients ({', '.join(CLIENT_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(CLIENT_COLS))})"
)
INSERT_NOTE = (
    f"INSERT INTO notes ({', '.join(NOTE_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(NOTE_COLS))})"
)
LIST_BY_CLIENT = (
    f"SELECT {', '.join(SUMMARY_COLS)} FROM notes WHERE client_id = ? "  # noqa: S608
    "ORDER BY session_date DESC, seq DESC LIMIT ? OFFSET ?"
)
GET_NOTE = (
    f"SELECT {', '.join(NOTE_COLS)}, (SELECT group_concat(tag, char(31)) FROM "  # noqa: S608
    "(SELECT tag FROM note_tags WHERE note_id = notes.id ORDER BY tag)) "
    "FROM notes WHERE id = ?"
)
# Search: title matches newest first, then body matches newest first (store.search).
SEARCH = (
    "SELECT n.id, n.client_id, n.kind, n.title, n.session_date, "
    "snippet(notes_fts, -1, ?, ?, '…', 12) "
    "FROM notes_fts JOIN notes n ON n.fts_key = notes_fts.rowid "
    "WHERE notes_fts MATCH ? ORDER BY notes_fts.rowid LIMIT ?"
)
# The audit entry every change writes in its transaction (app/vault/audit.py).
AUDIT_LAST = "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1"
AUDIT_INSERT = (
    "INSERT INTO audit (seq, at, actor, device, action, record_type, record_id, "
    "client_id, detail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
AUDIT_HEAD = (
    "INSERT INTO meta (key, value) VALUES ('audit_head', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def open_sqlcipher(path: Path, key: DbKey, *, memory_security: bool | None = None) -> Any:
    """A raw sqlcipher3 connection set up exactly as db.connect sets up the vault's:
    ``cipher_memory_security`` as ``TACIT_MEMORY_SECURITY`` asks (``memory_security=False``
    forces it off: the setup child; see ``populate``)."""
    conn = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    if memory_security_wanted() if memory_security is None else memory_security:
        conn.execute("PRAGMA cipher_memory_security = ON")
    conn.execute(key_pragma(key))
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    for pragma in CONNECTION_PRAGMAS:
        conn.execute(pragma)
    return conn


def open_sqlite3(path: Path) -> Any:
    """Stdlib sqlite3, unencrypted, with the same pragmas minus the cipher ones."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    for pragma in CONNECTION_PRAGMAS:
        conn.execute(pragma)
    return conn


def apply_schema(conn: Any) -> None:
    """schema.MIGRATIONS, one transaction per migration, as Database.migrate runs them."""
    for version, statements in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")


def as_row(columns: list[str], values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values.get(c) for c in columns)


def bulk_load(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> float:
    """Setup only: many rows in one transaction (returns the seconds it took)."""
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - start


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# -- vocabulary --------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


# Ranked roughly by how often they occur in progress notes; the most frequent first.
FUNCTION_WORDS = _words("""
the and to of a in was that she he they with for is on her his about as at not this be
had have it but were reports client session would from or their we more when which also
some been will than feeling week during after felt noted stated described today since
into over very discussed continue plan reported her him them our its has there what how
""")

CLINICAL_WORDS = _words("""
anxiety depression mood sleep insomnia panic worry rumination avoidance trauma grief anger
shame guilt stress affect euthymic dysthymic anhedonia appetite energy concentration
motivation irritability hopelessness suicidal ideation self harm safety coping skills
mindfulness breathing exposure hierarchy cognitive behavioral restructuring thoughts
beliefs schema core automatic distortions catastrophizing homework journaling medication
sertraline fluoxetine escitalopram bupropion quetiapine lamotrigine lithium prazosin
psychiatrist referral family mother father partner spouse children daughter son sibling
sister brother work job supervisor school relationship conflict boundaries attachment
transference countertransference alliance rapport insight judgment orientation oriented
alert cooperative appearance groomed eye contact speech normal rate volume tone thought
process linear directed tangential content hallucinations delusions denies endorses
nightmares flashbacks hypervigilance startle dissociation numbing triggers ptsd gad mdd
adhd ocd bipolar phq score scores baseline improvement progress goals objectives
interventions dbt cbt emdr validation psychoeducation reframing values acceptance
tolerance distress regulation emotion interpersonal effectiveness chain analysis behavior
response urges alcohol cannabis substance use drinking sober relapse cravings exercise
walking routine diet weight pain chronic headaches fatigue medical appointment primary
care physician labs thyroid pregnancy postpartum divorce custody loss bereavement
anniversary holiday isolation loneliness friends social support church community finances
housing unemployment stressor stressors deadline exam performance perfectionism
procrastination esteem worth critical inner voice compassion grounding techniques
protective factors risk low moderate high contract crisis hotline emergency
hospitalization discharge follow up next weekly biweekly monthly frequency duration
minutes telehealth video office late cancelled rescheduled attended engaged tearful
smiling restless fidgeting calm flat constricted congruent labile bright anxious sad angry
frustrated overwhelmed hopeful motivated tired exhausted worried ashamed guilty numb
disconnected safe unsafe boss coworker roommate dog cat grandmother grandfather uncle aunt
wedding funeral move moved apartment commute car accident injury surgery diagnosis
prognosis adherence side effects dose increased decreased titration refill pharmacy
insurance authorization intake assessment treatment modality formulation hypothesis
pattern patterns childhood adolescence memories memory abuse neglect bullying
abandonment rejection criticism approval people pleasing assertiveness communication
argument argued apologized repair intimacy sexual identity gender pronouns coming out
culture immigration language parenting toddler teenager bedtime screen time gaming phone
social media news fear phobia flying heights spiders driving agoraphobia crowds public
speaking presentation interview promotion fired resigned retired volunteer hobby painting
music guitar running yoga meditation prayer nature hiking garden cooking reading
""")

_ONSETS = [
    *_words("b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p pl pr qu r s sc sh sk"),
    *_words("sl sm sn sp st str t th tr v w wh z"),
    "",
]
_VOWELS = _words("a e i o u a e i o u a e i o u y ai au ea ee ie oa oo ou")
_CODAS = _words("b ck d f g k l ld lt m n nd ng nk nt p r rd rn rt s ss st t x z")
_CODAS += ["", "", "", ""]  # open syllables are common


def _tail_words(rng: random.Random, count: int, exclude: set[str]) -> list[str]:
    """Generated rare words (think surnames, street names, a medication only one client
    takes): 2-3 syllables of onset + vowel + coda, 4-10 letters, unique, deterministic.
    Their first letters are about as varied as English words', so a typed 3-letter prefix
    expands to tens of terms (a few hundred for the likes of "str"), not thousands."""
    words: list[str] = []
    seen = set(exclude)
    while len(words) < count:
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            for _ in range(rng.choice((2, 2, 2, 3)))
        )
        if 4 <= len(word) <= 10 and word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(frozen=True, slots=True)
class NoteTemplate:
    id: str
    name: str
    kind: str
    sections: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientRow:
    id: str
    name: str
    dob: str
    created_at: str

    def values(self) -> dict[str, Any]:
        """Column -> value; columns not named here (email, phone, ...) are NULL."""
        return {"id": self.id, "name": self.name, "dob": self.dob, "status": "active",
                "created_at": self.created_at, "updated_at": self.created_at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NoteRow:
    id: str
    client_id: str
    kind: str
    template: str
    title: str
    session_date: str
    body: str
    created_at: str

    def values(self, author: str) -> dict[str, Any]:
        """Column -> value, as RecordStore.create_note writes a new note; columns not
        named here are NULL."""
        return {"id": self.id, "client_id": self.client_id, "kind": self.kind,
                "template": self.template, "title": self.title,
                "session_date": self.session_date, "body": self.body, "author": author,
                "revision": 1, "created_at": self.created_at,
                "updated_at": self.created_at}  # fmt: skip


_FIRST = "Ana Ben Chloe Dev Elif Farah Gus Hana Ivan Jo Kai Lena Milo Nia Omar Pia Raj Sol"
_LAST = "Adler Brandt Costa Dimitri Evans Fischer Garcia Haddad Ito Jensen Kowalski Lind"


@dataclass
class Corpus:
    """Deterministic synthetic clients, notes and search queries."""

    notes: int
    templates: Sequence[NoteTemplate]
    seed: int = 20260105
    mean_words: int = 220
    tail_size: int = 30_000
    vocabulary: list[str] = field(init=False)
    clients: list[ClientRow] = field(init=False)
    note_counts: dict[str, int] = field(init=False)
    samples: list[str] = field(init=False)  # a reservoir of bodies for building queries
    note_ids: list[str] = field(init=False)  # every generated note's id, in order

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        clinical = list(CLINICAL_WORDS)
        rng.shuffle(clinical)  # which clinical word is the most frequent is arbitrary
        base = list(dict.fromkeys(FUNCTION_WORDS + clinical))
        self._content = [w for w in base if w not in set(FUNCTION_WORDS)]
        numbers = [str(n) for n in range(1, 31)]
        self.vocabulary = base + numbers + _tail_words(rng, self.tail_size, set(base))
        # Zipf-Mandelbrot weights: f(r) ~ 1 / (r + 2.7) ** 1.07, cumulative for choices().
        self._cum = list(
            itertools.accumulate(1.0 / (r + 2.7) ** 1.07 for r in range(len(self.vocabulary)))
        )
        n_clients = max(10, self.notes // 200)
        self._activity = [rng.paretovariate(1.3) for _ in range(n_clients)]
        self.clients = []
        for i in range(n_clients):
            name = f"{rng.choice(_FIRST.split())} {rng.choice(_LAST.split())} {i}"
            dob = f"{rng.randint(1950, 2008)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            self.clients.append(
                ClientRow(_uuid(rng), name, dob, "2018-01-01T09:00:00.000Z")
            )  # fmt: skip
        self.note_counts = {c.id: 0 for c in self.clients}
        self.samples = []
        self.note_ids = []

    # -- notes -----------------------------------------------------------------------
    def words(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.vocabulary, cum_weights=self._cum, k=count)

    def body(self, rng: random.Random, template: NoteTemplate, n_words: int) -> str:
        words = self.words(rng, n_words)
        sections = template.sections or ("",)
        per = max(1, len(words) // len(sections))
        parts: list[str] = []
        for s, heading in enumerate(sections):
            chunk = words[s * per : (s + 1) * per] if s < len(sections) - 1 else words[s * per :]
            sentences: list[str] = []
            i = 0
            while i < len(chunk):
                step = rng.randint(5, 17)
                sentence = " ".join(chunk[i : i + step])
                sentences.append(sentence[:1].upper() + sentence[1:] + ".")
                i += step
            text = " ".join(sentences)
            parts.append(f"## {heading}\n\n{text}\n" if heading else text + "\n")
        return "\n".join(parts)

    def generate(self, chunk: int = 5000) -> Iterator[list[NoteRow]]:
        """All notes in chronological order (as a clinician writes them), in chunks."""
        rng = random.Random(self.seed + 1)
        by_id = {t.id: t for t in self.templates}
        progress = [t for t in self.templates if t.kind in ("progress", "psychotherapy")]
        start_day = 17532  # 2018-01-01 as days since the epoch
        span = 8 * 365
        stride = max(1, self.notes // 500)
        batch: list[NoteRow] = []
        for i in range(self.notes):
            client = rng.choices(self.clients, weights=self._activity)[0]
            seen = self.note_counts[client.id]
            if seen == 0:
                template = by_id["intake"]
            else:
                roll = rng.random()
                if roll < 0.03:
                    template = by_id["treatment_plan"]
                elif roll < 0.06:
                    template = by_id["mse"]
                else:
                    template = rng.choice(progress)
            self.note_counts[client.id] = seen + 1
            day = start_day + i * span // max(1, self.notes)
            session = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
            n_words = int(min(900, max(40, rng.lognormvariate(0, 0.45) * self.mean_words)))
            if template.kind == "intake":
                n_words *= 3
            if rng.random() < 0.2:
                title = f"Session {seen + 1}: " + " ".join(self.words(rng, 3))
            else:
                title = f"{template.name} {session}"
            body = self.body(rng, template, n_words)
            if i % stride == 0:
                self.samples.append(body)
            note_id = _uuid(rng)
            self.note_ids.append(note_id)
            batch.append(
                NoteRow(note_id, client.id, template.kind, template.id, title, session,
                        body, f"{session}T17:00:00.000Z")
            )  # fmt: skip
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def fresh(self, count: int, clients: Sequence[str]) -> list[NoteRow]:
        """New progress notes (id left empty) for the timed creates, dated today."""
        rng = random.Random(self.seed + 4)
        by_id = {t.id: t for t in self.templates}
        out: list[NoteRow] = []
        for _ in range(count):
            template = by_id[rng.choice(("soap", "dap", "birp", "process"))]
            words = int(rng.lognormvariate(0, 0.45) * self.mean_words)
            body = self.body(rng, template, words)
            out.append(NoteRow("", rng.choice(clients), template.kind, template.id,
                               f"{template.name} 2026-01-05", "2026-01-05", body,
                               "2026-01-05T17:00:00.000Z"))  # fmt: skip
        return out

    # -- queries ---------------------------------------------------------------------
    def query_mix(self, count: int) -> list[str]:
        """What people type into the search box, keystroke by keystroke (search as you
        type, with some keystrokes swallowed by the UI's debounce): from the third
        character on, every prefix of a target query. Targets: common clinical words,
        mid-frequency and rare words (names), two words seen together in one note, and
        the occasional quoted phrase. Call after ``generate`` (uses its samples)."""
        rng = random.Random(self.seed + 2)
        vocab = self.vocabulary
        base = len(FUNCTION_WORDS) + len(self._content) + 30
        queries: list[str] = []
        while len(queries) < count:
            roll = rng.random()
            if roll < 0.30:
                target = rng.choice(self._content)
            elif roll < 0.50:
                target = vocab[rng.randrange(base, base + 3000)]
            elif roll < 0.65:
                target = vocab[rng.randrange(base + 3000, len(vocab))]
            else:
                words = [w.strip(".#").lower() for w in rng.choice(self.samples).split()]
                words = [w for w in words if len(w) > 3 and w not in FUNCTION_WORDS]
                if len(words) < 2:
                    continue
                first, second = rng.sample(words, 2)
                target = f"{first} {second}"
                if roll > 0.92:
                    at = rng.randrange(len(words) - 1)
                    target = f'"{words[at]} {words[at + 1]}"'
            # From the third letter typed (a leading quote is not a letter) to the end.
            for end in range(3 + target.startswith('"'), len(target) + 1):
                if end == len(target) or rng.random() > 0.3:
                    queries.append(target[:end])
        return queries[:count]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_MAC = bytes(range(32))


def _has_audit(conn: Any) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone() is not None


class RawBackend:
    """The engine alone doing what each service operation needs, nothing else: no id
    resolution, no validation, no record objects (rows are fetched and dropped)."""

    def __init__(self, conn: Any, *, audit: bool = True) -> None:
        self.conn = conn
        self.audit = audit and _has_audit(conn)

    def create(self, row: tuple[Any, ...]) -> None:
        # One transaction per note, BEGIN IMMEDIATE … COMMIT, as Database.transaction,
        # with the same audit statements (the MAC is a constant: no Python crypto here).
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT_NOTE, row)
        if self.audit:
            last = conn.execute(AUDIT_LAST).fetchone()
            seq = 1 if last is None else last[0] + 1
            conn.execute(AUDIT_INSERT, (seq, row[-2], "Clinician", "device", "create", "note",
                                        row[0], row[1], row[2], _MAC))  # fmt: skip
            conn.execute(AUDIT_HEAD, (f"{seq}:{_MAC.hex()}",))
        conn.execute("COMMIT")

    def list_page(self, client_id: str, offset: int) -> list[Any]:
        rows: list[Any] = self.conn.execute(LIST_BY_CLIENT, (client_id, PAGE, offset)).fetchall()
        return rows

    def open(self, note_id: str) -> tuple[Any, Any]:
        row = self.conn.execute(GET_NOTE, (note_id,)).fetchall()
        return row, ()

    def search(self, match: str) -> list[Any]:
        title = f"{{title}} : ({match})"
        rows: list[Any] = self.conn.execute(
            SEARCH, (MARK_START, MARK_END, title, SEARCH_LIMIT)
        ).fetchall()
        if len(rows) < SEARCH_LIMIT:
            seen = {r[0] for r in rows}
            more = self.conn.execute(SEARCH, (MARK_START, MARK_END, match, SEARCH_LIMIT))
            rows += [r for r in more.fetchall() if r[0] not in seen][: SEARCH_LIMIT - len(rows)]
        return rows


class LayeredBackend(RawBackend):
    """For attributing the service's overhead (``<op>_breakdown_us``): the raw engine plus
    the id lookup RecordStore.resolve_id runs first (same statement), and optionally the
    record objects the service returns. Not a baseline; the ratios use RawBackend."""

    def __init__(self, conn: Any, *, records: bool) -> None:
        super().__init__(conn)
        self.records = records

    def _resolve(self, table: str, ident: str) -> None:
        sql = f"SELECT id FROM {table} WHERE id >= ? AND id < ? LIMIT 2"  # noqa: S608
        self.conn.execute(sql, (ident, ident + "\uffff")).fetchall()

    def list_page(self, client_id: str, offset: int) -> list[Any]:
        self._resolve("clients", client_id)
        rows = super().list_page(client_id, offset)
        if self.records:
            return [NoteSummary(*r) for r in rows]
        return rows

    def open(self, note_id: str) -> tuple[Any, Any]:
        self._resolve("notes", note_id)
        row, _ = super().open(note_id)
        if self.records:
            tags = tuple(row[0][-1].split("\x1f")) if row[0][-1] else ()
            return Note(*row[0][:-1], tags), ()
        return row, ()
