"""The package's errors: one base whose message is a sentence a visitor can act on.

Every front end (the Gradio handlers, the CLI) turns a `DemoError` into what its user sees in one place, so a new
error needs no front-end edit. Each typed error also keeps the builtin base it has always had, so callers that
catch ``KeyError`` or ``ValueError`` still do.
"""

from __future__ import annotations


class DemoError(Exception):
    """Something the visitor or operator can fix; ``str(err)`` is one sentence saying what happened and what to do."""

    def __str__(self) -> str:  # KeyError, one of the bases below, would quote the message
        return str(self.args[0]) if self.args else type(self).__name__


class ConfigError(DemoError, ValueError):
    """An environment variable has a value the demo cannot use."""


class UnknownModelError(DemoError, KeyError):
    """A model key that is not in the catalog; the message lists the valid keys."""


class InvalidRequestError(DemoError, ValueError):
    """A request the demo cannot serve as sent (no image, no model ticked, a top-k that is not a number)."""


class ImageLoadError(DemoError, ValueError):
    """An upload that cannot be used as an image."""


class ModelUnavailableError(DemoError, RuntimeError):
    """A model cannot be fetched; the message names the model and says what to do."""


class ModelLoadError(DemoError, RuntimeError):
    """A model's files were fetched but could not be turned into a working model."""
