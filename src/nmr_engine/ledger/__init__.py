"""The append-only ledger of posted payments (module-agnostic)."""

from .hashchain import verify
from .model import KEY_FIELDS, KINDS, Entry, Run
from .posting import PostResult, Proposal, commit, plan, post, prepare
from .store import LedgerStore, default_url, open_store

__all__ = [
    "KEY_FIELDS",
    "KINDS",
    "Entry",
    "LedgerStore",
    "PostResult",
    "Proposal",
    "Run",
    "commit",
    "default_url",
    "open_store",
    "plan",
    "post",
    "prepare",
    "verify",
]
