"""Alembic's environment for the SQL store, shipped inside the package.

``env.py`` (run by Alembic for every command), ``script.py.mako`` (the template of a new
revision) and ``versions/NNNN_<slug>.py`` (one file per schema change, in order). Nothing here
is run directly and there is no ``alembic.ini``: :mod:`ivr.adapters.schema` configures Alembic
in code and hands it the connection to work on (``ivr db upgrade``, ``ivr db revision``).
"""
