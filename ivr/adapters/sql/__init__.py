"""The SQL store: the engine and tables, schema migrations, users and sessions, tickets."""
