"""The SQL store: the engine and tables, schema migrations, users and sessions, tickets, and
the call figures of a window computed from the call facts."""
