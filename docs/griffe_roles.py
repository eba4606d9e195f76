"""Griffe extension: render the Sphinx roles in diffsim's docstrings as cross-references.

Docstrings name other objects as ``:class:`Trainer```, ``:func:`diffsim.evaluate```,
``:meth:`Trainer.init``` (with ``~`` for the short name). At build time each role becomes
a link to the object's API entry when the name resolves in the docstring's scope and the
object is documented, and plain code otherwise (an optional autorefs reference, so an
unresolved role never fails the strict build; broken links written in Markdown still do).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([\w.]+)(\(\))?`")


def _resolve(obj: griffe.Object, name: str) -> str | None:
    scope = obj if isinstance(obj, griffe.Class | griffe.Module) else obj.parent
    while scope is not None:
        try:
            return scope.resolve(name)
        except (griffe.NameResolutionError, KeyError, AttributeError):
            head, _, rest = name.partition(".")
            if rest:  # `Trainer.init`: resolve the head, then walk its members
                try:
                    return f"{scope.resolve(head)}.{rest}"
                except (griffe.NameResolutionError, KeyError, AttributeError):
                    pass
        scope = scope.parent
    return name if "." in name else None


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is None:
        return

    def link(match: re.Match) -> str:
        short, name, call = match.groups()
        shown = (name.rsplit(".", 1)[-1] if short else name) + (call or "")
        path = _resolve(obj, name)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    obj.docstring.value = ROLE.sub(link, obj.docstring.value)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of a loaded package (module, class, function, attribute)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            _rewrite(obj)
            stack.extend(member for member in obj.members.values() if not member.is_alias)
