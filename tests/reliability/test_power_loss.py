"""RELIABILITY.md 5.2, group B: power-loss-like crash images, without root or LD_PRELOAD.

A kill -9 is not a power cut: the kernel still writes back what the process wrote. These
tests work on copies of the database and its `-wal` taken while the whole process group
is frozen (SIGSTOP), from which what a power cut may lose is then removed.

- B0 `test_b0_frozen_images`: images of `durable run many` (durability=full) frozen at
  random moments; each copy is resumed to its end with durable's engine; the A1 criteria
  hold on every one (every result once, right, and only the tasks without a committed
  result run again). Mapping: RELIABILITY freezes, copies, then SIGKILLs; the copy is the
  same if the group is thawed instead, so one run yields several images (the last one is
  followed by the SIGKILL).
- B1 `test_b1_lost_tail_normal`: images under durability=normal, 5 variants each (WAL cut
  at a random byte / a random frame boundary at or past the last sync point, 512 bytes
  overwritten in the unsynced tail, intact, cut exactly at the sync point). Every
  variant is checked; the PR tier resumes one variant per image (20, the kind rotating
  with the seed), the nightly tier all 1,000.
- B2 `test_b2_lost_tail_full_nightly`: the same under durability=full, cut only past the
  last commit (FULL syncs the WAL at every commit); every ACK before the freeze survives.
- B5 `test_b5_deleted_wal`: the negative control: a deleted `-wal` (see its docstring
  for what durable can and cannot see).
- B3 (strace replay) and B4 (LazyFS, VM reset, dm-flakey) are not automated here.

The sync point (what a power cut cannot take away). durable leaves checkpoints to
SQLite's automatic checkpoint (no hook to record it), so the oracle reads SQLite's own
record of it from the frozen `-shm` (used only to analyse the image, never copied into
it): under NORMAL the WAL is fsynced only when a checkpoint starts, up to the frame it
is about to back-fill (`nBackfillAttempted` in the WAL-index's checkpoint info, for the
WAL generation whose salts the index holds); database pages copied back come from frames
below it. Cutting the log below that point would pair a database file holding pages of
commits with a log that no longer holds them: an impossible state, a false corruption.
Under FULL every commit is fsynced before COMMIT returns, so the sync point is the end of
the last valid commit frame (salts match the header, cumulative checksums hold).

Every recovered variant must pass `check_invariants`, and its history (the append-only
`states` table) must be a prefix of the history the source run went on to write: the
state a power cut leaves is some earlier committed state, never a mix.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    CAMPAIGN,
    FLOWS,
    MANY_SLUGS,
    Campaign,
    durable_command,
    durable_env,
    expected_many,
    flow_run_state,
    freeze,
    kill9,
    pause,
    query,
    read_acks,
    read_executions,
    read_results,
    snapshot,
    thaw,
)
from tests.reliability.invariants import (
    check_connection,
    check_invariants,
    open_read_only,
)

WAL_HEADER = 32
FRAME_HEADER = 24
SHM_BACKFILL_ATTEMPTED = 128
"""Offset of nBackfillAttempted in the WAL-index (-shm): after two 48-byte copies of the
index header, the checkpoint info's nBackfill, aReadMark[5] and aLock[8]."""
SHM_SALTS = 32
"""Offset of the salts in the WAL-index header (which generation of the log it is about)."""
SOURCE_SCALE = "0.3"
"""Task bodies of the imaged runs wait 1.5-9 ms: a run lasts ~1.5 s, time enough for
20 freezes, and commits come as densely as with the full 5-30 ms."""
FREEZE_GAP = 0.12
"""Seconds: the freezes of one run come U(0, FREEZE_GAP) apart."""
RESUME_SCALE = "0"
"""Task bodies of a resumed image do not wait: the image is the point, not the timing."""


# The WAL file format -------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    offset: int
    pgno: int
    commit: int
    """The database size in pages after this commit; 0 for a non-commit frame."""
    valid: bool
    """Salts match the header's and the cumulative checksum holds (SQLite's test)."""


@dataclass(frozen=True)
class Wal:
    size: int
    page_size: int
    salts: bytes
    frames: list[Frame]

    @property
    def frame_size(self) -> int:
        return FRAME_HEADER + self.page_size

    def last_commit_end(self) -> int:
        """The end of the last valid commit frame (the header's end if none)."""
        end = WAL_HEADER
        for frame in self.frames:
            if not frame.valid:
                break
            if frame.commit:
                end = frame.offset + self.frame_size
        return end

    def boundaries(self, start: int) -> list[int]:
        """Frame boundaries at or past `start`, up to the file's end."""
        first = max(0, -(-(start - WAL_HEADER) // self.frame_size))
        return [
            WAL_HEADER + i * self.frame_size
            for i in range(first, (self.size - WAL_HEADER) // self.frame_size + 1)
        ]


def _checksum(data: bytes, big_endian: bool, s1: int, s2: int) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


def parse_wal(data: bytes, *, checksums: bool = True) -> Wal | None:
    """Read a WAL file's header and frames (None: no valid header)."""
    if len(data) < WAL_HEADER:
        return None
    magic, _, page_size, _, _, _, c1, c2 = struct.unpack(">8I", data[:32])
    if magic not in (0x377F0682, 0x377F0683):
        return None
    big = bool(magic & 1)
    sums = _checksum(data[:24], big, 0, 0)
    if sums != (c1, c2):
        return None
    salts = data[16:24]
    frames, offset, valid = [], WAL_HEADER, True
    while offset + FRAME_HEADER + page_size <= len(data):
        pgno, commit, _, _, f1, f2 = struct.unpack(">6I", data[offset : offset + 24])
        ok = valid and data[offset + 8 : offset + 16] == salts
        if ok and checksums:
            page = data[offset + 24 : offset + 24 + page_size]
            sums = _checksum(data[offset : offset + 8] + page, big, *sums)
            ok = sums == (f1, f2)
        valid = ok
        frames.append(Frame(offset, pgno, commit, ok))
        offset += FRAME_HEADER + page_size
    return Wal(len(data), page_size, salts, frames)


def normal_sync_length(wal: Wal, shm: bytes) -> int:
    """The WAL bytes a power cut cannot lose under synchronous=NORMAL: up to the frame
    the last checkpoint of this log generation synced (and may have copied back)."""
    if (
        len(shm) < SHM_BACKFILL_ATTEMPTED + 4
        or shm[SHM_SALTS : SHM_SALTS + 8] != wal.salts
    ):
        return WAL_HEADER  # a new generation: only its header was synced
    attempted = int.from_bytes(
        shm[SHM_BACKFILL_ATTEMPTED : SHM_BACKFILL_ATTEMPTED + 4], sys.byteorder
    )
    return min(wal.size, WAL_HEADER + attempted * wal.frame_size)


# Crash images ----------------------------------------------------------------------------
@dataclass
class Image:
    """A frozen copy of a run's database, log, side log and ACK file."""

    root: Path
    run_id: str
    source: Campaign
    """The run it was taken from (which went on to write the rest of the history)."""

    @property
    def db(self) -> Path:
        return self.root / "rel.db"

    @property
    def wal(self) -> Path:
        return self.root / "rel.db-wal"

    @property
    def shm(self) -> Path:
        """The frozen WAL-index, kept apart (never beside the database): the oracle's."""
        return self.root / "analysis.shm"


def take_images(root: Path, count: int, durability: str, rng: random.Random,
                prefix: str) -> list[Image]:  # fmt: skip
    """Freeze `durable run many` at random moments and copy it, `count` times; the last
    freeze of each run ends in SIGKILL, the others in SIGCONT. Returns once every source
    run has ended (their histories are the oracle for the images' prefixes)."""
    images: list[Image] = []
    number = 0
    while len(images) < count:
        source = Campaign(
            root / f"source{number}", f"{prefix}-{number}",
            env={"DURABLE_DURABILITY": durability, "REL_TASK_SCALE": SOURCE_SCALE},
        )  # fmt: skip
        process = source.start()
        while len(images) < count:
            pause(rng.uniform(0.0, FREEZE_GAP))
            if process.poll() is not None:
                break
            freeze(process)
            if not source.db.exists():
                thaw(process)
                continue
            image = Image(root / f"image{len(images):03d}", source.run_id, source)
            snapshot(source.db, image.root, source.side_log, source.acks)
            shm = source.db.with_name(source.db.name + "-shm")
            if shm.exists():
                shutil.copyfile(shm, image.shm)
            images.append(image)
            if len(images) == count:
                kill9(process)
            else:
                thaw(process)
        code = process.wait(timeout=120)
        assert code in (0, -9), f"source run exited {code}\n{source.tail()}"
        number += 1
    return images


@dataclass
class Variant:
    """One recovery of an image: its database and log as a power cut may leave them."""

    image: Image
    kind: str
    root: Path
    cut: int | None = None
    """Where the log was cut or overwritten (bytes), if it was."""
    committed: frozenset[str] = frozenset()
    """Slugs with a result in the recovered variant, before it is resumed."""
    transitions: int = 0
    """The length of its recovered history."""

    @property
    def db(self) -> Path:
        return self.root / "rel.db"

    @property
    def side_log(self) -> Path:
        return self.root / "side.log"


KINDS = ("random-byte", "frame-boundary", "garbled-tail", "intact", "at-sync")


def make_variant(image: Image, kind: str, sync: int, rng: random.Random) -> Variant:
    """Copy the image and remove (or garble) what a power cut may lose past `sync`."""
    root = image.root.with_name(f"{image.root.name}-{kind}")
    shutil.copytree(image.root, root, ignore=shutil.ignore_patterns("*shm"))
    variant = Variant(image, kind, root)
    wal = root / "rel.db-wal"
    if not wal.exists() or kind == "intact":
        return variant
    data = bytearray(wal.read_bytes())
    sync = min(sync, len(data))
    if kind == "random-byte":
        variant.cut = rng.randint(sync, len(data))
    elif kind == "frame-boundary":
        parsed = parse_wal(bytes(data), checksums=False)
        boundaries = parsed.boundaries(sync) if parsed else []
        variant.cut = rng.choice(boundaries) if boundaries else sync
    elif kind == "at-sync":
        variant.cut = sync
    if kind == "garbled-tail":
        start = rng.randint(sync, max(sync, len(data) - 512))
        end = min(len(data), start + 512)
        data[start:end] = rng.randbytes(end - start)
        variant.cut = start
    else:
        assert variant.cut is not None
        del data[variant.cut :]
    wal.write_bytes(bytes(data))
    return variant


def history(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """The append-only history (`states`), in order; [] for a database whose log was
    cut before the schema's commit (it is empty)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'states'").fetchall():
        return []
    return conn.execute(
        "SELECT id, flow_run_id, task_run_id, name, message, timestamp, details"
        " FROM states ORDER BY id"
    ).fetchall()


def history_of(db: Path) -> list[tuple[Any, ...]]:
    with closing(open_read_only(db)) as conn:
        return history(conn)


def check_recovered(
    variant: Variant, full_history: list[tuple[Any, ...]], *, acks: bool
) -> Variant:
    """A recovered variant is sound, an earlier state of its source, and (`acks`)
    holds every transition ACKed before the freeze; return it with the task runs whose
    results it holds. One connection: each open of a copied image replays its log."""
    where = f"{variant.kind} variant of {variant.image.root} (cut {variant.cut})"
    with closing(open_read_only(variant.db)) as conn:
        problems = check_connection(conn)
        assert not problems, f"{where}: {problems}"
        recovered = history(conn)
        assert recovered == full_history[: len(recovered)], (
            f"{where}: its history is not a prefix of the source's"
        )
        results = (
            read_results(variant.db, variant.image.run_id, conn) if recovered else {}
        )
        missing = acked_missing(conn, variant.root / "acks.log") if acks else []
    assert not missing, f"{where}: ACKed transitions lost: {missing[:5]}"
    expected = expected_many()
    wrong = [slug for slug, value in results.items() if value != expected[slug]]
    assert not wrong, f"{where}: wrong results {wrong[:5]}"
    variant.committed = frozenset(results)
    variant.transitions = len(recovered)
    return variant


def acked_missing(conn: sqlite3.Connection, acks: Path) -> list[str]:
    """The ACK lines of `acks` whose transition the database does not hold."""
    has_schema = bool(
        conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'states'").fetchall()
    )
    rows = set(conn.execute("SELECT flow_run_id, coalesce(task_run_id, ''), name"
                            " FROM states")) if has_schema else set()  # fmt: skip
    tasks = dict(conn.execute("SELECT id, flow_run_id FROM task_runs")) if rows else {}
    missing = []
    for ack in read_acks(acks):
        if ack.kind == "run":
            key = (ack.id, "", ack.state)
        elif ack.kind in ("task", "result"):
            key = (tasks.get(ack.id, "?"), ack.id, ack.state)
        else:
            continue
        if key not in rows:
            missing.append(f"{ack.kind} {ack.id} {ack.state}")
    return missing


def resume_all(variants: list[Variant], durability: str, log: Path) -> None:
    """Resume every variant to its end, in two processes (one per core); check each
    (the A1 criteria)."""
    lengths = {v.root: len(read_executions(v.side_log)) for v in variants}
    processes = []
    for half in (variants[0::2], variants[1::2]):
        if not half:
            continue
        args = [str(CAMPAIGN), "many", durability]
        for v in half:
            args += [str(v.db), str(v.side_log), v.image.run_id]
        with log.open("ab") as out:
            processes.append(subprocess.Popen(
                [sys.executable, str(FLOWS / "resume_images.py"), *args],
                stdout=subprocess.PIPE, stderr=out, start_new_session=True,
                env=durable_env({"REL_TASK_SCALE": RESUME_SCALE}),
            ))  # fmt: skip
    outcome = ""
    for process in processes:
        printed, _ = process.communicate(timeout=900)
        outcome += printed.decode()
        assert process.returncode == 0, outcome
    for v in variants:
        assert f"image {v.db} Success" in outcome, (
            f"{v.kind} variant {v.root} did not resume to Success:\n{outcome}"
        )
        check_resumed(v, lengths[v.root])


def check_resumed(variant: Variant, before: int) -> None:
    """The resumed variant: 500 right results, each recorded once; exactly the task
    runs without a recovered result ran, once each."""
    where = f"{variant.kind} variant {variant.root}"
    db, run_id = variant.db, variant.image.run_id
    assert flow_run_state(db, run_id) == "Success", where
    assert read_results(db, run_id) == expected_many(), where
    problems = check_invariants(db, settled=True)
    assert not problems, f"{where}: {problems}"
    successes = Counter(
        slug for (slug,) in query(db, "SELECT t.task_slug FROM states s JOIN task_runs t"
                                  " ON t.id = s.task_run_id WHERE s.name = 'Success'")
    )  # fmt: skip
    assert max(successes.values()) == 1, f"{where}: a result recorded twice"
    new = read_executions(variant.side_log)[before:]
    starts = Counter(e.slug for e in new if e.event == "start")
    assert set(starts) == set(MANY_SLUGS) - variant.committed, where
    assert set(starts.values()) <= {1}, f"{where}: a task ran twice on resume"


# B0 ----------------------------------------------------------------------------------------
def b0(tmp_path: Path, seed: int, count: int) -> None:
    rng = random.Random(seed)
    images = take_images(tmp_path, count, "full", rng, f"b0-{seed}")
    histories = {i.source.run_id: history_of(i.source.db) for i in images}
    variants = [
        check_recovered(
            make_variant(image, "intact", 0, rng), histories[image.run_id], acks=True
        )
        for image in images
    ]
    resume_all(variants, "full", tmp_path / "resume.log")
    done = [len(v.committed) for v in variants]
    print(f"B0 seed={seed}: {count} images ({min(done)}..{max(done)} of 500 results"
          " committed), all resumed to 500/500")  # fmt: skip


@pytest.mark.reliability
@pytest.mark.timeout(180)
def test_b0_frozen_images(tmp_path: Path, rel_seed: int) -> None:
    b0(tmp_path, rel_seed, 20)


@pytest.mark.nightly
@pytest.mark.timeout(1200)
def test_b0_frozen_images_nightly(tmp_path: Path, rel_seed: int) -> None:
    b0(tmp_path, rel_seed, 200)


# B1 / B2 -------------------------------------------------------------------------------------
def lost_tail(tmp_path: Path, seed: int, count: int, durability: str,
              resume_every: bool) -> None:  # fmt: skip
    """Five variants of each of `count` images; all checked; all resumed when
    `resume_every`, else one per image (the kind rotating with the seed)."""
    rng = random.Random(seed)
    images = take_images(tmp_path, count, durability, rng, f"b-{durability}-{seed}")
    histories = {i.source.run_id: history_of(i.source.db) for i in images}
    to_resume: list[Variant] = []
    lost: Counter[str] = Counter()
    for number, image in enumerate(images):
        intact = len(history_of(image.db))
        sync = WAL_HEADER
        if image.wal.exists():
            wal = parse_wal(image.wal.read_bytes(), checksums=durability == "full")
            if wal is not None and durability == "full":
                sync = wal.last_commit_end()
            elif wal is not None:
                shm = image.shm.read_bytes() if image.shm.exists() else b""
                sync = normal_sync_length(wal, shm)
        chosen = KINDS[(seed + number) % len(KINDS)]
        for kind in KINDS:
            variant = check_recovered(
                make_variant(image, kind, sync, rng), histories[image.run_id],
                acks=durability == "full",
            )  # fmt: skip
            lost[kind] += variant.transitions < intact
            if resume_every or kind == chosen:
                to_resume.append(variant)
            else:
                shutil.rmtree(variant.root)
        if resume_every and len(to_resume) >= 50:
            resume_all(to_resume, durability, tmp_path / "resume.log")
            for v in to_resume:
                shutil.rmtree(v.root)
            to_resume = []
    resume_all(to_resume, durability, tmp_path / "resume.log")
    print(f"B {durability} seed={seed}: {count} images x 5 variants consistent and "
          f"prefixes of their history; variants that lost commits: {dict(lost)}")  # fmt: skip


@pytest.mark.reliability
@pytest.mark.timeout(180)
def test_b1_lost_tail_normal(tmp_path: Path, rel_seed: int) -> None:
    lost_tail(tmp_path, rel_seed, 20, "normal", resume_every=False)


@pytest.mark.nightly
@pytest.mark.timeout(1800)
def test_b1_lost_tail_normal_nightly(tmp_path: Path, rel_seed: int) -> None:
    lost_tail(tmp_path, rel_seed, 200, "normal", resume_every=True)


@pytest.mark.nightly
@pytest.mark.timeout(1800)
def test_b2_lost_tail_full_nightly(tmp_path: Path, rel_seed: int) -> None:
    lost_tail(tmp_path, rel_seed, 200, "full", resume_every=True)


# B5: the negative control ------------------------------------------------------------------
def without_wal(image: Image, name: str, torn_pages: random.Random | None) -> Path:
    """A copy of `image` whose `-wal` was deleted; with `torn_pages`, a checkpoint had
    copied some of the log's pages back into the database file first (in page order,
    as SQLite's does) when it was interrupted: what deleting the log after a crash
    mid-checkpoint leaves. Returns the copy's database."""
    root = image.root.with_name(f"{image.root.name}-{name}")
    shutil.copytree(image.root, root, ignore=shutil.ignore_patterns("*shm", "*-wal"))
    db = root / "rel.db"
    if torn_pages is not None:
        data = image.wal.read_bytes()
        wal = parse_wal(data)
        assert wal is not None
        latest: dict[int, Frame] = {}
        for frame in wal.frames:  # the newest committed version of each page
            if frame.offset + wal.frame_size > wal.last_commit_end():
                break
            latest[frame.pgno] = frame
        pages = sorted(latest)
        with db.open("r+b") as file:
            for pgno in pages[: torn_pages.randint(1, len(pages))]:
                start = latest[pgno].offset + FRAME_HEADER
                file.seek((pgno - 1) * wal.page_size)
                file.write(data[start : start + wal.page_size])
    return db


def uncheckpointed_commits(image: Image) -> int:
    if not image.wal.exists():
        return 0
    wal = parse_wal(image.wal.read_bytes())
    return 0 if wal is None else sum(1 for f in wal.frames if f.valid and f.commit)


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_b5_deleted_wal(tmp_path: Path, rel_seed: int) -> None:
    """Delete the `-wal` of crash images that hold un-checkpointed commits.

    What durable can see, and says: a database whose log held its schema, or whose
    file holds part of an interrupted checkpoint, is refused by `durable doctor` with
    exit 3 and "restore it from a backup", and `durable resume` stops with one line
    and exit 3. What nobody can see from the database alone: a file checkpointed
    cleanly before the log was deleted is a consistent older state (the invariants
    hold; acknowledged commits after it are silently gone), which is why the docs say
    never to delete `-wal`. The test requires that the doctor never calls healthy a
    database that the invariant checker rejects, and counts both outcomes.
    """
    from durable.doctor import examine, exit_code

    rng = random.Random(rel_seed)
    images = [
        i for i in take_images(tmp_path, 8, "full", rng, f"b5-{rel_seed}")
        if uncheckpointed_commits(i)
    ]  # fmt: skip
    assert len(images) >= 4, "too few images with commits in their log"
    histories = {i.run_id: history_of(i.source.db) for i in images}
    seen: Counter[str] = Counter()
    refused: list[tuple[Image, Path]] = []
    for image in images:
        for name, torn in (("no-wal", None), ("torn-no-wal", rng)):
            db = without_wal(image, name, torn)
            problems = check_invariants(db)
            report = examine(db)
            code = exit_code(report)
            advice = " ".join(f.advice for f in report.findings)
            if code == 3:
                assert "restore it from a backup" in advice, report.findings
                seen[f"{name}: refused (doctor exit 3)"] += 1
                refused.append((image, db))
                continue
            assert not problems, (
                f"doctor exit {code} on an inconsistent {db}: {problems}"
            )
            older = history_of(db)
            assert older == histories[image.run_id][: len(older)]
            lost = len(history_of(image.db)) - len(older)
            seen[f"{name}: older consistent state, undetectable"] += 1
            seen["transitions lost without a trace"] += lost
    assert refused, "no image was refused: the control controls nothing"
    image, db = refused[0]
    doctor = subprocess.run(durable_command(db, "doctor"), capture_output=True,
                            text=True, env=durable_env(), timeout=60,
                            check=False)  # fmt: skip
    assert doctor.returncode == 3, doctor.stdout
    assert "restore it from a backup" in doctor.stdout
    resume = subprocess.run(durable_command(db, "resume", image.run_id),
                            capture_output=True, text=True, env=durable_env(),
                            timeout=60, check=False)  # fmt: skip
    assert resume.returncode == 3, resume.stderr
    assert "Traceback" not in resume.stderr
    assert resume.stderr.strip().startswith("Error:"), resume.stderr
    print(f"B5 seed={rel_seed}: {dict(seen)}")
