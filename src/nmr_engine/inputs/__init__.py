"""Reading and validating input tables, generically from the plugins' declarations."""

from .reader import assign_periods, read_module_tables, read_table

__all__ = ["assign_periods", "read_module_tables", "read_table"]
