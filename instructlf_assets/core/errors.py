"""One exception family per failure kind, so the CLI can print one clear line and exit non-zero."""

from __future__ import annotations


class InstructLFError(Exception):
    """Base class: a problem the user can fix, with a message that says what and where."""


class CatalogueError(InstructLFError):
    """A dataset entry in the catalogue is unknown, unreadable or invalid."""


class CorpusError(InstructLFError):
    """A corpus file is missing, unreadable, empty, or has a bad row."""


class ProposerError(InstructLFError):
    """Property proposal failed for too many documents, or the back end is misconfigured."""


class FactorModelError(InstructLFError):
    """The score matrix cannot support the requested latent factor model."""


class RunConfigError(InstructLFError):
    """Asset config given to `instructlf run --config` does not match the assets' Config schemas."""


class ArtifactError(InstructLFError):
    """A stored artifact's manifest is unreadable or names a kind this code does not know; nothing is loaded."""


class CheckFailedError(InstructLFError):
    """A blocking data-quality check failed: the stage's output was not stored, so nothing downstream reads it."""
