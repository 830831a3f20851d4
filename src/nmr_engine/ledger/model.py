"""Ledger values: an entry (one posted amount) and a run (one posting), both frozen."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs

#: Kinds of entries. A first posting of a line is an advance (``avance``) or a balance
#: (``solde``, and ``unique``: a line paid at once is its own balance); any later
#: difference for the same key is a regularisation linked to the entries it corrects.
KINDS = ("advance", "balance", "regularisation")
KIND_OF_INSTALMENT = {"avance": "advance", "solde": "balance", "unique": "balance"}
KIND_LABELS = {"advance": "avance", "balance": "solde", "regularisation": "régularisation"}
#: What staff read as an entry's nature (a first posting shows its schedule slot).
INSTALMENT_LABELS = {"unique": "versement unique", "avance": "avance", "solde": "solde"}

#: The key a posting diffs on: what is due now vs what was already posted for it.
KEY_FIELDS = ("contract_id", "module", "period_id", "component", "payee_id", "instalment")

GENESIS = "0" * 64


@attrs.frozen
class Entry:
    """One posted amount. Never updated: a correction is a new entry (``kind='regularisation'``).

    ``instalment`` is the line's schedule slot (unique/avance/solde) and belongs to the key;
    ``business_date`` is the run date, ``recorded_at`` the UTC time of writing.
    ``explanation`` is canonical JSON (patient identifiers pseudonymised)."""

    seq: int
    entry_id: str
    run_id: str
    contract_id: str
    module: str
    period_id: str
    component: str
    payee_id: str
    instalment: str
    kind: str
    amount_cents: int
    due_date: dt.date
    business_date: dt.date
    recorded_at: str
    label: str
    input_fingerprint: str
    parameter_fingerprint: str
    plugin: str
    plugin_version: str
    explanation: str
    corrects: tuple[str, ...] = ()
    prev_hash: str = GENESIS
    hash: str = ""
    #: In a ledger of entry format 2, the stored record the hash covers (the fields that have no
    #: column of their own and the explanation, zlib-compressed; :mod:`.store`); ``b""`` for
    #: format 1 (one column per field). Derived from the fields: not compared, not in the payload.
    record: bytes = attrs.field(default=b"", eq=False, repr=False)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    @property
    def nature(self) -> str:
        """French: « régularisation », or the instalment of a first posting."""
        if self.kind == "regularisation":
            return KIND_LABELS[self.kind]
        return INSTALMENT_LABELS.get(self.instalment, self.instalment)

    def explanation_dict(self) -> dict[str, Any]:
        return json.loads(self.explanation)

    def payload(self) -> dict[str, Any]:
        """Every field but ``hash``, JSON-ready (the audit bundle's lines). The hash covers the
        stored row built from these values (:mod:`.hashchain`)."""
        out = attrs.asdict(self, recurse=False)
        out.pop("hash")
        out.pop("record")
        out["due_date"] = self.due_date.isoformat()
        out["business_date"] = self.business_date.isoformat()
        out["corrects"] = list(self.corrects)
        return out


@attrs.frozen
class Run:
    """One posting: all its entries were written in one transaction, or none was."""

    seq: int
    run_id: str
    business_date: dt.date
    recorded_at: str
    selectors: tuple[str, ...]
    input_fingerprint: str
    parameter_fingerprint: str
    plugins: str
    entry_count: int
    total_cents: int
    first_entry_seq: int
    last_entry_hash: str
    prev_hash: str = GENESIS
    hash: str = ""
    #: The date whose knowledge the run computed with (contract events and data versions
    #: recorded on or before it; ISO date), "" for runs posted before this was recorded.
    known_on: str = ""
    #: JSON {"data/<file>": sha256} of the data files as read under ``known_on``; "" when unknown.
    data_files: str = ""

    @property
    def known_on_date(self) -> dt.date:
        """The knowledge date to replay with (the run date for runs that did not record one)."""
        return dt.date.fromisoformat(self.known_on) if self.known_on else self.business_date

    def payload(self) -> dict[str, Any]:
        """The fields but ``hash``, JSON-ready; ``known_on``/``data_files`` only when set. The
        hash covers every stored column, these two included (:mod:`.hashchain`)."""
        out = attrs.asdict(self, recurse=False)
        out.pop("hash")
        out["business_date"] = self.business_date.isoformat()
        out["selectors"] = list(self.selectors)
        for optional in ("known_on", "data_files"):
            if not out[optional]:
                out.pop(optional)
        return out
