"""Status page build benchmark: 50 components, 365 days of history, 1,000 incidents.

    /work/main/.venv/bin/python bench/statuspage.py [--runs 5] [--dir /dev/shm]

Prints one table: the full build (render + write a complete release with the directory target),
the incremental rebuild after one incident update (warm RenderCache: only the index, history, the
changed incident's pages, JSON and feeds are rendered), and, as a baseline measured in the same run,
writing the same files to disk without rendering (the I/O floor of any build). "republish from a fresh
process" is a worker restart's first heartbeat: everything rendered, unchanged files hard-linked.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifier.config import ComponentSettings, PageSettings  # noqa: E402
from notifier.domain.model import ComponentChange, ComponentStatus, Impact, Incident, IncidentUpdate  # noqa: E402
from notifier.statuspage.generator import RenderCache, render_site, write_files  # noqa: E402
from notifier.statuspage.publish import DirectoryTarget  # noqa: E402
from notifier.statuspage.snapshot import Snapshot  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where releases are written (default: the system temp dir)")
    args = parser.parse_args()
    snap = model()
    changes = sum(len(v) for v in snap.history.values())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        names = ["floor", "full", "render_full", "incremental", "render_incr", "restart"]
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        files: dict[str, bytes] = {}
        for run in range(args.runs):
            target = DirectoryTarget(Path(tmp) / f"full{run}" / "site")

            def full_build() -> None:
                nonlocal files
                files = render_site(snap, NOW)
                target.publish(files, NOW)  # noqa: B023 - called at once, inside this iteration

            record(wall["full"], cpu["full"], full_build)
            record(wall["render_full"], cpu["render_full"], lambda: render_site(snap, NOW))
            record(wall["floor"], cpu["floor"], lambda run=run: write_files(files, Path(tmp) / f"floor{run}"))

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
    index = len(files["index.html"])
    css = len(files["static/style.css"])
    med = statistics.median
    print(
        f"status page: {len(snap.components)} components, {changes} history changes over 365 days, "
        f"{len(snap.incidents)} incidents, {len(files)} files, median of {args.runs} runs"
    )
    print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; files in {tmp}")
    print(f"{'measure':<52}{'wall s':>9}{'CPU s':>9}{'x floor':>9}")
    rows = [
        ("baseline: write the same files, no rendering (floor)", "floor"),
        ("full build: render + publish a directory release", "full"),
        ("  of which render only", "render_full"),
        ("incremental: one incident updated, render + publish", "incremental"),
        ("  of which render only", "render_incr"),
        ("republish from a fresh process (cold cache)", "restart"),
    ]
    floor = med(wall["floor"])
    for label, key in rows:
        print(f"{label:<52}{med(wall[key]):>9.3f}{med(cpu[key]):>9.3f}{med(wall[key]) / floor:>9.2f}")
    print(
        f"index.html {index / 1024:.1f} KiB + style.css {css / 1024:.1f} KiB = "
        f"{(index + css) / 1024:.1f} KiB (target < 100 KiB)"
    )
    ok = med(wall["full"]) < 1.0 and med(wall["incremental"]) < med(wall["full"]) / 2 and index + css < 100 * 1024
    print("targets (full < 1 s, incremental far below, index < 100 KiB):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
