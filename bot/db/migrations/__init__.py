"""Alembic's migration environment for the bot: env.py and versions/ (one file per revision, 0001_...).

Add a revision with `python -m bot.db.migrations "what it changes"`; run them with `python -m bot migrate`.
"""
