"""`field__any=[...]`: membership in a list bound as ONE array parameter on PostgreSQL.

`__in` expands to one placeholder per value; a 5,000-hash address book
then costs 5,000 parameters to quote and the planner a 5,000-item list to
parse. `= ANY(%s)` sends one array instead. Other databases fall back to IN.
"""

from __future__ import annotations

from typing import Any

from django.db.models import BinaryField, Lookup


@BinaryField.register_lookup
class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            return "1 = 0", []
        placeholders = ", ".join(["%s"] * len(values))
        return f"{lhs} IN ({placeholders})", [*lhs_params, *values]

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::bytea[])", [*lhs_params, [bytes(item) for item in self.rhs]]
