"""The independent status page: a static site, Statuspage v2-compatible JSON, feeds, and mirrors.

    snapshot.py   Snapshot (everything the page shows) and load_snapshot(store, ...)
    generator.py  render_site(snapshot, now, cache) -> {path: bytes}; build_site(snapshot, out_dir, now)
    uptime.py     90-day bars from component status history
    json_api.py   api/v2/*.json in Statuspage's shapes
    feeds.py      history.atom, history.rss
    publish.py    DirectoryTarget (atomic symlink flip), S3Target (any S3-compatible store)
    (the periodic refresh, republish(app), is a service: notifier/services/statuspage.py)
    serve.py      a small static server for previews and tests

The ``statuspage`` channel (one configured target per channel entry) is ``notifier/channels/statuspage.py``;
it delegates to snapshot, generator and publish here.
"""
