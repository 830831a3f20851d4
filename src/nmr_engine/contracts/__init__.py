"""Contract files: one YAML file per contract, validated on load."""

from .loader import load_contract_file, load_contracts

__all__ = ["load_contract_file", "load_contracts"]
