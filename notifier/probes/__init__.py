"""Outside-in probes: the notifier looks at the provider's services the way customers reach them.

- ``verdict``: pure logic. A run's ``Result`` -> this location's vote (up / slow / down, after the
  configured retries) -> the quorum of all locations' votes -> ``AlertEvent``s of source ``probe``.
- ``checks``: the network checks (HTTP(S), TCP, SMTP, IMAP, POP3, DNS), one function each, no state.
- ``runner``: runs the due probes of one location concurrently on a thread pool, each under its own
  Redis lock, keeps the votes in Redis and hands the events to a callback (the worker task passes
  ``services.ingest.accept_events``, so probes share the routing, grouping, confirm and flap logic of
  every other monitor).
"""
