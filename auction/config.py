"""`--config FILE`: a command's options from a TOML file (standard library `tomllib`).

Every option of the command has a key: its long flag without the leading dashes
(`--bids-per-second 10` is `bids-per-second = 10`; `_` may stand for `-`). Values keep their
TOML types: numbers for numbers, strings for addresses, paths and URLs, `true`/`false` for
switches, an array of strings for an option given several times (`peer = ["http://…"]`).
A relative path is relative to the working directory, as on the command line.

Options given on the command line win over the file's: the file's values are put before the
command line's arguments and parsed by the same parser, so every check of a flag applies to
its key too. Before that, each key is checked on its own, and an unknown key, a value of the
wrong type or a value the option refuses raises `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import GavelError


class ConfigError(GavelError):
    """The configuration file cannot be used; the message names the file and the key."""


#: Options a configuration file does not set (the file itself, and help).
_NOT_KEYS = frozenset({"config", "help"})


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """key → action, for every long option of `parser`."""
    options: dict[str, argparse.Action] = {}
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag[2:] not in _NOT_KEYS:
                options[flag[2:]] = action
    return options


def _exclusive_partners(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    partners: list[str] = []
    for group in parser._mutually_exclusive_groups:
        if action in group._group_actions:
            partners += [
                f for a in group._group_actions if a is not action for f in a.option_strings
            ]
    return partners


def _scalar_text(path: Path, key: str, value: object, action: argparse.Action) -> str:
    """The value as the command line would give it, checked by the option's own type."""
    if isinstance(value, bool) or isinstance(value, list | dict):
        kind = "true/false" if isinstance(value, bool) else type(value).__name__
        raise ConfigError(f"{path}: key '{key}': expected a single value, not {kind}")
    if isinstance(value, float) and action.type in (int, None):
        raise ConfigError(f"{path}: key '{key}': expected a whole number, got {value!r}")
    convert = action.type
    if convert in (None, str, Path) and not isinstance(value, str):
        raise ConfigError(f"{path}: key '{key}': expected a string, got {value!r}")
    text = str(value)
    try:
        converted = convert(text) if callable(convert) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else "not a valid value"
        raise ConfigError(f"{path}: key '{key}': {value!r}: {reason}") from exc
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(str(c) for c in action.choices)
        raise ConfigError(f"{path}: key '{key}': {value!r} is not one of {choices}")
    return text


def file_arguments(
    parser: argparse.ArgumentParser, path: Path, command_line: Sequence[str]
) -> list[str]:
    """The arguments `path` stands for, checked key by key against `parser`'s options,
    leaving out what `command_line` (this command's own arguments) sets itself. Raises
    `ConfigError`."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    options = _options(parser)
    given = {arg.split("=", 1)[0] for arg in command_line if arg.startswith("--")}
    arguments: list[str] = []
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        action = options.get(key)
        if action is None:
            known = ", ".join(sorted(options))
            raise ConfigError(f"{path}: unknown key '{raw_key}' (known keys: {known})")
        flag = "--" + key
        if given & set(action.option_strings) or given & set(_exclusive_partners(parser, action)):
            continue  # the command line says otherwise
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: key '{raw_key}': expected true or false")
            if value == isinstance(action, argparse._StoreTrueAction):
                arguments.append(flag)
        elif isinstance(action, argparse._AppendAction):
            values = value if isinstance(value, list) else [value]
            for item in values:
                arguments += [flag, _scalar_text(path, raw_key, item, action)]
        else:
            arguments += [flag, _scalar_text(path, raw_key, value, action)]
    return arguments


def with_config(
    parser: argparse.ArgumentParser, arguments: Sequence[str], prefix_length: int
) -> list[str]:
    """`arguments` (a whole command line, whose first `prefix_length` words name the command
    whose `parser` this is) with the options of its `--config FILE` put before its own, or
    unchanged without `--config`. Raises `ConfigError`."""
    head, own = list(arguments[:prefix_length]), list(arguments[prefix_length:])
    path: str | None = None
    rest: list[str] = []
    index = 0
    while index < len(own):
        word = own[index]
        if word == "--config" and index + 1 < len(own):
            path = own[index + 1]
            index += 2
            continue
        if word.startswith("--config="):
            path = word.split("=", 1)[1]
            index += 1
            continue
        rest.append(word)
        index += 1
    if path is None:
        return list(arguments)
    return [*head, *file_arguments(parser, Path(path), rest), *rest]


def subcommand_parser(parser: argparse.ArgumentParser, words: Sequence[str]) -> Any:
    """The parser of the subcommand named by `words` (e.g. `["notary", "serve"]`), or None."""
    current: argparse.ArgumentParser = parser
    for word in words:
        found = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and word in action.choices:
                found = action.choices[word]
        if found is None:
            return None
        current = found
    return current
