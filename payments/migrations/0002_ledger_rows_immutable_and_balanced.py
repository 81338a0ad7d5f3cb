"""The database itself keeps the ledger honest (PostgreSQL; SQLite development runs without it).

- Ledger rows (transactions and entries) are never edited: UPDATE and DELETE raise.
- A transaction's entries sum to zero: a deferred constraint trigger checks it at
  COMMIT, so a transaction that posts unbalanced entries cannot commit whatever
  code path wrote them.
"""

from django.db import migrations

FORWARD = ["""
CREATE FUNCTION payments_ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are never edited (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$""", """
CREATE TRIGGER payments_transaction_immutable BEFORE UPDATE OR DELETE ON payments_transaction
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_immutable()""", """
CREATE TRIGGER payments_entry_immutable BEFORE UPDATE OR DELETE ON payments_entry
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_immutable()""", """
CREATE FUNCTION payments_transaction_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM payments_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (entries sum to %)', NEW.transaction_id, total
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$""", """
CREATE CONSTRAINT TRIGGER payments_entry_balanced AFTER INSERT ON payments_entry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments_transaction_balances()"""]

BACKWARD = [
    "DROP TRIGGER IF EXISTS payments_entry_balanced ON payments_entry",
    "DROP FUNCTION IF EXISTS payments_transaction_balances()",
    "DROP TRIGGER IF EXISTS payments_entry_immutable ON payments_entry",
    "DROP TRIGGER IF EXISTS payments_transaction_immutable ON payments_transaction",
    "DROP FUNCTION IF EXISTS payments_ledger_immutable()",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_wallets_ledger_topups")]

    operations = [migrations.RunPython(forward, backward)]
