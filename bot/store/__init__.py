"""Storage: SQLAlchemy models and sessions, Alembic migrations, the work queue, Redis access.

SQL is the record (every inbound message, every reply, every delivery report); the queue
only says which conversation has work. Each store sits behind a small interface with an
embedded implementation (SQLite, in-process queue) beside the production one
(PostgreSQL, Redis), and the same contract tests run against both.
"""
