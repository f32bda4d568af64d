"""Status page build benchmark: 50 components, 365 days of history, 1,000 incidents.

    .venv/bin/python bench/statuspage.py [--runs 5] [--dir /dev/shm]
    .venv/bin/python bench/statuspage.py --against /tmp/main-tree [--rounds 4] [--runs 3] [--dir /dev/shm]
    .venv/bin/python bench/statuspage.py --against /tmp/main-tree --dir /var/tmp --busy

``--busy`` runs, for the whole measurement, what made "the busy disk" of issue 14 in `--dir`: four
processes appending 200 bytes and fsyncing in a loop (Redis with ``appendfsync always``) and one creating
and deleting 200 small files in a loop (other test suites' temp dirs). It is load, not the service.

``--against DIR`` measures another checkout (e.g. ``git archive main | tar -x -C DIR``) with this same
harness and model: child processes alternate between DIR and this tree, ``--rounds`` times each, and one
table shows both with the CPU ratio. ``--tree DIR`` (used by the children) imports ``notifier`` from DIR.

Prints one table: the full build (render + write a complete release with the directory target),
the incremental rebuild after one incident update (warm RenderCache: only the index, history, the
changed incident's pages, JSON and feeds are rendered), and, as a baseline measured in the same run,
writing the same files to disk without rendering (the I/O floor of any build; in a directory placed as
the tree's directory target places a release, so both see the same disk). "republish from a fresh
process" is a worker restart's first heartbeat: everything rendered, unchanged files hard-linked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# --tree DIR: the notifier package under test (read before the imports below)
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else HERE
sys.path.insert(0, str(TREE))

from notifier.config import ComponentSettings, PageSettings  # noqa: E402
from notifier.domain.model import ComponentChange, ComponentStatus, Impact, Incident, IncidentUpdate  # noqa: E402
from notifier.statuspage.generator import RenderCache, render_site, write_files  # noqa: E402
from notifier.statuspage.publish import DirectoryTarget  # noqa: E402
from notifier.statuspage.snapshot import Snapshot  # noqa: E402

try:  # not in every tree --against measures
    from notifier.statuspage.publish import spread_subdirectories
except ImportError:
    spread_subdirectories = None  # type: ignore[assignment]

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BAD = [ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE]


def model(components: int = 50, days: int = 365, incidents: int = 1000, seed: int = 7) -> Snapshot:
    rnd = random.Random(seed)
    page = PageSettings(id="bench", name="Bench Service", url="https://status.example.com/")  # type: ignore[call-arg]
    comps = [ComponentSettings(id=f"c{i}", name=f"Component {i}", group=f"Group {i // 5}") for i in range(components)]
    history: dict[str, list[ComponentChange]] = {}
    for comp in comps:
        changes = []
        at = NOW - timedelta(days=days)
        while True:  # an incident about every 10 days, lasting 5 minutes to 3 hours
            at += timedelta(hours=rnd.uniform(24, 400))
            if at >= NOW:
                break
            changes.append(ComponentChange(comp.id, rnd.choice(BAD), at))
            changes.append(
                ComponentChange(comp.id, ComponentStatus.OPERATIONAL, at + timedelta(minutes=rnd.uniform(5, 180)))
            )
        history[comp.id] = [c for c in changes if c.at < NOW]
    items = []
    for n in range(1, incidents + 1):
        start = NOW - timedelta(days=days) + timedelta(hours=n * days * 24 / incidents)
        open_ = n > incidents - 3
        kind = "maintenance" if n % 50 == 0 else "incident"
        inc = Incident(
            id=f"inc{n}",
            name=f"Incident {n}: elevated errors on Component {n % components}",
            status="identified" if open_ else ("completed" if kind == "maintenance" else "resolved"),
            impact=rnd.choice(list(Impact)),
            created_at=start,
            kind=kind,
            components=[f"c{n % components}"],
            resolved_at=None if open_ else start + timedelta(hours=2),
            scheduled_for=start if kind == "maintenance" else None,
            scheduled_until=start + timedelta(hours=2) if kind == "maintenance" else None,
        )
        statuses = ["investigating", "identified", "monitoring", "resolved"][: 2 if open_ else 4]
        inc.updates = [
            IncidentUpdate(
                id=f"inc{n}.{k}",
                incident_id=inc.id,
                number=k,
                status=s,
                body={
                    "en": f"Update {k} on incident {n}: " + "we are looking into it. " * 4,
                    "de": f"Meldung {k} zu Störung {n}: " + "wir sehen uns das an. " * 4,
                },
                created_at=start + timedelta(minutes=30 * k),
            )
            for k, s in enumerate(statuses, 1)
        ]
        items.append(inc)
    statuses_now = {c.id: ComponentStatus.OPERATIONAL for c in comps}
    statuses_now["c1"] = ComponentStatus.MAJOR_OUTAGE
    return Snapshot(page=page, components=comps, statuses=statuses_now, history=history, incidents=items)


CPU: dict[int, list[float]] = {}


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    """Wall seconds; the CPU seconds of this process go to CPU[id(list the caller appends to)]."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    timed.last_cpu = time.process_time() - cpu  # type: ignore[attr-defined]
    return time.perf_counter() - start


def record(wall: list[float], cpu: list[float], fn) -> None:  # type: ignore[no-untyped-def]
    wall.append(timed(fn))
    cpu.append(timed.last_cpu)  # type: ignore[attr-defined]


NAMES = ["floor", "full", "render_full", "incremental", "render_incr", "restart", "steady"]
ROWS = [
    ("baseline: write the same files, no rendering (floor)", "floor"),
    ("full build: render + publish a directory release", "full"),
    ("  of which render only", "render_full"),
    ("incremental: one incident updated, render + publish", "incremental"),
    ("  of which render only", "render_incr"),
    ("republish from a fresh process (cold cache)", "restart"),
    ("one update, steady state (prunes older releases)", "steady"),
]
STEADY = 6  # one-update publishes per run into a target that already holds keep_releases (5) releases
TARGET_FULL, TARGET_INCREMENTAL = 1.0, 0.100  # issue 14: full build <= 1 s, one-update rebuild <= 100 ms


def measure(
    snap: Snapshot, runs: int, tmp: str
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, bytes]]:
    wall: dict[str, list[float]] = {n: [] for n in NAMES}
    cpu: dict[str, list[float]] = {n: [] for n in NAMES}
    files: dict[str, bytes] = {}
    for run in range(runs):
        target = DirectoryTarget(Path(tmp) / f"full{run}" / "site")

        def full_build() -> None:
            nonlocal files
            files = render_site(snap, NOW)
            target.publish(files, NOW)  # noqa: B023 - called at once, inside this iteration

        record(wall["full"], cpu["full"], full_build)
        record(wall["render_full"], cpu["render_full"], lambda: render_site(snap, NOW))
        floor_dir = Path(tmp) / f"floor{run}"
        floor_dir.mkdir()
        if spread_subdirectories is not None:  # where the target asks ext4 to spread releases, so does the floor
            spread_subdirectories(floor_dir)
        # a unique name, like a release id: ext4 picks a spread directory's block group by its name's hash
        release = floor_dir / f"{NOW.strftime('%Y%m%dT%H%M%S%fZ')}-{os.getpid()}-{run}"
        record(wall["floor"], cpu["floor"], lambda d=release: write_files(files, d))

        cache = RenderCache()
        inc_target = DirectoryTarget(Path(tmp) / f"incr{run}" / "site")
        inc_target.publish(render_site(snap, NOW, cache), NOW)
        victim = snap.incidents[-1]
        later = NOW + timedelta(minutes=run + 1)
        victim.updates.append(
            IncidentUpdate(
                id=f"{victim.id}.x{run}",
                incident_id=victim.id,
                number=len(victim.updates) + 1,
                status="monitoring",
                body={"en": "A fix is in."},
                created_at=later,
            )
        )
        before = cache.misses
        record(
            wall["incremental"],
            cpu["incremental"],
            lambda later=later: inc_target.publish(render_site(snap, later, cache), later),  # noqa: B023
        )
        assert cache.misses - before == 2, cache.misses - before  # only the changed incident, en + de
        record(wall["render_incr"], cpu["render_incr"], lambda t=later, c=cache: render_site(snap, t, c))
        # a fresh worker process republishing (no RenderCache, no memory of the live release)
        fresh = DirectoryTarget(Path(tmp) / f"incr{run}" / "site")
        later2 = later + timedelta(seconds=1)
        record(wall["restart"], cpu["restart"], lambda t=later2, f=fresh: f.publish(render_site(snap, t), t))
        # A long-running worker: every publish from the 5th on also deletes the oldest release (~2,000
        # files). Between publishes (untimed) a tree that prunes in the background is let finish, as it
        # does when updates are more than a few tens of ms apart; a tree that prunes inside publish pays
        # it in the row.
        steady = DirectoryTarget(Path(tmp) / f"incr{run}" / "site")
        steady.publish(render_site(snap, later2 + timedelta(seconds=1), cache), later2 + timedelta(seconds=1))
        for k in range(STEADY + 2):
            getattr(steady, "settle", lambda: True)()
            at = later2 + timedelta(seconds=k + 2)
            victim.updates[-1].body = {"en": f"A fix is in ({k})."}
            victim.updates[-1].created_at = at
            if k < 2:  # fill the target up to keep_releases first
                steady.publish(render_site(snap, at, cache), at)
                continue
            before = cache.misses
            record(wall["steady"], cpu["steady"], lambda t=at, f=steady: f.publish(render_site(snap, t, cache), t))  # noqa: B023
            assert cache.misses - before == 2, cache.misses - before  # the changed incident re-rendered, en + de
        getattr(steady, "settle", lambda: True)()
    return wall, cpu, files


BUSY_FSYNC = """
import os, sys
fd = os.open(os.path.join(sys.argv[1], f"aof.{os.getpid()}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while True:
    os.write(fd, b"x" * 200)
    os.fsync(fd)
    n += 1
    if n % 2000 == 0:
        os.ftruncate(fd, 0)
"""
BUSY_CHURN = """
import os, shutil, sys
n = 0
while True:
    d = os.path.join(sys.argv[1], f"churn{n % 4}")
    os.makedirs(d, exist_ok=True)
    for i in range(200):
        with open(os.path.join(d, f"f{i}"), "wb") as fh:
            fh.write(b"y" * 3000)
    shutil.rmtree(d)
    n += 1
"""


def start_busy(where: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    """The --busy load in a fresh directory under ``where``; stop it with stop_busy."""
    load = tempfile.mkdtemp(prefix="busy-", dir=where)
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_FSYNC, load]) for _ in range(4)]
    procs.append(subprocess.Popen([sys.executable, "-c", BUSY_CHURN, load]))
    time.sleep(3)  # let the churn get going
    return procs, load


def stop_busy(procs: list[subprocess.Popen[bytes]], load: str) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)
    shutil.rmtree(load, ignore_errors=True)


def against(args: argparse.Namespace) -> int:
    """Alternate child processes between ``args.against`` (the baseline) and this tree; one table."""
    trees = {"baseline": Path(args.against).resolve(), "this tree": HERE}
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        t: {"wall": {n: [] for n in NAMES}, "cpu": {n: [] for n in NAMES}} for t in trees
    }
    for rnd in range(args.rounds):
        order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
        for name in order:
            cmd = [sys.executable, __file__, "--tree", str(trees[name]), "--runs", str(args.runs), "--json"]
            if args.dir:
                cmd += ["--dir", args.dir]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            for kind in ("wall", "cpu"):
                for n in NAMES:
                    samples[name][kind][n] += out[kind][n]
    med = statistics.median
    print(
        f"status page, baseline {trees['baseline']} against this tree {HERE}: {args.rounds} rounds x "
        f"{args.runs} runs each, alternating; medians; files in {args.dir or tempfile.gettempdir()}"
        + (" with --busy load (4 fsync loops, 1 create/delete loop): load, not the service" if args.busy else "")
    )
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'measure':<52}{'base wall':>10}{'base CPU':>10}{'new wall':>10}{'new CPU':>10}{'CPU ratio':>10}")
    base, new = samples["baseline"], samples["this tree"]
    for label, key in ROWS:
        bw, bc, nw, nc = (med(x[k][key]) for x, k in ((base, "wall"), (base, "cpu"), (new, "wall"), (new, "cpu")))
        print(f"{label:<52}{bw:>10.3f}{bc:>10.3f}{nw:>10.3f}{nc:>10.3f}{bc / nc:>9.1f}x")
    return verdict(
        med(new["wall"]["full"]),
        med(new["cpu"]["full"]),
        med(new["wall"]["incremental"]),
        med(new["cpu"]["incremental"]),
    )


def verdict(full_wall: float, full_cpu: float, incr_wall: float, incr_cpu: float) -> int:
    ok_wall = full_wall <= TARGET_FULL and incr_wall <= TARGET_INCREMENTAL
    ok_cpu = full_cpu <= TARGET_FULL and incr_cpu <= TARGET_INCREMENTAL
    print(
        f"targets (full build <= {TARGET_FULL:.0f} s, one-update rebuild <= {TARGET_INCREMENTAL * 1000:.0f} ms): "
        f"wall {'met' if ok_wall else 'NOT met'}, CPU {'met' if ok_cpu else 'NOT met'}"
    )
    return 0 if ok_wall else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where releases are written (default: the system temp dir)")
    parser.add_argument("--tree", default=None, help="import notifier from this checkout (default: this one)")
    parser.add_argument("--against", default=None, help="a baseline checkout to measure alternately with this one")
    parser.add_argument("--rounds", type=int, default=4, help="with --against: child processes per tree")
    parser.add_argument("--json", action="store_true", help="print the raw samples as JSON (for --against)")
    parser.add_argument("--busy", action="store_true", help="measure under fsync and file-churn load in --dir")
    args = parser.parse_args()
    busy = start_busy(args.dir or tempfile.gettempdir()) if args.busy else None
    try:
        return against(args) if args.against else measure_here(args)
    finally:
        if busy is not None:
            stop_busy(*busy)


def measure_here(args: argparse.Namespace) -> int:
    snap = model()
    changes = sum(len(v) for v in snap.history.values())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        wall, cpu, files = measure(snap, args.runs, tmp)
    if args.json:
        print(json.dumps({"wall": wall, "cpu": cpu}))
        return 0
    index = len(files["index.html"])
    css = len(files["static/style.css"])
    med = statistics.median
    print(
        f"status page: {len(snap.components)} components, {changes} history changes over 365 days, "
        f"{len(snap.incidents)} incidents, {len(files)} files, median of {args.runs} runs"
    )
    print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; files in {tmp}")
    if args.busy:
        print("with --busy load (4 fsync loops, 1 create/delete loop in the same directory): load, not the service")
    print(f"{'measure':<52}{'wall s':>9}{'CPU s':>9}{'x floor':>9}")
    floor = med(wall["floor"])
    for label, key in ROWS:
        print(f"{label:<52}{med(wall[key]):>9.3f}{med(cpu[key]):>9.3f}{med(wall[key]) / floor:>9.2f}")
    print(
        f"index.html {index / 1024:.1f} KiB + style.css {css / 1024:.1f} KiB = "
        f"{(index + css) / 1024:.1f} KiB (target < 100 KiB)"
    )
    code = verdict(med(wall["full"]), med(cpu["full"]), med(wall["incremental"]), med(cpu["incremental"]))
    return code if index + css < 100 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
