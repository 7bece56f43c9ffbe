"""Dagster resources: where models come from, how properties are proposed, where artifacts are stored."""

from .encoder import EncoderResource
from .proposer import ProposerResource
from .storage import InstructLFIOManager, default_storage_root

__all__ = ["EncoderResource", "InstructLFIOManager", "ProposerResource", "default_storage_root"]
