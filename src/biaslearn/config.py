"""The one config base: every run of the book is described by a frozen dataclass built on it.

    class MyConfig(Base):
        experiment: str = "mine"     # folder under results/
        n_hidden: int = 100          # width (units)
        CHOICES = {"mode": ("bias", "full")}
        def check(self): return [(self.n_hidden >= 1, "n_hidden >= 1")]

``Base`` validates once, for every config type: each field's type (an int where a float is
expected becomes a float, so ``lr=1`` and ``lr=1.0`` give the same result key; a bool is
never taken for an int, nor an int or a float for a bool), each field named in ``CHOICES``
against its allowed values, and the ranges each class states in ``check``. ``from_dict``
rejects unknown keys and names the allowed ones. A field added after results were stored is
listed in ``ADDED`` with its default: left out of the result key at that default, so the
stored runs keep their keys (results.canonical).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass


class ConfigError(TypeError, ValueError):
    """A config field is unknown, of the wrong type, not an allowed value, or out of range (the message
    says which). Both a TypeError and a ValueError, so either kind of handler catches it."""


@dataclass(frozen=True)
class Base:
    experiment: str                  # folder under results/ (every subclass gives it a default)

    CHOICES: typing.ClassVar[dict] = {}   # field -> allowed values
    ADDED: typing.ClassVar[dict] = {}     # field -> default, for fields newer than the stored results

    def check(self) -> list[tuple[bool, str]]:
        """(condition, what it requires) pairs: ranges and relations between fields."""
        return []

    def __post_init__(self):
        name = type(self).__name__
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            v, t = getattr(self, f.name), hints[f.name]
            origin = typing.get_origin(t) or t
            if origin is float and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))
            elif not isinstance(v, origin) or (origin in (int, float) and isinstance(v, bool)):
                raise ConfigError(f"{name}.{f.name} must be {getattr(origin, '__name__', t)}, got {v!r}")
        for field, allowed in self.CHOICES.items():
            if getattr(self, field) not in allowed:
                raise ConfigError(f"{name}.{field}={getattr(self, field)!r}: use one of {tuple(allowed)}")
        broken = [need for ok, need in self.check() if not ok]
        if broken:
            raise ConfigError(f"{name} needs {'; '.join(broken)}: {self}")

    @classmethod
    def from_dict(cls, d: dict):
        """The config of a dict (e.g. a stored result's "config", whose "schema" and "type" are dropped)."""
        d = {k: v for k, v in d.items() if k not in ("schema", "type")}
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {unknown}: the allowed keys are {allowed}")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} keys {unknown}")
        return dataclasses.replace(self, **changes)
