"""Jinja2 templates per channel and per language, overridable from the config's ``templates_dir``.

Lookup for channel type ``x``, template ``update`` and language ``de``:
``<templates_dir>/x/update.de.j2`` → ``<templates_dir>/x/update.en.j2`` (page default) →
the same two names in the packaged ``notifier/templates/`` → ``_default/update.<lang>.j2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

PACKAGED = Path(__file__).parent / "templates"


class TemplateRenderer:
    def __init__(self, override_dir: str | Path | None = None, default_language: str = "en") -> None:
        search = [str(override_dir)] if override_dir else []
        search.append(str(PACKAGED))
        # Plain text for social posts: no HTML autoescaping here (HTML output lives in statuspage/).
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            autoescape=False,  # noqa: S701 - these templates produce plain text, never HTML
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # loaded once per process: no stat of every candidate file per render (issue 14). A changed
            # templates_dir takes effect when the worker/API restarts (docs/channels.md).
            auto_reload=False,
        )
        self.default_language = default_language
        self._chosen: dict[tuple[str, str, str], jinja2.Template] = {}  # which candidate exists, per key

    def candidates(self, channel_type: str, name: str, language: str) -> list[str]:
        names = []
        for folder in (channel_type, "_default"):
            for lang in dict.fromkeys((language, self.default_language, "en")):
                names.append(f"{folder}/{name}.{lang}.j2")
        return names

    def render(self, channel_type: str, name: str, language: str, **context: Any) -> str:
        key = (channel_type, name, language)
        template = self._chosen.get(key)
        if template is None:  # a racing first render of a key picks the same file twice, harmlessly
            template = self.env.select_template(self.candidates(channel_type, name, language))
            self._chosen[key] = template
        return template.render(language=language, **context).strip()
