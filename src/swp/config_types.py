"""What a constructor's annotations say about its arguments, and the one check that reads them.

A class or function named by a ``_target_`` in ``conf/`` declares its settings once, in its
signature; `swp.validation` checks a config node against it, and the constructor calls
`check_arguments` first so library users get the same refusals, word for word::

    def __init__(self, model: Annotated[nn.Module, Runtime("the model to prune")],
                 window: Annotated[int, Range(0)] | None = None, scope: Literal["layer", "global"] = "layer"):
        check_arguments(SWPPruner, locals(), at="pruner")

Understood annotations: ``bool``, ``int`` / ``float`` with a `Range`, ``str`` (with `Regex`,
`Device` or `Check`), ``Literal[...]``, ``Sequence[X]`` / ``list[X]`` / ``tuple[X, X, X]``,
``Mapping[...]``, unions (``X | None``: null allowed), ``object`` with a `Check`, and a class (an
instance of it, or in a config a nested ``_target_`` node or a settings dataclass's mapping).
Other forms (``Callable``...) are passed unchecked. Checks are strict (no coercion): '3' is not
3, true is not 1, NaN and inf are never numbers, an integer fits in int64.

Rules between two values live in the class's ``check_options(cls, given: Options)`` classmethod
(a function target: `checked_by`), which `check_arguments` and the validator both call.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from typing import Annotated, Any, Callable, Literal

from swp.errors import ConfigError

INT64 = 2**63 - 1  # the largest integer torch (and every counter here) can hold
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Range:
    """A number in [lo, hi] (an end may be open); `why` is shown in the refusal."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def holds(self, x) -> bool:
        return (x > self.lo if self.lo_open else x >= self.lo) and (x < self.hi if self.hi_open else x <= self.hi)

    def text(self) -> str:
        if self.hi == math.inf:
            return f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


@dataclass(frozen=True)
class Why:
    """The reason for a rule, shown in the refusal (`Range` has its own ``why``)."""

    text: str


@dataclass(frozen=True)
class Regex:
    """A string used as a regular expression: it must compile."""


@dataclass(frozen=True)
class Device:
    """A device name: cpu, cuda or cuda:N (and ``auto`` where `auto`)."""

    auto: bool = False


@dataclass(frozen=True)
class Check:
    """A rule on one value of the right type that the type cannot say: ``test(value)`` must be
    true, else the refusal says `must`."""

    test: Callable[[Any], bool]
    must: str


@dataclass(frozen=True)
class Runtime:
    """A parameter the launcher passes at run time (the model, the task's vocab_size, the run
    folder), never a config key: a config that sets it is refused. On ``**kwargs`` it says the
    extra keyword arguments are the launcher's too (the config may add none)."""

    what: str = ""


Count = Annotated[int, Range(1)]
Count0 = Annotated[int, Range(0)]
Seed = Annotated[int, Range(0, why="seeds are non-negative integers")]
Fraction = Annotated[float, Range(0, 1, hi_open=True)]  # [0, 1)
OpenFraction = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]  # (0, 1)
Patterns = Sequence[Annotated[str, Regex()]]


@dataclass(frozen=True)
class Param:
    """One parameter as the checks see it (`hint` None: not annotated, so not checked)."""

    name: str
    hint: Any
    default: Any
    runtime: bool

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@functools.lru_cache(maxsize=None)
def parameters(target) -> tuple[dict[str, Param], Param | None]:
    """The named parameters of a class or function, and its ``**kwargs`` (None if it has none)."""
    fn = target if not isinstance(target, type) or is_dataclass(target) else target.__init__
    try:
        hints = typing.get_type_hints(inspect.unwrap(fn), include_extras=True)
    except (NameError, TypeError):  # an annotation that cannot be resolved: left unchecked
        hints = {}
    params, extra = {}, None
    for p in inspect.signature(target).parameters.values():
        hint = hints.get(p.name)
        param = Param(p.name, hint, p.default, any(isinstance(m, Runtime) for m in markers(hint)))
        if p.kind is p.VAR_KEYWORD:
            extra = param
        elif p.kind is not p.VAR_POSITIONAL:
            params[p.name] = param
    return params, extra


def markers(hint) -> tuple:
    """The `Annotated` markers of a hint, also inside ``X | None``."""
    base, marks, _ = unpack(hint)
    return marks


def unpack(hint) -> tuple[Any, tuple, bool]:
    """(base type, markers, whether None is allowed) of an annotation."""
    marks, nullable = (), False
    while True:
        if typing.get_origin(hint) is Annotated:
            marks += hint.__metadata__
            hint = typing.get_args(hint)[0]
        elif _is_union(hint) and type(None) in typing.get_args(hint):
            nullable = True
            rest = tuple(a for a in typing.get_args(hint) if a is not type(None))
            hint = rest[0] if len(rest) == 1 else typing.Union[rest]
        else:
            return hint, marks, nullable


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


class Options:
    """The values given to one constructor, as its cross-field rules read them: attributes are
    the values, `key` names one by its dotted config key, `refuse` builds the one-line error."""

    def __init__(self, values: Mapping, prefix: str = ""):
        self._values, self._prefix = dict(values), prefix

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self._values:
            raise AttributeError(name)
        return self._values[name]

    def key(self, name: str) -> str:
        return self._prefix + name

    def refuse(self, name: str, must: str) -> ConfigError:
        return ConfigError(f"{self.key(name)} must be {must}; got {self._values.get(name)!r}")


def checked_by(rules: Callable[[Options], None]):
    """Attaches cross-field rules to a function target (a class defines ``check_options``)."""

    def attach(fn):
        fn.check_options = rules
        return fn

    return attach


def check_arguments(target, values: Mapping, at: str = "") -> None:
    """Checks a constructor's arguments by its annotations, then its cross-field rules.

    Args:
        target: the class or function whose signature is the schema.
        values: the arguments by name (``locals()`` on the constructor's first line); others ignored.
        at: the config node the target is usually built from (``pruner``), so the refusal names
            the same key the command line would.

    Raises:
        ConfigError: ``<at>.<name> must be ...; got ...``.
    """
    prefix = f"{at}." if at else ""
    params, _ = parameters(target)
    given = {}
    for p in params.values():
        if p.runtime or p.name not in values:
            continue
        given[p.name] = values[p.name]
        if p.hint is not None:
            check_value(prefix + p.name, values[p.name], p.hint)
    check_rules(target, given, prefix)


def check_rules(target, values: Mapping, prefix: str) -> None:
    """Runs the target's cross-field rules (``check_options``), if it has any."""
    rules = getattr(target, "check_options", None)
    if rules is not None:
        rules(Options(values, prefix))


def check_value(key: str, value, hint) -> None:
    """Refuses `value` unless it is what `hint` says, exactly (no coercion)."""
    error = problem(key, value, hint)
    if error is not None:
        raise error


def problem(key: str, value, hint) -> ConfigError | None:
    """The refusal of `value` for `hint` (the first bad item of a list names its index), or None."""
    base, marks, nullable = unpack(hint)
    if value is None and nullable:
        return None
    if value is None and base not in (object, Any) or not _is_kind(value, base):
        return refusal(key, hint, value)
    if typing.get_origin(base) in (list, tuple, Sequence):
        error = _item_problem(key, value, hint, base)
        if error is not None:
            return error
    if _is_union(base) and all(problem(key, value, alt) for alt in typing.get_args(base)):
        return refusal(key, hint, value)
    return _marked(key, value, hint, marks)


def _item_problem(key: str, value, hint, base) -> ConfigError | None:
    """A list's length (a fixed tuple) and the first bad item, named by its index."""
    items = typing.get_args(base) or (Any,)
    if typing.get_origin(base) is tuple and items[-1] is not Ellipsis:
        if len(value) != len(items):
            return refusal(key, hint, value)
    else:
        items = (items[0],) * len(value)
    for i, (item, item_hint) in enumerate(zip(value, items)):
        error = problem(f"{key}[{i}]", item, item_hint)
        if error is not None:
            return error
    return None


def _is_kind(value, base) -> bool:
    """Whether `value` has the type `base` asks for (ranges and markers come after)."""
    if base in (object, Any) or _is_union(base):
        return True
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= INT64
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if base is str:
        return isinstance(value, str)
    origin = typing.get_origin(base)
    if origin is Literal:
        return any(value == o and type(value) is type(o) for o in typing.get_args(base))
    if origin in (list, tuple, Sequence):  # a list, a tuple, or Hydra's ListConfig; never a string
        return isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    if origin in (dict, Mapping) or base in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(base, type):  # the object itself (a config gives a ``_target_`` node instead)
        return isinstance(value, base)
    return True  # a form these checks do not read (Callable, a TypeVar...): passed unchecked


def _marked(key: str, value, hint, marks) -> ConfigError | None:
    """The markers' rules on a value of the right type."""
    for m in marks:
        if isinstance(m, Range) and value is not None and not m.holds(value):
            return refusal(key, hint, value)
        if isinstance(m, Regex):
            try:
                re.compile(value)
            except re.error as exc:
                return ConfigError(f"{key} must be a valid regular expression ({exc}); got {value!r}")
        if isinstance(m, Device) and not (DEVICE.match(value) or (m.auto and value == "auto")):
            return refusal(key, hint, value)
        if isinstance(m, Check) and not m.test(value):
            return ConfigError(f"{key} must be {m.must}; got {value!r}")
    return None


def refusal(key: str, hint, value) -> ConfigError:
    return ConfigError(f"{key} must be {describe(hint, value)}; got {value!r}")


def describe(hint, value=None) -> str:
    """What `hint` accepts, in words (``an integer >= 1 or null``)."""
    base, marks, nullable = unpack(hint)
    text = _kind(base, marks)
    why = [m.text for m in marks if isinstance(m, Why)] + [m.why for m in marks if isinstance(m, Range) and m.why]
    text += "".join(f" ({w})" for w in why)
    if isinstance(value, str) and typing.get_origin(base) in (list, Sequence):
        text += f" (e.g. [{value}])"
    return text + (" or null" if nullable and base not in (object, Any) else "")


def _kind(base, marks) -> str:
    rng = next((m for m in marks if isinstance(m, Range)), None)
    if base in (int, float):
        kind = "an integer" if base is int else "a finite number"
        return f"{kind} {rng.text()}" if rng else kind
    if base is bool:
        return "true or false"
    if base is str:
        device = next((m for m in marks if isinstance(m, Device)), None)
        return f"a device name ({'auto, ' if device.auto else ''}cpu, cuda or cuda:N)" if device else "a string"
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is Literal:
        words = [str(o).lower() if isinstance(o, bool) else str(o) for o in args]
        return words[0] if len(words) == 1 else "one of " + ", ".join(words)
    if origin in (list, tuple, Sequence):
        return _list_kind(origin, args)
    if origin in (dict, Mapping) or base in (dict, Mapping):
        return "a mapping"
    if _is_union(base):
        parts = [describe(a) for a in args]
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    if base in (object, Any):
        return "a value"
    if isinstance(base, type):
        return f"a {base.__name__} ({'a mapping of its settings' if is_dataclass(base) else 'a node with _target_'})"
    return f"a {getattr(base, '__name__', None) or base!r}"


def _list_kind(origin, args) -> str:
    item = unpack(args[0])[0] if args else Any
    kind = {str: "strings", int: "integers", float: "numbers"}.get(item, "values")
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} {kind}"
    return f"a list of {kind}"

