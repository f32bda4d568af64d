"""Profile: where the CPU of one delivery goes (cProfile, in process, on the shipped ledger path).

A real redis-server (``appendfsync always``, as ``notifier.store.local_redis`` runs it by default), the
real services (``incidents.broadcast`` then ``delivery.deliver`` for each notice, exactly the calls
the worker's task makes), X, Facebook and a webhook as local fakes answering at once. Celery is not
in this process: its per-task cost is measured separately by ``bench/delivery.py`` (CPU of the
worker processes). Counts every Redis round trip (a pipeline counts once) and groups cumulative time by
where it is spent.

    .venv/bin/python bench/profile_delivery.py [--updates 200] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.bootstrap import build  # noqa: E402
from notifier.config_loader import parse_settings  # noqa: E402
from notifier.ports import NullDispatcher  # noqa: E402
from notifier.services import delivery, incidents  # noqa: E402
from notifier.store.local_redis import LocalRedis  # noqa: E402
from tests.fakes.graph_api import PAGE_ID, TOKEN, FakeGraphApi  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402
from tests.fakes.x_api import FakeXApi  # noqa: E402

CONFIG = """
page: {{name: Example Mail, url: "https://status.example.com/", language: en}}
redis: {{url: "{redis}"}}
components:
  - {{id: smtp, name: SMTP}}
channels:
  x:
    type: x
    api_base_url: {x}
    consumer_key: ${{X_CONSUMER_KEY}}
    consumer_secret: ${{X_CONSUMER_SECRET}}
    access_token: ${{X_ACCESS_TOKEN}}
    access_token_secret: ${{X_ACCESS_SECRET}}
  facebook:
    type: facebook
    graph_url: {fb}
    page_id: "{page}"
    page_token: ${{FB_PAGE_TOKEN}}
  hook:
    type: webhook
    url: {hook}
"""
ENV = {"X_CONSUMER_KEY": "consumer-key-1", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "access-token-1",
       "X_ACCESS_SECRET": "as", "FB_PAGE_TOKEN": TOKEN}

# where a function's cumulative time is charged, by the file it lives in (first match wins)
GROUPS = [
    ("redis round trips (socket wait incl. fsync)", ("redis/connection.py", "redis/_parsers")),
    ("OAuth 1.0a signing (oauthlib)", ("oauthlib/",)),
    ("requests/urllib3 HTTP", ("requests/", "urllib3/", "http/client.py")),
    ("twitter-text parse (emoji scan)", ("twitter_text",)),
    ("logging", ("logging/",)),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--fsync", default="always", choices=["always", "everysec"])
    parser.add_argument("--no-profile", action="store_true", help="time only (cProfile inflates CPU)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-delivery-"))
    server = LocalRedis(tmp / "redis", appendfsync=args.fsync).start()
    try:
        with FakeXApi() as fx, FakeGraphApi() as fg, WebhookReceiver() as hook:
            text = CONFIG.format(redis=server.url, x=fx.url, fb=fg.url, page=PAGE_ID, hook=hook.url)
            settings = parse_settings(text, str(tmp / "n.yaml"), env=ENV)
            client = redis.Redis.from_url(server.url, decode_responses=True)
            dispatcher = NullDispatcher()
            app = build(settings, dispatcher=dispatcher, redis_client=client)
            calls = {"n": 0}
            original = client.execute_command

            def counting(*a, **kw):  # type: ignore[no-untyped-def]
                calls["n"] += 1
                return original(*a, **kw)

            client.execute_command = counting  # type: ignore[method-assign]
            # a pipeline (MULTI or not) is one round trip: counted once when it executes, its commands not
            # (they do not pass through the client's execute_command)
            make_pipeline = client.pipeline

            def counted_pipeline(*a, **kw):  # type: ignore[no-untyped-def]
                pipe = make_pipeline(*a, **kw)
                run = pipe.execute

                def execute(*ea, **ekw):  # type: ignore[no-untyped-def]
                    calls["n"] += 1
                    return run(*ea, **ekw)

                pipe.execute = execute
                return pipe

            client.pipeline = counted_pipeline  # type: ignore[method-assign]
            # accept path
            t0 = time.perf_counter()
            c0 = time.process_time()
            before = calls["n"]
            for i in range(args.updates):
                incidents.broadcast(app, body=f"Profile notice {i}: mail is slow for some users.")
            accept_wall, accept_cpu = time.perf_counter() - t0, time.process_time() - c0
            accept_rt = (calls["n"] - before) / args.updates
            queued = [nid for nid, _ch, _cd in dispatcher.sent] if dispatcher.sent and len(dispatcher.sent[0]) == 3 \
                else [s[0] for s in dispatcher.sent]
            prof = cProfile.Profile()
            before = calls["n"]
            t0 = time.perf_counter()
            c0 = time.process_time()
            if not args.no_profile:
                prof.enable()
            outcomes: dict[str, int] = {}
            for nid in queued:
                out = delivery.deliver(app, nid)
                outcomes[out.state] = outcomes.get(out.state, 0) + 1
            prof.disable()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = len(queued)
            rt = (calls["n"] - before) / n
    finally:
        server.stop()
    if args.no_profile:
        print(f"appendfsync {args.fsync}; {args.updates} broadcasts x 3 channels, fakes at 0 ms, no profiler")
        print(f"accept : {accept_wall / args.updates * 1000:6.2f} ms wall, {accept_cpu / args.updates * 1000:6.2f} ms "
              f"CPU, {accept_rt:.1f} Redis round trips per broadcast")
        print(f"deliver: {wall / n * 1000:6.2f} ms wall, {cpu / n * 1000:6.2f} ms CPU per delivery, {rt:.1f} Redis "
              f"round trips per delivery; outcomes {outcomes}")
        return
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(f"appendfsync {args.fsync}; {args.updates} broadcasts x 3 channels (x, facebook, webhook), fakes at 0 ms")
    print(f"accept : {accept_wall / args.updates * 1000:6.2f} ms wall, {accept_cpu / args.updates * 1000:6.2f} ms CPU, "
          f"{accept_rt:.1f} Redis round trips per broadcast (client side, this process)")
    print(f"deliver: {wall / n * 1000:6.2f} ms wall, {cpu / n * 1000:6.2f} ms CPU per delivery, {rt:.1f} Redis "
          f"round trips per delivery; outcomes {outcomes}")
    # a count, not a time: the same on a loaded machine, so two trees compare in one run whatever the load
    calls = stats.total_calls  # type: ignore[attr-defined]
    print(f"deliver: {calls / n:,.0f} Python function calls per delivery (cProfile; C functions that hold the "
          f"GIL, e.g. hiredis, count one call each)")
    print(f"\n{'where (cumulative, may overlap)':48} | ms per delivery | share of deliver()")
    print("-" * 48 + "-|-----------------|-------------------")
    root = [v for k, v in stats.stats.items() if k[2] == "deliver" and "services/delivery.py" in k[0]]  # type: ignore[attr-defined]
    base = root[0][3] if root else total
    for label, needles in GROUPS:
        best = 0.0
        for (fname, _line, _func), (_cc, _nc, _tt, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
            # top-level entries of the group: called from outside it
            if any(s in fname for s in needles) and not any(any(s in c[0] for s in needles) for c in callers):
                best += ct
        print(f"{label:48} | {best / n * 1000:15.2f} | {best / base * 100:5.1f} %")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
