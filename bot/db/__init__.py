from bot.db.engine import create_engine, create_session_factory

__all__ = ["create_engine", "create_session_factory"]
