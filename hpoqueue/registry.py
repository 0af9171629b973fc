"""Name -> class registries for tuners and assessors, with NNI's case-insensitive names and `className`."""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from hpoqueue.errors import ConfigError

T = TypeVar("T")


class AlgorithmConfigLike(Protocol):
    """What a registry reads from a config's ``tuner`` or ``assessor`` section (config.AlgorithmConfig)."""

    @property
    def name(self) -> str | None: ...
    @property
    def class_name(self) -> str | None: ...
    @property
    def code_directory(self) -> str | Path | None: ...
    @property
    def class_args(self) -> dict[str, Any] | None: ...


class Registry(Generic[T]):
    """Built-in members by name (case-insensitive, with aliases) plus user classes by dotted `className`.

    ``field`` is the config key this registry serves (``tuner`` or ``assessor``), used in error messages.
    Built-ins may be registered lazily as ``module:Class`` so that a process imports only the members it
    uses (the scheduler would otherwise load hyperopt and scipy for a Random search).
    """

    def __init__(self, field: str, base: type[T]) -> None:
        self.field = field
        self.base = base
        self._members: dict[str, type[T] | str] = {}
        self._canonical: dict[str, str] = {}
        self._targets: dict[str, str] = {}  #: class name -> ``module:Class`` of the lazily registered

    def register_lazy(self, target: str, name: str, *aliases: str) -> None:
        """Register the class at `target` (``package.module:Class``), imported on first use."""
        for key in (name, *aliases):
            self._members[key.lower()] = target
            self._canonical[key.lower()] = name
        self._targets[target.rpartition(":")[2]] = target

    def class_names(self) -> list[str]:
        """The built-in classes' own names (``TPETuner``), which their package exports."""
        return list(self._targets)

    def load(self, class_name: str) -> type[T] | None:
        """The built-in class called `class_name` (imported now), None when there is none: the package's
        ``__getattr__``, so ``from hpoqueue.tuners import TPETuner`` needs no second list of members."""
        target = self._targets.get(class_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        cls: type[T] = getattr(importlib.import_module(module), attr)
        return cls

    def names(self) -> list[str]:
        """Canonical names of the built-in members, in registration order, without aliases."""
        return list(dict.fromkeys(self._canonical.values()))

    def resolve(self, name: str, *, source: str | None = None) -> type[T]:
        """The class registered under `name`, or a ConfigError with a did-you-mean."""
        member = self._members.get(name.lower())
        if member is None:
            close = difflib.get_close_matches(name.lower(), list(self._members), n=1, cutoff=0.5)
            hint = (f"did you mean '{self._canonical[close[0]]}'?" if close
                    else f"choose one of {', '.join(self.names())}, or give className")
            raise ConfigError(f"unknown {self.field} '{name}'", source=source, field=f"{self.field}.name",
                              hint=hint)
        if isinstance(member, str):
            loaded = self.load(member.rpartition(":")[2])
            assert loaded is not None  # every lazy target is in _targets
            member = self._members[name.lower()] = loaded
        return member

    def build(self, config: AlgorithmConfigLike, *, source: str | None = None, **context: Any) -> T:
        """Build the member a config section names. classArgs that repeat something hpoqueue passes
        itself (NNI configs carry ``optimize_mode`` and ``seed`` there) are dropped: the experiment's
        value wins."""
        class_args = {k: v for k, v in (config.class_args or {}).items() if k not in context}
        code_directory = Path(config.code_directory) if config.code_directory is not None else None
        return self.create(name=config.name, class_name=config.class_name, code_directory=code_directory,
                           class_args=class_args, source=source, **context)

    def load_class(self, class_name: str, code_directory: Path | None, *,
                   source: str | None = None) -> type[T]:
        """Import a user's class from `module.ClassName`, searching `code_directory` first."""
        cls = self.import_class(class_name, code_directory, source=source)
        if not (inspect.isclass(cls) and issubclass(cls, self.base)):
            raise ConfigError(f"'{class_name}' is not a subclass of {self.base.__name__}", source=source,
                              field=f"{self.field}.className")
        return cls

    def import_class(self, class_name: str, code_directory: Path | None, *, source: str | None = None) -> Any:
        """The object `module.ClassName` names, its module searched in `code_directory` first."""
        module_name, _, attr = class_name.rpartition(".")
        where = f"{self.field}.className"
        if not module_name:
            raise ConfigError(f"'{class_name}' is not of the form module.ClassName", source=source,
                              field=where, hint="for example my_tuner.MyTuner")
        if code_directory is not None and str(code_directory) not in sys.path:
            sys.path.insert(0, str(code_directory))
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot import '{class_name}': {exc}", source=source, field=where,
                              hint=f"check {self.field}.codeDirectory and the module name") from exc
        return cls

    def create(self, *, name: str | None, class_name: str | None = None,
               code_directory: Path | None = None, class_args: dict[str, Any] | None = None,
               source: str | None = None, **context: Any) -> T:
        """Build a member from its config: `name` or `className`, then `classArgs` checked against its
        constructor. `context` holds what hpoqueue itself passes (search space, seed, ...)."""
        if class_name:
            cls = self.load_class(class_name, code_directory, source=source)
        elif name:
            cls = self.resolve(name, source=source)
        else:
            raise ConfigError(f"{self.field} needs 'name' or 'className'", source=source, field=self.field)
        args = dict(class_args or {})
        check_class_args(cls, args, field=f"{self.field}.classArgs", source=source, reserved=set(context))
        try:
            return cls(**context, **args)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), source=source, field=f"{self.field}.classArgs") from exc


def check_class_args(cls: type, args: dict[str, Any], *, field: str, source: str | None,
                     reserved: set[str]) -> None:
    """Reject class args the constructor does not take, naming the closest accepted one."""
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # the class's own, by design
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if n != "self" and n not in reserved
                and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for key in args:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean '{close[0]}'?" if close else (
                f"accepted: {', '.join(accepted)}" if accepted else "it takes no classArgs")
            raise ConfigError(f"unknown class argument '{key}' for {cls.__name__}", source=source,
                              field=f"{field}.{key}", hint=hint)
