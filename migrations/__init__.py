"""Alembic migrations for OpSeal: one schema for SQLite and PostgreSQL (async env)."""
